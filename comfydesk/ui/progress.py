"""ProgressPanel: the current run at a glance, bound to a RunState: one fixed-height bar under the canvas.

Status (queue position, Running, Done...), the node executing, its steps, the ETA, the nodes done and the
time taken, in a bar whose height never changes, so nothing moves when a run starts or ends. The live
preview is the canvas's (`comfydesk.ui.canvas`). A failed run's `error_view` belongs to the panel but is
placed by its owner (over the canvas); alone, the panel shows it as its own child.

`show_workflow(key, state)` makes the panel show only runs of that workflow: a run of another one (still
going, or ended while this one was on screen) leaves it showing this workflow's own last outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QWidget,
)

from comfydesk.app.run_state import RunState
from comfydesk.app.workflow_state import WorkflowState
from comfydesk.core.events import ExecutionStatus, FailureInfo
from comfydesk.ui.error_view import ErrorView

__all__ = ["BAR_HEIGHT", "ProgressPanel", "format_duration"]

BAR_HEIGHT = 34  # px: the bar never grows or shrinks


def format_duration(seconds: float) -> str:
    """0:04, 1:02:03."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def queue_text(position: int | None) -> str:
    if position is None:
        return "Waiting in the queue"
    if position <= 0:
        return "Next in the queue"
    return f"Waiting — {position} ahead in the queue"


