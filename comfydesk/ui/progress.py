"""ProgressPanel: the current run at a glance, bound to a RunState."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QSize, Qt, QTimer
from PySide6.QtGui import QFont, QImage, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.run_state import RunState
from comfydesk.core.events import ExecutionStatus, FailureInfo
from comfydesk.ui.error_view import ErrorView

__all__ = ["ProgressPanel", "format_duration"]

PREVIEW_SIZE = QSize(132, 132)


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
    """Queue position, the node now executing, step and overall progress, ETA, elapsed time, live preview."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("progressPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._state: RunState | None = None
        self._connections: list[tuple[Any, Callable[..., None]]] = []
        self._preview: QPixmap | None = None

        self.status_label = QLabel(self)
        self.status_label.setObjectName("queuePositionLabel")
        font = QFont(self.status_label.font())
        font.setBold(True)
        self.status_label.setFont(font)
        self.elapsed_label = QLabel(self)
        self.elapsed_label.setObjectName("elapsedLabel")
        self.elapsed_label.setToolTip("Time since the run started")
        self.node_label = QLabel(self)
        self.node_label.setObjectName("nodeLabel")
        self.node_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.step_bar = QProgressBar(self)
        self.step_bar.setObjectName("stepProgress")
        self.step_bar.setAccessibleName("Step progress")
        self.eta_label = QLabel(self)
        self.eta_label.setObjectName("etaLabel")
        self.eta_label.setMinimumWidth(self.eta_label.fontMetrics().horizontalAdvance("ETA 00:00") + 4)
        self.eta_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.overall_caption = QLabel("Overall", self)
        self.overall_bar = QProgressBar(self)
        self.overall_bar.setObjectName("overallProgress")
        self.overall_bar.setAccessibleName("Overall progress")
        self.preview_label = QLabel(self)
        self.preview_label.setObjectName("previewImage")
        self.preview_label.setFixedSize(PREVIEW_SIZE)
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_label.setFrameShape(QFrame.Shape.StyledPanel)
        self.preview_label.setAccessibleName("Live preview")
        self.error_view = ErrorView(self)
        self.error_view.setVisible(False)
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._tick)

        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(6)
        grid.addWidget(self.status_label, 0, 0, 1, 2)
        grid.addWidget(self.elapsed_label, 0, 2, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.node_label, 1, 0)
        grid.addWidget(self.step_bar, 1, 1)
        grid.addWidget(self.eta_label, 1, 2)
        grid.addWidget(self.overall_caption, 2, 0)
        grid.addWidget(self.overall_bar, 2, 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnMinimumWidth(0, 110)
        grid.setRowStretch(3, 1)
        top = QHBoxLayout()
        top.addLayout(grid, 1)
        top.addWidget(self.preview_label, 0, Qt.AlignmentFlag.AlignTop)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 8, 8, 8)
        outer.addLayout(top)
        outer.addWidget(self.error_view)
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
            (run_state.preview_changed, self._on_preview),
            (run_state.failed, self._on_failed),
        ]
        for signal, slot in pairs:
            signal.connect(slot)
        self._connections = pairs
        # Catch up with a run already under way.
        self._on_status(run_state.status)
        self._on_node(*run_state.node)
        self._on_step(*run_state.step_progress)
        self._on_eta(run_state.eta)
        self._on_overall(*run_state.overall_progress)
        if run_state.preview is not None:
            self._on_preview(run_state.preview)

    def unbind(self) -> None:
        for signal, slot in self._connections:
            signal.disconnect(slot)
        self._connections = []
        self._state = None
        self._timer.stop()

    def run_state(self) -> RunState | None:
        return self._state

    # ------------------------------------------------------------------------------------------ slots
    def details_shown(self) -> bool:
        """True while the node, step and overall bars and the preview are shown (a run has started)."""
        return not self.step_bar.isHidden()

    def _show_details(self, shown: bool) -> None:
        # Idle, the panel is one line ("Ready"): the form keeps the room until a run starts.
        for widget in (
            self.node_label,
            self.step_bar,
            self.eta_label,
            self.overall_caption,
            self.overall_bar,
            self.preview_label,
        ):
            widget.setVisible(shown)

    def _show_idle(self) -> None:
        self._show_details(False)
        self.status_label.setText("Ready")
        self.node_label.setText("")
        self.elapsed_label.setText("")
        self._on_step(0, 0)
        self._on_eta(None)
        self._on_overall(0, 0)
        self._clear_preview()
        self.error_view.setVisible(False)

    def _on_status(self, status: object) -> None:
        state = self._state
        if status is None:
            self._timer.stop()
            self._show_idle()
            return
        if status is ExecutionStatus.QUEUED:
            self.error_view.setVisible(False)
            self._clear_preview()
            self.elapsed_label.setText("")
            self._on_queue_position(state.queue_position if state else None)
        elif status is ExecutionStatus.RUNNING:
            self._show_details(True)
            index, total = state.batch if state else (0, 1)
            self.status_label.setText(f"Running — image {index + 1} of {total}" if total > 1 else "Running")
            self._tick()
            self._timer.start()
        else:
            if status is ExecutionStatus.COMPLETED:
                self._show_details(True)
            if self._preview is None:  # over without a preview: no empty box to keep the room for
                self.preview_label.setVisible(False)
            self._timer.stop()
            self._tick()
            self.status_label.setText(
                {
                    ExecutionStatus.COMPLETED: "Done",
                    ExecutionStatus.FAILED: "Failed",
                    ExecutionStatus.CANCELLED: "Cancelled",
                }.get(status, str(status))  # type: ignore[call-overload]
            )
            self._on_eta(None)

    def _on_queue_position(self, position: object) -> None:
        state = self._state
        if state is not None and state.status is ExecutionStatus.QUEUED:
            self.status_label.setText(queue_text(position if isinstance(position, int) else None))

    def _on_node(self, node_id: str, title: str) -> None:
        self.node_label.setText(title)
        self.node_label.setToolTip(f"{title} (#{node_id})" if node_id else "")

    def _on_step(self, value: int, maximum: int) -> None:
        if maximum <= 0:
            self.step_bar.setRange(0, 1)
            self.step_bar.setValue(0)
            self.step_bar.setFormat("")
        else:
            self.step_bar.setRange(0, maximum)
            self.step_bar.setValue(min(value, maximum))
            self.step_bar.setFormat("%v/%m")

    def _on_eta(self, eta: object) -> None:
        self.eta_label.setText(f"ETA {format_duration(eta)}" if isinstance(eta, int | float) else "")

    def _on_overall(self, done: int, total: int) -> None:
        self.overall_bar.setRange(0, max(1, total))
        self.overall_bar.setValue(min(done, max(1, total)) if total else 0)
        self.overall_bar.setFormat(f"{done}/{total} nodes" if total else "")

    def _on_preview(self, image: object) -> None:
        if isinstance(image, QImage) and not image.isNull():
            size = self.preview_label.contentsRect().size()
            pixmap = QPixmap.fromImage(image).scaled(
                size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
            self._preview = pixmap
            self.preview_label.setPixmap(pixmap)
            self.preview_label.setText("")

    def _clear_preview(self) -> None:
        self._preview = None
        self.preview_label.setPixmap(QPixmap())
        self.preview_label.setText("Preview")

    def _on_failed(self, failure: object) -> None:
        if not isinstance(failure, FailureInfo):
            return
        title = self._state.node_title(failure.node_id) if self._state and failure.node_id else ""
        self.error_view.set_failure(failure, node_title=title)
        self.error_view.setVisible(True)

    def _tick(self) -> None:
        if self._state is not None and self._state.status not in (None, ExecutionStatus.QUEUED):
            self.elapsed_label.setText(format_duration(self._state.elapsed()))
