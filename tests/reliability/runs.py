"""Following runs into a real journal for the disconnect and server-fault tests.

`JournalSink` does with a backend's event stream what the window's run controller does with a run (see
`comfydesk.app.controller`): the run is recorded in the journal (a real SQLite file and blob store) under the
prompt id chosen before the POST, marked submitted, each output is saved as soon as it is announced (keyed by
`output_source`, as the controller keys them), the outputs of the terminal `Completed` are saved if any was
not announced, and the final status is written once. It keeps every event it saw, so a test can check that
nothing arrived twice and nothing was lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from comfydesk.app.journal_runs import missing_outputs, output_source
from comfydesk.backends.base import Backend, BackendEvent, ConnectionChanged, ConnectionState, Execution
from comfydesk.backends.comfyui_protocol import safe_output_name
from comfydesk.core.errors import BackendError
from comfydesk.core.events import (
    TERMINAL_EVENTS,
    Completed,
    ExecutionEvent,
    Failed,
    Interrupted,
    NodeOutput,
    OutputRef,
    Queued,
    Started,
)
from comfydesk.core.graph import ApiGraph
from comfydesk.store.journal import Journal, OutputRecord, RunRecord

TIMEOUT = 20.0


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class JournalSink:
    """A backend's events -> the journal, as the run controller writes them; waits are on conditions."""

    def __init__(self, backend: Backend, journal: Journal) -> None:
        self.backend = backend
        self.journal = journal
        self.events: list[BackendEvent] = []
        self.journal_ids: dict[str, int] = {}
        self.saved: dict[str, dict[str, OutputRecord | None]] = {}
        self.fetches: Counter[str] = Counter()
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._pump())

    # -- following ---------------------------------------------------------------------------------
    async def _pump(self) -> None:
        async for event in self.backend.events():
            pid = getattr(event, "execution_id", None)
            if isinstance(pid, str) and pid in self.journal_ids:
                await self._apply(pid, event)  # type: ignore[arg-type]
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def _apply(self, pid: str, event: ExecutionEvent) -> None:
        run_id = self.journal_ids[pid]
        if isinstance(event, NodeOutput):
            await self._save(pid, event.outputs)  # a failure here is tried again at the end
        elif isinstance(event, Completed):
            failed = await self._save(pid, event.outputs)
            self.journal.set_status(run_id, "completed", error=missing_outputs(failed))
        elif isinstance(event, Failed):
            self.journal.set_status(run_id, "failed", error=event.error.message)
        elif isinstance(event, Interrupted):
            self.journal.set_status(run_id, "cancelled")
        elif isinstance(event, Started):
            self.journal.set_status(run_id, "running")

    async def _save(self, pid: str, refs: Sequence[OutputRef]) -> list[str]:
        """Download and store each output not stored yet; returns what could not be downloaded."""
        failed: list[str] = []
        saved = self.saved.setdefault(pid, {})
        counts: dict[tuple[str, str], int] = {}
        for ref in refs:
            index = counts.get((ref.node_id, ref.kind), 0)
            if not ref.is_file:
                counts[(ref.node_id, ref.kind)] = index + 1
            source = output_source(ref, index)
            if source in saved:
                continue
            data: bytes | None = None
            if ref.is_file:
                self.fetches[source] += 1
                try:
                    data = await self.backend.fetch_output(ref)
                except BackendError as exc:
                    failed.append(f"{ref.filename}: {exc}")
                    continue
            elif not isinstance(ref.data, str | int | float):
                saved[source] = None
                continue
            name = (
                (safe_output_name(ref) if ref.filename else ref.url.rsplit("/", 1)[-1]) if ref.is_file else ""
            )
            saved[source] = self.journal.add_output(
                self.journal_ids[pid],
                node_id=ref.node_id,
                kind=ref.kind,
                data=data,
                text=None if data is not None else str(ref.data),
                source=source,
                filename=name,
            )
        return failed

    # -- submitting --------------------------------------------------------------------------------
    async def submit(
        self,
        graph: ApiGraph | None = None,
        *,
        workflow_id: str | None = None,
        inputs: dict[str, Any] | None = None,
        own_id: bool = True,
    ) -> tuple[int, Execution]:
        """Record, then submit (under our own prompt id unless `own_id` is False, as for a gateway)."""
        pid = str(uuid.uuid4()) if own_id else None
        run = self.journal.record_run(
            profile_id="test",
            server=self.backend.url,
            workflow_name="transcript",
            workflow_id=workflow_id,
            api_graph=graph.to_prompt() if graph is not None else {},
            ui_graph=None,
            values=dict(inputs or {}),
            seed=None,
            execution_id=pid,
        )
        if pid is not None:
            self.journal_ids[pid] = run.id  # events may race the POST's answer
        try:
            execution = await self.backend.submit(
                graph, workflow_id=workflow_id, inputs=inputs, prompt_id=pid
            )
        except BaseException as exc:
            self.journal.set_status(run.id, "failed", error=str(exc) or type(exc).__name__)
            raise
        self.journal_ids[execution.id] = run.id
        self.journal.mark_submitted(run.id, execution.id)
        return run.id, execution

    # -- waiting and reading -----------------------------------------------------------------------
    async def wait(self, pred: Callable[[BackendEvent], bool], timeout: float = TIMEOUT) -> BackendEvent:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: any(pred(e) for e in self.events))

        await asyncio.wait_for(until(), timeout)
        return next(e for e in self.events if pred(e))

    async def end_of(self, pid: str, timeout: float = TIMEOUT) -> ExecutionEvent:
        event = await self.wait(lambda e: isinstance(e, TERMINAL_EVENTS) and e.execution_id == pid, timeout)
        assert isinstance(event, TERMINAL_EVENTS)
        return event

    async def connected_times(self, n: int, timeout: float = TIMEOUT) -> None:
        """Wait until the stream has said CONNECTED `n` times (the first connect counts)."""
        await self.wait(lambda _e: self.states().count(ConnectionState.CONNECTED) >= n, timeout)

    def of(self, pid: str) -> list[ExecutionEvent]:
        return [e for e in self.events if getattr(e, "execution_id", None) == pid]  # type: ignore[misc]

    def states(self) -> list[ConnectionState]:
        return [e.status.state for e in self.events if isinstance(e, ConnectionChanged)]

    def statuses(self) -> list[ConnectionChanged]:
        return [e for e in self.events if isinstance(e, ConnectionChanged)]

    def run(self, run_id: int) -> RunRecord:
        record = self.journal.run(run_id)
        assert record is not None
        return record

    def outputs(self, run_id: int) -> list[OutputRecord]:
        return self.journal.outputs_of_run(run_id)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def kinds(events: Sequence[ExecutionEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def assert_ended_once(sink: JournalSink, pid: str) -> ExecutionEvent:
    """One Queued, one terminal event and it is the last, at most one Started, no output node twice."""
    events = sink.of(pid)
    assert sum(isinstance(e, Queued) for e in events) == 1, kinds(events)
    assert sum(isinstance(e, TERMINAL_EVENTS) for e in events) == 1, kinds(events)
    assert isinstance(events[-1], TERMINAL_EVENTS), kinds(events)
    assert sum(isinstance(e, Started) for e in events) <= 1, kinds(events)
    nodes = [e.node_id for e in events if isinstance(e, NodeOutput)]
    assert len(nodes) == len(set(nodes)), f"an output node announced twice: {nodes}"
    return events[-1]


def assert_journal_matches(sink: JournalSink, run_id: int, end: ExecutionEvent, blobs: Path) -> None:
    """The journal's row and outputs say what the terminal event says, each output stored once."""
    run = sink.run(run_id)
    assert run.execution_id == end.execution_id
    assert run.finished_at is not None
    outputs = sink.outputs(run_id)
    if isinstance(end, Completed):
        assert run.status == "completed" and run.error is None, (run.status, run.error)
        expected = sorted((r.node_id, r.kind) for r in end.outputs if r.is_file or r.kind == "text")
        assert sorted((o.node_id, o.kind) for o in outputs) == expected
    elif isinstance(end, Failed):
        assert run.status == "failed" and run.error == end.error.message
    else:
        assert run.status == "cancelled"
    for record in outputs:
        if record.path is not None:
            assert record.path.is_relative_to(blobs) and sha(record.path.read_bytes()) == record.sha256
    downloaded = [
        source for source, n in sink.fetches.items() if source in sink.saved.get(end.execution_id, {})
    ]
    assert all(sink.fetches[s] == 1 for s in downloaded), sink.fetches
