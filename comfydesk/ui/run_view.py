"""RunView: what the canvas, the progress bar, the banner, the strip and the batch count show, for the
workflow on screen.

Each workflow has its own state (`comfydesk.app.workflow_state`): its error, its last run's outcome and
results, its batch count. This binds the window's widgets to the state of the workflow shown: switching
workflows shows the other one's state (or none), switching back restores it, and a run of another workflow
ending in the background changes that one's state only. Live previews show only for a run of the workflow
on screen; once its run is done the canvas shows the final image (a batch: the grid), never the last preview.
"""

from __future__ import annotations

from dataclasses import replace as dc_replace

from PySide6.QtCore import QObject, QSignalBlocker
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QSpinBox

from comfydesk.app.controller import RunController
from comfydesk.app.library import CurrentWorkflow
from comfydesk.app.run_state import ResultItem, RunState
from comfydesk.app.tasks import AppError
from comfydesk.app.workflow_state import RUN_ERRORS, WorkflowStates
from comfydesk.core.errors import ValidationIssue
from comfydesk.core.events import ExecutionStatus
from comfydesk.core.messages import Message, for_error, for_issue, for_validation
from comfydesk.ui.canvas import EMPTY_TEXT, RunCanvas
from comfydesk.ui.error_view import ErrorView
from comfydesk.ui.form import FormView
from comfydesk.ui.results import ResultsStrip

__all__ = ["RunView"]


class RunView(QObject):
    """See the module docstring. `error_view` is the window's banner (errors that are no run's go there
    too, whatever workflow is shown)."""

    def __init__(
        self,
        *,
        run_state: RunState,
        controller: RunController,
        canvas: RunCanvas,
        strip: ResultsStrip,
        error_view: ErrorView,
        batch: QSpinBox,
        form: FormView,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.run_state = run_state
        self.controller = controller
        self.canvas = canvas
        self.strip = strip
        self.error_view = error_view
        self.batch = batch
        self.form = form
        self._loose_issues: list[ValidationIssue] = []
        self.states = WorkflowStates(run_state, self)
        self.key: str | None = None
        self._window_error: Message | None = None  # an error that is no run's (connection, settings...)
        canvas.progress.bind(run_state)
        self.states.changed.connect(self._state_changed)
        controller.results_added.connect(self._results_added)
        run_state.preview_changed.connect(self._on_preview)
        run_state.status_changed.connect(self._on_status)
        batch.valueChanged.connect(lambda n: self.states.set_batch(self.key, n))
        strip.open_requested.connect(self._strip_opened)

    # ------------------------------------------------------------------------------------------ inputs
    def on_current(self, current: object) -> None:
        key = current.key if isinstance(current, CurrentWorkflow) else None
        if key == self.key:
            return
        self.key = key
        self._show_all()

    def on_issues(self, issues: object) -> None:
        """Each problem once, in plain words: on its field when it has one; the rest go to the banner
        (through `report`, which the same refused run reports next)."""
        assert isinstance(issues, list)
        on_field = [i for i in issues if i.field_key and i.field_key in self.form.rows]
        self._loose_issues = [i for i in issues if i not in on_field]
        if on_field:
            self.form.show_issues([dc_replace(i, message=for_issue(i)) for i in on_field])
            self.form.focus_field(on_field[0].field_key)
        else:
            self.form.clear_issues()

    def report(self, error: object) -> None:
        """One banner, in plain words (`comfydesk.core.messages`), the technical part behind Details;
        the status bar does not repeat it. A refused run whose problems are all on fields shows none."""
        if not isinstance(error, AppError):
            self.on_error(None, None)
            return
        loose = self._loose_issues
        if error.exception_type == "ValidationError" and not loose and self.form.issues():
            self.on_error(error, None)  # every problem is on its field already
            return
        if error.exception_type == "ValidationError" and loose:
            message = for_validation(loose, on_fields=False)
        else:
            message = for_error(
                exception_type=error.exception_type,
                message=error.message,
                hint=error.hint,
                details=error.details,
                what=error.what,
                expected=error.expected,
            )
        self.on_error(error, message)  # the banner of the workflow that was run (or the window's)

    def on_error(self, error: AppError | None, message: Message | None) -> None:
        """An error reported (None: cleared): a run's belongs to the workflow that was run, any other one to
        the window. `message` is what the banner says (None: nothing, the problems are on their fields)."""
        run_key = self.controller.run_key
        if error is not None and error.what in RUN_ERRORS and run_key is not None:
            self.states.set_error(run_key, error, message)
            return
        if error is None and self.controller.busy and run_key is not None:
            self.states.set_error(run_key, None)  # a new run of it starts: its old error goes
        self._window_error = message if error is not None else None
        self._show_banner()

    # ------------------------------------------------------------------------------------------ showing
    def _show_all(self) -> None:
        state = self.states.get(self.key)
        with QSignalBlocker(self.batch):
            self.batch.setValue(state.batch)
        # No workflow shown: "" matches no run (None would show every run).
        self.canvas.progress.show_workflow(self.key or "", state if self.key is not None else None)
        self.strip.set_results(list(reversed(state.recent)))
        self._show_banner()
        self._show_canvas()

    def _show_banner(self) -> None:
        state = self.states.get(self.key)
        message = self._window_error or state.error_message
        if isinstance(message, Message):
            self.error_view.set_message(message)
            self.error_view.show()
        else:
            self.error_view.set_error("", "")
            self.error_view.hide()

    def _live(self) -> bool:
        status = self.run_state.status
        return (
            self.key is not None
            and self.run_state.workflow_key == self.key
            and status is not None
            and not status.finished
        )

    def _show_canvas(self) -> None:
        preview = self.run_state.preview
        if self._live() and preview is not None:
            self.canvas.show_preview(preview)
            return
        state = self.states.get(self.key)
        if state.results:
            self.canvas.show_results(state.results, state.recent)
        else:
            self.canvas.show_empty(EMPTY_TEXT if self.key is not None else "Pick a workflow to start.")

    def _state_changed(self, key: str) -> None:
        if key != self.key:
            return  # another workflow's: shown when the user goes back to it
        state = self.states.get(key)
        self.canvas.progress.show_workflow(key, state)
        self._show_banner()

    def _results_added(self, items: object) -> None:
        assert isinstance(items, list)
        self.states.add_results(items)
        mine = [i for i in items if isinstance(i, ResultItem) and i.workflow_key == self.key]
        if mine and self.key is not None:
            self.strip.add_results(mine)
            state = self.states.get(self.key)
            # The final image replaces the preview (in a batch, the next run's preview replaces it in turn).
            self.canvas.show_results(state.results, state.recent)

    def _on_preview(self, image: object) -> None:
        if isinstance(image, QImage) and self._live():
            self.canvas.show_preview(image)

    def _on_status(self, status: object) -> None:
        if self.run_state.workflow_key != self.key:
            return
        if status in (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED) and self.canvas.mode() == "preview":
            self._show_canvas()  # no final image: back to the last one made

    def _strip_opened(self, item: object) -> None:
        if not isinstance(item, ResultItem):
            return
        state = self.states.get(self.key)
        if item in state.results:
            self.canvas.show_results(state.results, state.recent)
            self.canvas.open_item(state.results.index(item))
        else:
            self.canvas.show_results([item], state.recent)
