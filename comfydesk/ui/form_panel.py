"""FormPanel: the side panel with the workflow's form, and its run bar pinned to the bottom.

Top to bottom: the workflow's name (with Reset), its description, a note when it cannot be shown, the
missing-pieces panel, the form (it scrolls), then the run bar: Run, the batch count, Cancel, and why Run is
off. The run bar's place depends on the panel's height only, never on a run: nothing here changes when a
run starts or ends. The main window docks the panel (resizable, closable, floatable).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.controller import MAX_BATCH
from comfydesk.ui.form import FormView
from comfydesk.ui.missing_panel import MissingPanel

__all__ = ["FormPanel"]


class FormPanel(QWidget):
    """See the module docstring; the window connects the buttons (tooltips name its shortcuts)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("formPane")
        self.workflow_title = QLabel("<h3>No workflow</h3>")
        self.workflow_title.setObjectName("workflowTitle")
        self.workflow_title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.workflow_description = QLabel()
        self.workflow_description.setObjectName("workflowDescription")
        self.workflow_description.setWordWrap(True)
        self.reset_button = QPushButton("Reset")
        self.reset_button.setObjectName("resetFormButton")
        head = QHBoxLayout()
        head.addWidget(self.workflow_title, 1)
        head.addWidget(self.reset_button)
        self.form_message = QLabel("Pick a workflow from the library on the left.")
        self.form_message.setObjectName("formMessage")
        self.form_message.setWordWrap(True)
        self.missing_panel = MissingPanel()
        self.form = FormView()
        self.form.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes to its fields, not to the scroll area

        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("runButton")
        self.run_button.setDefault(False)
        self.batch = QSpinBox()
        self.batch.setObjectName("batchCount")
        self.batch.setRange(1, MAX_BATCH)
        self.batch.setPrefix("× ")
        self.batch.setAccessibleName("Batch count")
        self.batch.setToolTip("How many runs to queue; seeds follow their control mode between runs")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setEnabled(False)
        self.run_reason = QLabel()
        self.run_reason.setObjectName("runDisabledReason")
        self.run_reason.setWordWrap(True)
        self.run_reason.hide()

        bar = QHBoxLayout()
        bar.setContentsMargins(8, 6, 8, 8)
        bar.addWidget(self.run_button)
        bar.addWidget(self.batch)
        bar.addWidget(self.cancel_button)
        bar.addStretch(1)
        self.run_bar = QFrame()
        self.run_bar.setObjectName("runBar")
        self.run_bar.setFrameShape(QFrame.Shape.NoFrame)
        bar_column = QVBoxLayout(self.run_bar)
        bar_column.setContentsMargins(0, 0, 0, 0)
        bar_column.setSpacing(0)
        bar_column.addWidget(self.run_reason)  # above the buttons: a long reason never pushes them aside
        bar_column.addLayout(bar)
        self.run_reason.setContentsMargins(8, 4, 8, 0)

        body = QVBoxLayout()
        body.setContentsMargins(8, 8, 8, 0)
        body.addLayout(head)
        body.addWidget(self.workflow_description)
        body.addWidget(self.form_message)
        body.addWidget(self.missing_panel)
        body.addWidget(self.form, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(body, 1)
        layout.addWidget(self.run_bar)
