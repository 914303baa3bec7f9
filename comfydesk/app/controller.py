"""The run controller: form values -> graph -> uploads -> submit, events -> RunState, outputs -> result files.

`run(batch)` takes the bound form's values, fills the FormSpec, uploads image fields (a file or a pasted
image), and submits; for a batch it applies the form's seed controls after each submission, as ComfyUI's
"control after generate" does. Events of this window's executions (from `ConnectionModel.event_received`)
drive the `RunState` the progress panel shows; `app.collect.OutputCollector` takes the outputs to the
journal, `results/<date>/` and `results_added`. Validation errors, from the form or from the server, come out
on `issues_changed` with each issue placed on its field.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, Signal

from comfydesk.app.collect import OutputCollector, RunOutputs, write_unique
from comfydesk.app.connection import ConnectionModel
from comfydesk.app.form_memory import FormMemory
from comfydesk.app.journal_runs import RunRecorder
from comfydesk.app.library import CurrentWorkflow
from comfydesk.app.run_state import PastedImage, ResultItem, RunState
from comfydesk.app.tasks import ErrorModel, TaskRunner
from comfydesk.backends.base import Backend, Execution
from comfydesk.core.errors import ComfyDeskError, ValidationError, ValidationIssue
from comfydesk.core.events import (
    TERMINAL_EVENTS,
    Completed,
    ExecutionEvent,
    Failed,
    Interrupted,
    NodeOutput,
    Queued,
)
from comfydesk.core.graph import ApiGraph
from comfydesk.core.templates import FieldKind, FormSpec, build_form

__all__ = ["FormMemory", "FormPort", "QueueEntry", "RunController", "map_issues", "write_unique"]

log = logging.getLogger(__name__)
MAX_BATCH = 100
_EARLY_LIMIT = 2000  # events kept for an execution whose submit has not returned yet
KEEP_ENDED_RUNS = 64  # ended runs still recognised when a late event comes; older ones are forgotten


class FormPort(Protocol):
    """What the controller needs from the form widget."""

    def values(self) -> dict[str, Any]: ...

    def apply_seed_controls(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One execution this window queued and that has not ended."""

    execution_id: str
    workflow_name: str
    batch_index: int
    batch_total: int
    running: bool = False
    position: int | None = None

    @property
    def label(self) -> str:
        batch = f" ({self.batch_index + 1}/{self.batch_total})" if self.batch_total > 1 else ""
        return f"{self.workflow_name}{batch}"


@dataclass(slots=True)
class _Run:
    execution: Execution
    workflow_name: str
    node_titles: dict[str, str]
    batch_index: int
    batch_total: int
    workflow_key: str = ""
    batch_id: str = ""
    running: bool = False
    position: int | None = None
    ended: bool = False
    outputs: RunOutputs = field(default_factory=RunOutputs)


def map_issues(
    issues: tuple[ValidationIssue, ...] | list[ValidationIssue], spec: FormSpec
) -> list[ValidationIssue]:
    """Give each issue the key of the form field that owns its node input (when one does)."""
    owner: dict[tuple[str, str], str] = {}
    for f in spec.fields():
        if f.node_id is not None and f.input_name is not None:
            owner[(f.node_id, f.input_name)] = f.key
        for target in f.targets:
            owner.setdefault(target, f.key)
    # A gateway names a stored workflow's inputs by placeholder ("input 'prompt'"), with no node.
    placeholders = {f.key for f in spec.placeholders}
    for name in placeholders:
        owner.setdefault(("", name), name)
    return [
        i if i.field_key else replace(i, field_key=owner.get((i.node_id, i.input_name or ""))) for i in issues
    ]


