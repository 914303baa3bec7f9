"""The "No ComfyUI server answered" card fits the canvas it gets: its buttons in a row when there is room,
one under another when the canvas is narrow (a wide library or gallery beside it), no text cut either way."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QBoxLayout, QLabel, QStackedWidget
from pytestqt.qtbot import QtBot

from comfydesk.ui.first_run import FirstRunPanel


def shown_in(qtbot: QtBot, width: int, height: int = 520) -> tuple[QStackedWidget, FirstRunPanel]:
    stack = QStackedWidget()  # as in the window: the page stack of the canvas, at the size it is given
    qtbot.addWidget(stack)
    panel = FirstRunPanel()
    stack.addWidget(panel)
    panel.set_reason("connection refused")
    stack.setFixedSize(width, height)
    stack.show()
    qtbot.waitExposed(stack)
    return stack, panel  # the caller keeps the stack: qtbot holds it only weakly


def assert_nothing_cut(panel: FirstRunPanel) -> None:
    for label in panel.findChildren(QLabel):
        if label.isVisibleTo(panel) and label.text():
            assert label.height() >= label.heightForWidth(label.width()), label.text()
            assert label.geometry().right() <= panel._card.contentsRect().right()
    for button in (panel.retry_button, panel.edit_button, panel.demo_button):
        assert button.width() >= button.sizeHint().width(), button.text()
        assert panel._card.rect().contains(button.geometry())
    assert panel.rect().contains(panel._card.geometry())


@pytest.mark.parametrize(("width", "row"), [(900, True), (300, False)])
def test_the_card_fits_wide_and_narrow_canvases(qtbot: QtBot, width: int, row: bool) -> None:
    _stack, panel = shown_in(qtbot, width)
    expected = QBoxLayout.Direction.LeftToRight if row else QBoxLayout.Direction.TopToBottom
    qtbot.waitUntil(lambda: panel._buttons.direction() == expected, timeout=3_000)
    qtbot.waitUntil(lambda: panel._card.height() >= panel._card.minimumHeight(), timeout=3_000)
    assert_nothing_cut(panel)
    ys = {b.geometry().top() for b in (panel.retry_button, panel.edit_button, panel.demo_button)}
    assert (len(ys) == 1) is row


def test_a_longer_button_text_is_fitted_again(qtbot: QtBot) -> None:
    _stack, panel = shown_in(qtbot, 430)
    qtbot.waitUntil(lambda: panel._buttons.direction() == QBoxLayout.Direction.LeftToRight, timeout=3_000)
    panel.set_demo_starting(True)  # "Starting the demo engine…": the row no longer fits
    qtbot.waitUntil(lambda: panel._buttons.direction() == QBoxLayout.Direction.TopToBottom, timeout=3_000)
    qtbot.waitUntil(lambda: panel.demo_button.width() >= panel.demo_button.sizeHint().width(), timeout=3_000)
    assert_nothing_cut(panel)
