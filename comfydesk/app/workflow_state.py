"""What each workflow has been through in this window: its error, its last run's outcome, its results, and
the batch count the user set for it, keyed by the workflow's library key.

The window shows one workflow at a time, but runs go on in the background: a run of workflow A that ends
while B is on screen updates A's entry here, and B's view stays as it was. Switching back to A shows A's
own state again. Nothing here is a widget; the window reads an entry when it shows a workflow and listens
to `changed(key)` for the entry of the one on screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal

from comfydesk.app.run_state import ResultItem, RunState
from comfydesk.app.tasks import AppError
from comfydesk.core.events import ExecutionStatus, FailureInfo

__all__ = ["RECENT_LIMIT", "RUN_ERRORS", "WorkflowState", "WorkflowStates"]

RECENT_LIMIT = 60
"""Results kept per workflow for the strip under the canvas (the gallery keeps every one)."""

RUN_ERRORS = ("Running the workflow", "The workflow was not run")
"""The `AppError.what` of errors that belong to the workflow being run (others are the window's)."""


@dataclass(slots=True)
class WorkflowState:
    """One workflow's state. `results` is its last batch (in batch order), `recent` every result of this
    session (oldest first, capped at `RECENT_LIMIT`)."""

    batch: int = 1
    error: AppError | None = None
    error_message: object = None  # what the window made of `error` (a core.messages.Message), or None
    status: ExecutionStatus | None = None  # how its last run ended (None: no run ended yet)
    elapsed: float = 0.0  # seconds its last run took
    failure: FailureInfo | None = None
    failure_title: str = ""  # the failed node's title
    batch_id: str = ""
    results: list[ResultItem] = field(default_factory=list)
    recent: list[ResultItem] = field(default_factory=list)


class WorkflowStates(QObject):
    """Every workflow's `WorkflowState`, fed by the run state (outcomes, failures) and the controller
    (results); errors come through `set_error` (the window decides what the banner says)."""

    changed = Signal(str)  # workflow key

    def __init__(self, run_state: RunState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._states: dict[str, WorkflowState] = {}
        self._run_state = run_state
        run_state.status_changed.connect(self._on_status)
        run_state.failed.connect(self._on_failed)

    def get(self, key: str | None) -> WorkflowState:
        """The state of `key` (a fresh one, not stored, for None or an unknown key)."""
        if key is None:
            return WorkflowState()
        return self._states.get(key) or WorkflowState()

    def _entry(self, key: str) -> WorkflowState:
        return self._states.setdefault(key, WorkflowState())

    def workflow_keys(self) -> list[str]:
        return list(self._states)

    # ------------------------------------------------------------------------------------------ inputs
    def set_batch(self, key: str | None, count: int) -> None:
        if key is None or self.get(key).batch == count:
            return
        self._entry(key).batch = max(1, int(count))
        self.changed.emit(key)

    def set_error(self, key: str | None, error: AppError | None, message: object = None) -> None:
        """The error of `key`'s last run (None clears it); `message` is what the banner says (None: nothing,
        e.g. every problem is on its field)."""
        if key is None:
            return
        state = self.get(key)
        if state.error is None and error is None and key not in self._states:
            return
        entry = self._entry(key)
        entry.error, entry.error_message = error, message if error is not None else None
        self.changed.emit(key)

    def add_results(self, items: Sequence[ResultItem]) -> None:
        """Results of a run: each goes to its own workflow; a new batch replaces the last batch shown."""
        touched: list[str] = []
        for item in sorted(items, key=lambda r: (r.created, r.batch_index)):
            key = item.workflow_key
            if not key:
                continue
            entry = self._entry(key)
            if item.batch_id != entry.batch_id or not item.batch_id:
                entry.batch_id = item.batch_id
                entry.results = []
            entry.results.append(item)
            entry.results.sort(key=lambda r: r.batch_index)
            entry.recent.append(item)
            del entry.recent[:-RECENT_LIMIT]
            if key not in touched:
                touched.append(key)
        for key in touched:
            self.changed.emit(key)

    # ------------------------------------------------------------------------------------------ run state
    def _on_status(self, status: object) -> None:
        key = self._run_state.workflow_key
        if not key or not isinstance(status, ExecutionStatus):
            return
        entry = self._entry(key)
        if status is ExecutionStatus.QUEUED:
            if entry.failure is not None or entry.error is not None:
                entry.failure, entry.failure_title = None, ""
                entry.error = entry.error_message = None
                self.changed.emit(key)
            return
        if status.finished:
            entry.status = status
            entry.elapsed = self._run_state.elapsed()
            self.changed.emit(key)

    def _on_failed(self, failure: object) -> None:
        key = self._run_state.workflow_key
        if not key or not isinstance(failure, FailureInfo):
            return
        entry = self._entry(key)
        entry.failure = failure
        entry.failure_title = self._run_state.node_title(failure.node_id) if failure.node_id else ""
        self.changed.emit(key)