class RunController(QObject):
    """Runs the current workflow and follows this window's executions."""

    queue_changed = Signal(object)  # list[QueueEntry]
    issues_changed = Signal(object)  # list[ValidationIssue] (empty: cleared)
    results_added = Signal(object)  # list[ResultItem]
    busy_changed = Signal(bool)  # submitting, or something of ours queued/running
    submitted = Signal(object)  # Execution (its graph is what was sent)
    last_seed_changed = Signal(str, object)  # field key, the seed the last run used
    message_changed = Signal(str)

    def __init__(
        self,
        tasks: TaskRunner,
        connection: ConnectionModel,
        run_state: RunState,
        errors: ErrorModel,
        results_dir: Path,
        *,
        memory: FormMemory | None = None,
        recorder: RunRecorder | None = None,
        clock: Callable[[], datetime] = datetime.now,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.recorder = recorder
        self._tasks = tasks
        self._collector = OutputCollector(tasks, recorder, clock=clock)
        self._connection = connection
        self.run_state = run_state
        self._errors = errors
        self.results_dir = results_dir
        self._memory = memory
        self._clock = clock
        self._form: FormPort | None = None
        self._current: CurrentWorkflow | None = None
        self._runs: dict[str, _Run] = {}
        self._early: dict[str, list[ExecutionEvent]] = {}
        self._submitting = False
        self._stop_batch = False
        self._busy = False
        self._issues: list[ValidationIssue] = []
        self._run_key: str | None = None
        connection.event_received.connect(self.handle_event)

    # -- inputs ------------------------------------------------------------------------------------
    def bind_form(self, form: FormPort | None) -> None:
        self._form = form

    def set_current(self, current: CurrentWorkflow | None) -> None:
        self._current = current
        self._set_issues([])

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def run_key(self) -> str | None:
        """The library key of the workflow the last `run` was for (its errors belong to it)."""
        return self._run_key

    def queue_entries(self) -> list[QueueEntry]:
        return [
            QueueEntry(eid, r.workflow_name, r.batch_index, r.batch_total, r.running, r.position)
            for eid, r in self._runs.items()
            if not r.ended
        ]

    # -- slots -------------------------------------------------------------------------------------
    def run(self, batch: int = 1) -> None:
        """Queue `batch` runs (1-100) of the current workflow with the form's values."""
        if self._submitting:
            return
        batch = max(1, min(MAX_BATCH, int(batch)))
        self._run_key = self._current.key if self._current is not None else None
        self._submitting = True
        self._stop_batch = False
        self._update_busy()
        self._tasks.start(self._run_batch(batch), what="Running the workflow")

    def cancel(self) -> None:
        """Interrupt our running execution and delete what this window queued."""
        self._stop_batch = True
        ids = [eid for eid, r in self._runs.items() if not r.ended]
        ids.sort(key=lambda eid: not self._runs[eid].running)  # pending ones first would start next
        ids.reverse()
        if ids:
            self._tasks.start(self._cancel(ids), what="Cancelling")

    def cancel_execution(self, execution_id: str) -> None:
        if execution_id in self._runs and not self._runs[execution_id].ended:
            self._tasks.start(self._cancel([execution_id]), what="Cancelling")

    def handle_event(self, event: object) -> None:
        """Take an execution event of this client (from the connection)."""
        eid = getattr(event, "execution_id", None)
        if not isinstance(eid, str):
            return
        run = self._runs.get(eid)
        if run is None:
            if self._submitting:  # our submit has not returned yet: keep the events until it does
                early = self._early.setdefault(eid, [])
                if len(early) < _EARLY_LIMIT or isinstance(event, TERMINAL_EVENTS):
                    early.append(event)  # type: ignore[arg-type]
            return
        self._apply(run, event)

    # -- internals: submitting ---------------------------------------------------------------------
    async def _run_batch(self, batch: int) -> None:
        try:
            await self._submit_all(batch)
        finally:
            self._submitting = False
            self._early.clear()
            self._update_busy()

    async def _submit_all(self, batch: int) -> None:
        current, form = self._current, self._form
        if current is None or current.spec is None or current.workflow is None:
            raise ComfyDeskError("no workflow is ready to run", hint="Pick a workflow from the library.")
        if form is None:
            raise ComfyDeskError("the form is not ready")
        backend = self._require_backend()
        self._set_issues([])
        self._errors.clear()
        spec = current.spec
        values = form.values()
        batch_id = uuid.uuid4().hex
        for index in range(batch):
            if self._stop_batch:
                break
            if current.runs_on_server:
                graph_values, spec_used = values, spec
            else:
                graph_values, spec_used = await self._upload_images(backend, current, spec, values)
            try:
                graph = spec_used.fill(graph_values)
            except ValidationError as exc:
                self._show_validation(exc, spec)
                return
            # Our own prompt id, written to the journal before the POST: if comfydesk dies between the POST
            # and its answer, the next start still finds the run on the server (a gateway picks its own).
            prompt_id = None if current.runs_on_server else str(uuid.uuid4())
            journal_id = await self._collector.record(current, spec, graph, graph_values, prompt_id)
            try:
                execution = await self._submit(backend, current, spec, graph, graph_values, prompt_id)
            except ValidationError as exc:
                await self._journal_status(journal_id, "failed", "; ".join(exc.lines()) or exc.message)
                self._show_validation(exc, spec)
                return
            except BaseException as exc:
                await self._journal_status(journal_id, "failed", str(exc) or type(exc).__name__)
                raise
            if execution.graph is None:
                execution = replace(execution, graph=graph)
            if self.recorder is not None:
                # Not awaited: events arriving meanwhile would pile up unapplied. The journal's one worker
                # takes writes in order, so this lands before any status change of the run.
                self._tasks.start(self.recorder.submitted(journal_id, execution.id), what="Recording the run")
            self._register(execution, current, spec, index, batch, journal_id, batch_id)
            self._remember_seed(current, spec, values)
            values = form.apply_seed_controls()  # control after generate: the next run's values
        self.message_changed.emit(f"Queued {batch} run{'s' if batch != 1 else ''} of {current.entry.name}")

    async def _journal_status(self, journal_id: int | None, status: str, error: str | None = None) -> None:
        await self._collector.journal_status(journal_id, status, error)

    @staticmethod
    async def _submit(
        backend: Backend,
        current: CurrentWorkflow,
        spec: FormSpec,
        graph: ApiGraph,
        values: Mapping[str, Any],
        prompt_id: str | None = None,
    ) -> Execution:
        """Send the filled graph under `prompt_id`; a gateway's stored workflow runs on the server with its
        placeholder values (the graph filled here is only what the progress panel follows)."""
        if not current.runs_on_server:
            return await backend.submit(graph, prompt_id=prompt_id)
        assert current.workflow is not None and current.workflow.workflow_id is not None
        inputs = {f.key: values[f.key] for f in spec.placeholders if f.key in values}
        for key, value in inputs.items():
            if isinstance(value, Path | PastedImage):
                raise ValidationError(
                    [
                        ValidationIssue(
                            node_id="",
                            input_name=key,
                            field_key=key,
                            message="A gateway cannot take an uploaded image; give the name of one it has.",
                        )
                    ]
                )
        return await backend.submit(workflow_id=current.workflow.workflow_id, inputs=inputs)

    def _require_backend(self) -> Backend:
        backend = self._connection.backend
        if backend is None:
            raise ComfyDeskError("not connected to a server", hint="Connect, or start the demo engine.")
        return backend

    async def _upload_images(
        self, backend: Backend, current: CurrentWorkflow, spec: FormSpec, values: Mapping[str, Any]
    ) -> tuple[dict[str, Any], FormSpec]:
        out = dict(values)
        uploaded = False
        for key, value in values.items():
            if isinstance(value, Path):
                data = await asyncio.to_thread(value.read_bytes)
                name = value.name
            elif isinstance(value, PastedImage):
                data = value.data
                ext = "jpg" if value.mime == "image/jpeg" else value.mime.rpartition("/")[2] or "png"
                name = f"pasted-{hashlib.sha256(data).hexdigest()[:12]}.{ext}"
            else:
                continue
            image = await backend.upload_image(data, name, overwrite=True)
            out[key] = image.input_value
            uploaded = True
        if not uploaded:
            return out, spec
        # The new file is not in the form's choice list yet: check against the server's fresh catalog.
        catalog = await backend.node_catalog(refresh=True)
        assert current.workflow is not None
        return out, build_form(current.workflow, catalog)

    def _show_validation(self, exc: ValidationError, spec: FormSpec) -> None:
        self._set_issues(map_issues(exc.issues, spec))
        self._errors.report_exception(exc, what="The workflow was not run")

    def _remember_seed(self, current: CurrentWorkflow, spec: FormSpec, values: Mapping[str, Any]) -> None:
        first: int | None = None
        for f in spec.fields():
            seed = values.get(f.key)
            if f.kind is FieldKind.SEED and isinstance(seed, int) and not isinstance(seed, bool):
                self.last_seed_changed.emit(f.key, seed)
                first = seed if first is None else first
        if first is not None and self._memory is not None:
            self._memory.remember(current.key, last_seed=first)

    def _register(
        self,
        execution: Execution,
        current: CurrentWorkflow,
        spec: FormSpec,
        index: int,
        total: int,
        journal_id: int | None = None,
        batch_id: str = "",
    ) -> None:
        graph = execution.graph
        titles: dict[str, str] = {}
        if graph is not None:
            for nid, node in graph.items():
                ndef = spec.catalog.get(node.class_type)
                titles[nid] = node.title or (ndef.title if ndef else node.class_type)
        run = _Run(
            execution,
            current.entry.name,
            titles,
            index,
            total,
            workflow_key=current.key,
            batch_id=batch_id,
            outputs=RunOutputs(journal_id=journal_id),
        )
        self._runs[execution.id] = run
        self._forget_ended_runs()
        self.submitted.emit(execution)
        if not self._following():
            self._follow(run)
        for event in self._early.pop(execution.id, []):
            self._apply(run, event)
        self._publish_queue()

    def _forget_ended_runs(self) -> None:
        """Keep the newest KEEP_ENDED_RUNS ended runs (a late event about one is then recognised and
        ignored); older ones go, or an overnight batch would hold every run's graph and outputs."""
        ended = [eid for eid, r in self._runs.items() if r.ended]
        for eid in ended[: max(0, len(ended) - KEEP_ENDED_RUNS)]:
            del self._runs[eid]

    # -- internals: events -------------------------------------------------------------------------
    def _following(self) -> bool:
        status = self.run_state.status
        return self.run_state.execution_id is not None and status is not None and not status.finished

    def _follow(self, run: _Run) -> None:
        assert run.execution.graph is not None
        self.run_state.begin(
            run.execution.id,
            graph=run.execution.graph,
            node_titles=run.node_titles,
            batch_index=run.batch_index,
            batch_total=run.batch_total,
            workflow_key=run.workflow_key,
        )

    def _apply(self, run: _Run, event: object) -> None:
        if run.ended:
            return
        eid = run.execution.id
        if self.run_state.execution_id != eid and not self._following() and not isinstance(event, Queued):
            self._follow(run)  # the previous run ended: the panel follows this one now
        self.run_state.apply(event)
        changed = False
        if isinstance(event, Queued):
            changed = run.position != event.position
            run.position = event.position
        elif not run.running and not isinstance(event, TERMINAL_EVENTS):
            run.running, run.position, changed = True, None, True
            self._tasks.start(
                self._journal_status(run.outputs.journal_id, "running"), what="Recording the run"
            )
        if isinstance(event, NodeOutput) and self._connection.backend is not None:
            # Downloaded and saved now, not at the end: a temporary output the server forgets later is safe
            # already, and the result's thumbnail is under way before the run ends.
            self._collector.announced(self._connection.backend, run.outputs, event.outputs)
        if isinstance(event, TERMINAL_EVENTS):
            run.ended, changed = True, True
            if isinstance(event, Completed):
                self._tasks.start(self._collect(run, event), what="Saving the results")
            elif isinstance(event, Failed):
                log.info("run %s failed: %s", eid, event.error.message)
                ending = self._collector.end(run.outputs, "failed", event.error.message)
                self._tasks.start(ending, what="Recording the run")
            elif isinstance(event, Interrupted):
                self.message_changed.emit(f"{run.workflow_name}: cancelled")
                self._tasks.start(self._collector.end(run.outputs, "cancelled"), what="Recording the run")
            self._start_next_following()
        if changed:
            self._publish_queue()

    def _start_next_following(self) -> None:
        waiting = [r for r in self._runs.values() if not r.ended]
        if waiting and not self._following():
            running = [r for r in waiting if r.running]
            self._follow((running or waiting)[0])

    async def _collect(self, run: _Run, completed: Completed) -> None:
        """The run completed: its images to the results folder and strip, the rest of it to the journal."""
        day = self.results_dir / self._clock().strftime("%Y-%m-%d")
        template = ResultItem(
            day,
            run.execution.id,
            run.workflow_name,
            "",
            self._clock(),
            workflow_key=run.workflow_key,
            batch_id=run.batch_id,
            batch_index=run.batch_index,
        )

        def publish(items: list[ResultItem]) -> None:
            self.results_added.emit(items)
            self.message_changed.emit(
                f"{run.workflow_name}: {len(items)} image{'s' if len(items) != 1 else ''} saved to {day}"
            )

        backend = self._require_backend()
        await self._collector.collect(backend, run.outputs, completed.outputs, day, template, publish)

    async def _cancel(self, ids: list[str]) -> None:
        backend = self._require_backend()
        for eid in ids:
            run = self._runs.get(eid)
            if run is None or run.ended:
                continue
            await backend.cancel(eid)
            if not run.running:  # a deleted pending run gets no event: end it here
                run.ended = True
                if self.run_state.execution_id == eid:
                    self.run_state.apply(Interrupted(eid, reason="cancelled"))
        self._start_next_following()
        self._publish_queue()

    # -- internals: state --------------------------------------------------------------------------
    def _publish_queue(self) -> None:
        self.queue_changed.emit(self.queue_entries())
        self._update_busy()

    def _update_busy(self) -> None:
        busy = self._submitting or any(not r.ended for r in self._runs.values())
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def _set_issues(self, issues: list[ValidationIssue]) -> None:
        if issues != self._issues:
            self._issues = issues
            self.issues_changed.emit(list(issues))
