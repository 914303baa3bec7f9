"""The first-run panel: shown in the centre when no server answers. Retry, edit the address, or start the
built-in demo engine."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QBoxLayout, QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from comfydesk.app.demo import DEMO_LABEL
from comfydesk.core.messages import for_disconnect

__all__ = ["FirstRunPanel"]


class FirstRunPanel(QWidget):
    """Says that nothing answered and offers the three ways on."""

    retry_requested = Signal()
    edit_address_requested = Signal()
    start_demo_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("firstRunPanel")
        self._refused = ""
        self._refused_hint = ""
        self.title = QLabel("<h2>No ComfyUI server answered</h2>")
        self.title.setObjectName("firstRunTitle")
        self.title.setWordWrap(True)
        self.reason = QLabel("")
        self.reason.setObjectName("firstRunReason")
        self.reason.setWordWrap(True)
        self.reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.explain = explain = QLabel(
            "comfydesk runs workflows on a ComfyUI server. Start ComfyUI on this machine, enter the "
            "address of one elsewhere, or try everything with the built-in demo engine."
        )
        explain.setWordWrap(True)

        self.retry_button = QPushButton("&Retry")
        self.retry_button.setObjectName("retryButton")
        self.retry_button.setToolTip("Try the same address again (F5)")
        self.retry_button.clicked.connect(self.retry_requested)
        self.edit_button = QPushButton("&Edit address…")
        self.edit_button.setObjectName("editAddressButton")
        self.edit_button.setToolTip("Open the connection profiles")
        self.edit_button.clicked.connect(self.edit_address_requested)
        self.demo_button = QPushButton("Start &demo engine")
        self.demo_button.setObjectName("startDemoButton")
        self.demo_button.setToolTip(DEMO_LABEL)
        self.demo_button.clicked.connect(self.start_demo_requested)
        demo_note = QLabel(DEMO_LABEL)
        demo_note.setObjectName("demoLabel")
        demo_note.setEnabled(False)  # the palette's muted text colour
        demo_note.setWordWrap(True)

        # Side by side, or one under another when the canvas is too narrow for that (see _fit).
        self._buttons = buttons = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        buttons.addWidget(self.retry_button)
        buttons.addWidget(self.edit_button)
        buttons.addWidget(self.demo_button)
        buttons.addStretch(1)

        self._card = card = QFrame()
        card.setFrameShape(QFrame.Shape.StyledPanel)
        inner = QVBoxLayout(card)
        inner.setContentsMargins(24, 20, 24, 20)
        inner.setSpacing(12)
        inner.addWidget(self.title)
        inner.addWidget(self.reason)
        inner.addWidget(explain)
        inner.addLayout(buttons)
        inner.addWidget(demo_note)
        card.setMaximumWidth(640)

        outer = QVBoxLayout(self)
        outer.addStretch(1)
        row = QHBoxLayout()  # the card takes the width first (up to its maximum), centred in what is left
        row.addStretch(0)
        row.addWidget(card, 1)
        row.addStretch(0)
        outer.addLayout(row)
        outer.addStretch(2)
        self.setTabOrder(self.retry_button, self.edit_button)
        self.setTabOrder(self.edit_button, self.demo_button)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        """Fit the card to the canvas it has (narrow beside a wide library or gallery): the buttons go one
        under another when their row would not fit, and the card is as tall as its wrapped text needs
        (the page stack around it does not ask for that by itself, and the text would be cut)."""
        card, layout = self._card, self._card.layout()
        assert layout is not None
        margins, outer = layout.contentsMargins(), self.contentsMargins()
        # What the panel offers (the card would widen past it to keep a row of buttons, and be cut).
        room = (
            self.width()
            - outer.left()
            - outer.right()
            - 2 * card.frameWidth()
            - margins.left()
            - margins.right()
        )
        shown = [b for b in (self.retry_button, self.edit_button, self.demo_button) if b.isVisibleTo(self)]
        row = sum(b.sizeHint().width() for b in shown) + self._buttons.spacing() * max(0, len(shown) - 1)
        direction = QBoxLayout.Direction.LeftToRight if row <= room else QBoxLayout.Direction.TopToBottom
        if self._buttons.direction() != direction:
            self._buttons.setDirection(direction)
        if layout.hasHeightForWidth():
            card.setMinimumHeight(layout.totalHeightForWidth(card.width()))

    def set_reason(self, reason: str) -> None:
        """Why nothing is connected, from the status's raw `reason`: in plain words, the raw text as the
        tooltip. Under "The server rejected the token" the reason would say it again: what to do instead."""
        message = for_disconnect(reason)
        self.reason.setText(self._refused_hint if self._refused and reason == self._refused else message.text)
        self.reason.setToolTip(message.details)
        self._fit()

    def set_sign_in_refused(self, title: str | None, hint: str = "") -> None:
        """The server answered but refused our token (`title` says so, `hint` what to do), or None: nothing
        answered."""
        self._refused, self._refused_hint = title or "", hint
        if title and self.reason.text() == title:
            self.reason.setText(hint)
        self.title.setText(f"<h2>{html.escape(title or 'No ComfyUI server answered')}</h2>")
        self.edit_button.setText("&Edit profile…" if title else "&Edit address…")
        self.edit_button.setToolTip(
            "Open the connection profile to change the token" if title else "Open the connection profiles"
        )
        self.explain.setVisible(title is None)
        self._fit()

    def set_demo_starting(self, starting: bool) -> None:
        self.demo_button.setEnabled(not starting)
        self.demo_button.setText("Starting the demo engine…" if starting else "Start &demo engine")
        self._fit()
