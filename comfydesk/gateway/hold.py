"""Runs held while the ComfyUI machines are coming back.

A link to a ComfyUI machine that drops is reconnected within a second or two. A run posted during that
blip is not refused: the execution is accepted (202, `queued`) and held here until a machine is healthy
again, then dispatched as usual. The hold lasts at most `grace` seconds (`comfydesk serve
--reconnect-grace`, 30 by default); when no machine is back by then the execution fails with
`backend_unavailable`. A run is held only when some machine *was* connected and is reconnecting or lost
its link less than `grace` seconds ago; with no machine ever connected (or all gone for longer) the
gateway still answers 503 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from comfydesk.backends.base import ConnectionState
from comfydesk.core.graph import ApiGraph

if TYPE_CHECKING:
    from comfydesk.gateway.dispatch import Dispatcher, Machine

__all__ = ["DEFAULT_GRACE", "Holding", "unavailable_error"]

log = logging.getLogger(__name__)

#: How long a run accepted while every machine is reconnecting waits for one to come back (s).
DEFAULT_GRACE = 30.0
_RETRY_PAUSE = 0.5  # between two offers when a machine looked healthy but did not take the run


def unavailable_error(details: str) -> dict[str, Any]:
    """The error of an execution no ComfyUI machine took (the wording of the 503 and of a failed row)."""
    return {
        "code": "backend_unavailable",
        "message": "No ComfyUI machine could take the run",
        "details": details,
    }


class Holding:
    """The runs accepted while no machine is reachable, each waiting (a task) for one to come back."""

    def __init__(self, dispatcher: Dispatcher, grace: float = DEFAULT_GRACE) -> None:
        self.dispatcher = dispatcher
        self.grace = grace
        self._held: dict[int, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()

    # -- what the dispatcher tells and asks ----------------------------------------------------------------

    def health_changed(self) -> None:
        """A machine's link or health changed: held runs look again."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def coming_back(self, machine: Machine) -> bool:
        """The machine was connected and is reconnecting, or lost its link less than `grace` s ago."""
        if machine.catalog is None or machine.lost_at is None:
            return False
        if machine.backend.status.state is ConnectionState.RECONNECTING:
            return True
        return asyncio.get_running_loop().time() - machine.lost_at < self.grace

    def can_hold(self) -> bool:
        return self.grace > 0 and any(self.coming_back(m) for m in self.dispatcher.machines)

    def ids(self) -> list[int]:
        return list(self._held)

    def is_held(self, execution_id: int) -> bool:
        return execution_id in self._held

    def drop(self, execution_id: int) -> bool:
        """Stop holding a run (cancelled, or no longer this instance's); True when it was held."""
        task = self._held.pop(execution_id, None)
        if task is None:
            return False
        task.cancel()
        return True

    # -- holding --------------------------------------------------------------------------------------------

    def hold(self, row: dict[str, Any], graph: ApiGraph, why: str) -> dict[str, Any]:
        """Hold the recorded (queued) execution `row`; it is dispatched when a machine is back."""
        execution_id = int(row["id"])
        log.info(
            "execution %s: held for up to %g s until a ComfyUI machine is back (%s)",
            execution_id,
            self.grace,
            why,
        )
        task = self.dispatcher._spawn(self._wait_then_submit(execution_id, graph, why))
        self._held[execution_id] = task
        task.add_done_callback(lambda t: self._forget(execution_id, t))
        return row

    def _forget(self, execution_id: int, task: asyncio.Task[None]) -> None:
        if self._held.get(execution_id) is task:
            del self._held[execution_id]

    async def _wait_for_machine(self, deadline: float) -> bool:
        loop = asyncio.get_running_loop()
        while not self.dispatcher.healthy():
            changed = self._changed
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)
        return True

    async def _still_queued(self, execution_id: int) -> dict[str, Any] | None:
        store = self.dispatcher.store
        row = await store.read(store.sync.get_execution, execution_id)
        if row is None or row["status"] != "queued" or row.get("submitted"):
            return None  # cancelled (here or through another instance) or taken elsewhere
        return row

    async def _wait_then_submit(self, execution_id: int, graph: ApiGraph, why: str) -> None:
        from comfydesk.gateway.dispatch import ExecutionRefused, NoBackend  # (dispatch imports this module)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        try:
            while await self._wait_for_machine(deadline):
                row = await self._still_queued(execution_id)
                if row is None:
                    return
                try:
                    await self.dispatcher.offer(row, graph)
                    log.info("execution %s: a ComfyUI machine is back; dispatched", execution_id)
                    return
                except NoBackend as exc:  # it failed again: wait on, within the grace
                    why = str(exc)
                    await asyncio.sleep(min(_RETRY_PAUSE, max(0.0, deadline - loop.time())))
            row = await self._still_queued(execution_id)
            if row is None:
                return
            now = "; ".join(f"{m.url}: {m.error}" for m in self.dispatcher.machines if m.error) or why
            details = f"no ComfyUI machine came back within {self.grace:g} s ({now})"
            log.warning("execution %s failed: %s", execution_id, details)
            failed = await self.dispatcher._write(
                execution_id, status="failed", error=unavailable_error(details)
            )
            self.dispatcher._publish_row(failed, "failed")
        except asyncio.CancelledError:
            raise
        except ExecutionRefused:
            return  # failed as execution_error by `offer`, and published
        except Exception:
            log.exception("execution %s: dispatching the held run failed", execution_id)
            await asyncio.shield(self.dispatcher._fail_internal(execution_id))
