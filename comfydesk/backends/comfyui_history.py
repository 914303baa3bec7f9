"""Filling in from ComfyUI's `/queue` and `/history` what the WebSocket did not say: after a dropped socket
(`reconcile`), and at the end of a run whose messages may have been missed (`finish_after_gap`).

Every event still goes out through the backend's one `emit`, so each output and each terminal event is
delivered exactly once whichever path found it first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any
from urllib.parse import quote

from comfydesk.backends.base import BackendEvent
from comfydesk.backends.comfyui_protocol import (
    LOST_RUN_MESSAGE,
    RunState,
    events_from_history,
    history_shows_finished,
    missing_outputs_from_history,
)
from comfydesk.core.errors import BackendError, ServerResponseError
from comfydesk.core.events import Completed, ExecutionEvent, Failed, FailureInfo

__all__ = ["HISTORY_ERRORS", "HISTORY_POLLS", "HistoryReconciler"]

log = logging.getLogger(__name__)

HISTORY_POLLS = 25  # after a gap, how often to ask /history for a run the socket says has ended
HISTORY_ERRORS = 5  # of those, how many bad answers (HTTP 5xx, not JSON) are asked again before giving up


class HistoryReconciler:
    """Asks the server what became of runs; `emit` is the backend's single way out for events."""

    def __init__(
        self,
        get_json: Callable[[str], Awaitable[Any]],
        queued_ids: Callable[[], Awaitable[set[str]]],
        emit: Callable[[BackendEvent], None],
        submitting: Collection[str],
        deleting: Collection[str] = (),
    ) -> None:
        self._get_json = get_json
        self._queued_ids = queued_ids
        self._emit = emit
        self._submitting = submitting  # runs whose POST is still in flight: their own path settles them
        self._deleting = deleting  # pending runs this client is deleting: the delete settles them

    async def history_entry(self, prompt_id: str) -> Mapping[str, Any] | None:
        """The server's `/history` record of one run, or None when it has none."""
        doc = await self._get_json(f"/history/{quote(prompt_id, safe='')}")
        entry = doc.get(prompt_id) if isinstance(doc, dict) else None
        return entry if isinstance(entry, Mapping) else None

    async def reconcile(self, runs: list[RunState]) -> None:
        """Runs no longer queued end from their history record, or fail as lost when there is none."""
        runs = [r for r in runs if r.prompt_id not in self._submitting]
        if not runs:
            return
        in_queue = await self._queued_ids()
        for run in runs:
            if run.terminal or run.prompt_id in in_queue:
                run.gap = True  # still pending or running: keep waiting, top up at its end
                continue
            entry = await self.history_entry(run.prompt_id)
            run.gap = False  # what follows comes from the server's own record: nothing left to top up
            if entry is not None and history_shows_finished(entry):
                for event in events_from_history(run, entry):
                    self._emit(event)
            elif not run.terminal and run.prompt_id not in self._deleting:  # deleted by us: not lost
                run.terminal = True
                self._emit(Failed(run.prompt_id, FailureInfo(LOST_RUN_MESSAGE)))

    async def finish_after_gap(self, run: RunState, terminal: ExecutionEvent) -> None:
        """The socket says `run` ended, but messages may have been lost: outputs missing from what we saw
        are taken from its history record first, then `terminal` goes out (Completed with every output)."""
        entry: Mapping[str, Any] | None = None
        errors = 0
        for attempt in range(HISTORY_POLLS):
            try:
                found = await self.history_entry(run.prompt_id)
            except BackendError as exc:
                # A passing bad answer (a 502 from a proxy, a truncated body) must not cost the outputs we
                # missed: ask again, a few times. No answer at all (refused, timed out) ends it at once.
                errors += 1
                log.info("cannot top up run %s from history (%d): %s", run.prompt_id, errors, exc)
                if not isinstance(exc, ServerResponseError) or errors >= HISTORY_ERRORS:
                    break
                found = None
            if found is not None and history_shows_finished(found):
                entry = found
                break
            # The server writes history just after it sends the terminal message.
            await asyncio.sleep(min(0.5, 0.02 * (attempt + 1)))
        run.gap = False
        if entry is not None:
            for event in missing_outputs_from_history(run, entry):
                self._emit(event)
        if isinstance(terminal, Completed):
            terminal = Completed(run.prompt_id, tuple(run.outputs))
        self._emit(terminal)