class ProgressPanel(QFrame):
    """See the module docstring. Object names are stable API for tests and style sheets."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("progressPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFixedHeight(BAR_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._state: RunState | None = None
        self._connections: list[tuple[Any, Callable[..., None]]] = []
        self._key: str | None = None  # None: every run of the state is shown
        self._last: WorkflowState | None = None

        self.status_label = QLabel(self)
        self.status_label.setObjectName("queuePositionLabel")
        font = QFont(self.status_label.font())
        font.setBold(True)
        self.status_label.setFont(font)
        self.status_label.setMinimumWidth(self.status_label.fontMetrics().horizontalAdvance("Cancelled") + 8)
        self.elapsed_label = QLabel(self)
        self.elapsed_label.setObjectName("elapsedLabel")
        self.elapsed_label.setToolTip("Time since the run started")
        self.elapsed_label.setMinimumWidth(self.elapsed_label.fontMetrics().horizontalAdvance("00:00") + 6)
        self.elapsed_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.node_label = QLabel(self)
        self.node_label.setObjectName("nodeLabel")
        self.node_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.node_label.setMinimumWidth(60)
        self.step_bar = QProgressBar(self)
        self.step_bar.setObjectName("stepProgress")
        self.step_bar.setAccessibleName("Step progress")
        self.step_bar.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.eta_label = QLabel(self)
        self.eta_label.setObjectName("etaLabel")
        self.eta_label.setMinimumWidth(self.eta_label.fontMetrics().horizontalAdvance("ETA 00:00") + 4)
        self.eta_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.overall_caption = QLabel("Nodes", self)
        self.overall_caption.setObjectName("overallCaption")
        self.overall_caption.setToolTip("Nodes of the workflow done")
        self.overall_caption.hide()  # the bar says "2/7 nodes" itself
        self.overall_bar = QProgressBar(self)
        self.overall_bar.setObjectName("overallProgress")
        self.overall_bar.setAccessibleName("Overall progress")
        self.overall_bar.setFixedWidth(96)
        self.error_view = ErrorView(self)
        self.error_view.setVisible(False)
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._tick)

        row = QHBoxLayout(self)
        row.setContentsMargins(8, 2, 8, 2)
        row.setSpacing(8)
        row.addWidget(self.status_label)
        row.addWidget(self.node_label, 1)
        row.addWidget(self.step_bar, 2)
        row.addWidget(self.eta_label)
        row.addWidget(self.overall_bar)
        row.addWidget(self.elapsed_label)
        self._show_idle()

    # ------------------------------------------------------------------------------------------ binding
    def changeEvent(self, event: QEvent) -> None:
        if event.type() is QEvent.Type.PaletteChange:  # light <-> dark (the error view cannot see it)
            self.error_view.update_accents()
        super().changeEvent(event)

    def bind(self, run_state: RunState | None) -> None:
        """Follow `run_state` (None: follow nothing); the previous one is let go."""
        self.unbind()
        self._state = run_state
        if run_state is None:
            self._show_idle()
            return
        pairs: list[tuple[Any, Callable[..., None]]] = [
            (run_state.status_changed, self._on_status),
            (run_state.queue_position_changed, self._on_queue_position),
            (run_state.node_changed, self._on_node),
            (run_state.step_progress_changed, self._on_step),
            (run_state.eta_changed, self._on_eta),
            (run_state.overall_progress_changed, self._on_overall),
            (run_state.failed, self._on_failed),
        ]
        for signal, slot in pairs:
            signal.connect(slot)
        self._connections = pairs
        self._catch_up()

    def unbind(self) -> None:
        for signal, slot in self._connections:
            signal.disconnect(slot)
        self._connections = []
        self._state = None
        self._timer.stop()

    def run_state(self) -> RunState | None:
        return self._state

    def show_workflow(self, key: str | None, last: WorkflowState | None = None) -> None:
        """Show runs of `key` only (None: every run), and `last` (that workflow's state) when none of its
        runs is followed: its last outcome and failure."""
        self._key, self._last = key, last
        self._catch_up()

    def live(self) -> bool:
        """True when the followed run is one this panel shows."""
        state = self._state
        return (
            state is not None
            and state.status is not None
            and (self._key is None or state.workflow_key == self._key)
        )

    # ------------------------------------------------------------------------------------------ slots
    def details_shown(self) -> bool:
        """True while the node, step and overall bars are shown (a run has started)."""
        return not self.step_bar.isHidden()

    def _catch_up(self) -> None:
        """Show the followed run as it is now (or this workflow's last outcome)."""
        state = self._state
        if state is None or not self.live():
            self._show_idle()
            self._show_last()
            return
        self.error_view.setVisible(False)
        self._on_status(state.status)
        self._on_node(*state.node)
        self._on_step(*state.step_progress)
        self._on_eta(state.eta)
        self._on_overall(*state.overall_progress)

    def _show_last(self) -> None:
        last = self._last
        if last is None or last.status is None:
            return
        self.status_label.setText(_ENDED.get(last.status, str(last.status)))
        self.elapsed_label.setText(format_duration(last.elapsed) if last.elapsed else "")
        if last.failure is not None:
            self.error_view.set_failure(last.failure, node_title=last.failure_title)
            self.error_view.setVisible(True)

    def _show_details(self, shown: bool) -> None:
        # Idle, the bar says "Ready"; its height stays the same either way.
        for widget in (
            self.node_label,
            self.step_bar,
            self.eta_label,
            self.overall_bar,
        ):
            widget.setVisible(shown)

    def _show_idle(self) -> None:
        self._timer.stop()
        self._show_details(False)
        self.status_label.setText("Ready")
        self.node_label.setText("")
        self.elapsed_label.setText("")
        self._set_step(0, 0)
        self.eta_label.setText("")
        self._set_overall(0, 0)
        self.error_view.setVisible(False)

    def _on_status(self, status: object) -> None:
        if not self.live():
            self._catch_up()
            return
        state = self._state
        if status is ExecutionStatus.QUEUED:
            self.error_view.setVisible(False)
            self._show_details(False)
            self.elapsed_label.setText("")
            self._on_queue_position(state.queue_position if state else None)
        elif status is ExecutionStatus.RUNNING:
            self._show_details(True)
            index, total = state.batch if state else (0, 1)
            self.status_label.setText(f"Running — image {index + 1} of {total}" if total > 1 else "Running")
            self._tick()
            self._timer.start()
        elif isinstance(status, ExecutionStatus):
            # Over: how many nodes ran and the time it took; no step bar left empty.
            self._show_details(False)
            self.overall_bar.setVisible(status is ExecutionStatus.COMPLETED)
            self._timer.stop()
            self._tick()
            self.status_label.setText(_ENDED.get(status, str(status)))
            self._on_eta(None)

    def _on_queue_position(self, position: object) -> None:
        state = self._state
        if state is not None and state.status is ExecutionStatus.QUEUED and self.live():
            self.status_label.setText(queue_text(position if isinstance(position, int) else None))

    def _on_node(self, node_id: str, title: str) -> None:
        if not self.live():
            return
        self.node_label.setText(title)
        self.node_label.setToolTip(f"{title} (#{node_id})" if node_id else "")

    def _on_step(self, value: int, maximum: int) -> None:
        if self.live():
            self._set_step(value, maximum)

    def _set_step(self, value: int, maximum: int) -> None:
        if maximum <= 0:
            self.step_bar.setRange(0, 1)
            self.step_bar.setValue(0)
            self.step_bar.setFormat("")
        else:
            self.step_bar.setRange(0, maximum)
            self.step_bar.setValue(min(value, maximum))
            self.step_bar.setFormat("%v/%m")

    def _on_eta(self, eta: object) -> None:
        if self.live():
            self.eta_label.setText(f"ETA {format_duration(eta)}" if isinstance(eta, int | float) else "")

    def _on_overall(self, done: int, total: int) -> None:
        if self.live():
            self._set_overall(done, total)

    def _set_overall(self, done: int, total: int) -> None:
        self.overall_bar.setRange(0, max(1, total))
        self.overall_bar.setValue(min(done, max(1, total)) if total else 0)
        self.overall_bar.setFormat(f"{done}/{total} nodes" if total else "")
        self.overall_bar.setToolTip(f"{done} of {total} nodes done" if total else "")

    def _on_failed(self, failure: object) -> None:
        if not isinstance(failure, FailureInfo) or not self.live():
            return
        title = self._state.node_title(failure.node_id) if self._state and failure.node_id else ""
        self.error_view.set_failure(failure, node_title=title)
        self.error_view.setVisible(True)

    def _tick(self) -> None:
        if self._state is not None and self.live() and self._state.status is not ExecutionStatus.QUEUED:
            self.elapsed_label.setText(format_duration(self._state.elapsed()))


_ENDED = {
    ExecutionStatus.COMPLETED: "Done",
    ExecutionStatus.FAILED: "Failed",
    ExecutionStatus.CANCELLED: "Cancelled",
}
