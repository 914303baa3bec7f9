"""How the window looks and lays out: a dark palette stays readable, the canvas gets the room (splitter sizes
remembered, a one-line idle progress panel, a hint in the empty results strip), Reset only with a form,
status notes that go once superseded, and quiet HTTP logging."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QLabel
from pytestqt.qtbot import QtBot

from comfydesk.core.errors import ValidationIssue
from comfydesk.core.events import ExecutionStatus
from comfydesk.gui import QUIET_LOGGERS, configure_logging
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.ui.main_window import SPLITTER_KEY, MainWindow
from comfydesk.ui.results import EMPTY_HINT
from comfydesk.ui.theme import error_color, is_dark, status_color
from tests.conftest import FIXTURES
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow

RUN_TIMEOUT = 20_000
Role = QPalette.ColorRole
Group = QPalette.ColorGroup


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[RunningFake]:
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake")
    )
    yield fake
    fake.stop()


def dark_palette() -> QPalette:
    pal = QPalette()
    colours = {
        Role.Window: "#2b2b2b",
        Role.WindowText: "#e6e6e6",
        Role.Base: "#1e1e1e",
        Role.AlternateBase: "#262626",
        Role.ToolTipBase: "#3a3a3a",
        Role.ToolTipText: "#e6e6e6",
        Role.PlaceholderText: "#8c8c8c",
        Role.Text: "#e6e6e6",
        Role.Button: "#363636",
        Role.ButtonText: "#e6e6e6",
        Role.BrightText: "#ff6b6b",
        Role.Light: "#4a4a4a",
        Role.Midlight: "#3e3e3e",
        Role.Mid: "#5a5a5a",
        Role.Dark: "#1a1a1a",
        Role.Shadow: "#000000",
        Role.Highlight: "#3d7bd9",
        Role.HighlightedText: "#ffffff",
        Role.Link: "#8ab4f8",
    }
    for role, colour in colours.items():
        pal.setColor(role, QColor(colour))
    for role in (Role.WindowText, Role.Text, Role.ButtonText):
        pal.setColor(Group.Disabled, role, QColor("#7f7f7f"))
    return pal


@pytest.fixture
def dark(qapp: QApplication) -> Iterator[QPalette]:
    """The application on a dark palette (Fusion) for one test; the light one is back afterwards."""
    old_palette, old_style = qapp.palette(), qapp.style().name()
    qapp.setStyle("Fusion")
    pal = dark_palette()
    qapp.setPalette(pal)
    try:
        yield pal
    finally:
        qapp.setPalette(old_palette)
        qapp.setStyle(old_style)


def contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""

    def lum(c: QColor) -> float:
        def ch(v: float) -> float:
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        return 0.2126 * ch(c.redF()) + 0.7152 * ch(c.greenF()) + 0.0722 * ch(c.blueF())

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def failing_prompt() -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {
            "class_type": "TestFail",
            "inputs": {"message": "boom: deliberate"},
            "_meta": {"title": "Breaker"},
        },
    }


def test_accents_are_readable_on_light_and_dark() -> None:
    light = QPalette(QColor("#efefef"))
    for pal in (light, dark_palette()):
        window = pal.color(Role.Window)
        assert contrast(error_color(pal), window) >= 4.5
        assert contrast(error_color(pal), pal.color(Role.Base)) >= 4.5
        for state in ("connected", "connecting", "reconnecting", "disconnected"):
            assert contrast(status_color(state, pal), window) >= 4.5, state
    assert error_color(light) != error_color(dark_palette())


def test_dark_palette_failed_run(
    qtbot: QtBot,
    open_window: OpenWindow,
    fake: RunningFake,
    tmp_path: Path,
    artifacts_dir: Path,
    dark: QPalette,
) -> None:
    assert is_dark()
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Fails", failing_prompt())
    window: MainWindow = open_window(server=fake.url, data_dir=data_dir)
    window.resize(1200, 820)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    window.run_workflow()
    qtbot.waitUntil(lambda: window.ctx.run_state.status is ExecutionStatus.FAILED, timeout=RUN_TIMEOUT)
    view = window.progress.error_view
    qtbot.waitUntil(view.isVisible, timeout=2_000)
    qtbot.waitUntil(lambda: not window.ctx.controller.busy, timeout=RUN_TIMEOUT)
    window.form.show_issues(
        [
            ValidationIssue(
                "1", "Width must be at most 16384, got 20000.", input_name="width", field_key="1.width"
            )
        ]
    )
    window.grab().save(str(artifacts_dir / "dark-failed-run.png"))

    base = window.palette().color(Role.Window)
    red = error_color(window.palette())
    assert contrast(red, base) >= 4.5
    assert red.name() in view.title.styleSheet() and red.name() in view.styleSheet()
    assert red.name() in window.form.rows["1.width"].error.styleSheet()
    assert red.name() in window.form.error_box.styleSheet()
    status = status_color("connected", window.palette())
    assert status.name() in window.connection_label.styleSheet()
    # Text everywhere comes from the palette: light on dark.
    header = window.form.groups["1"].header
    assert header is not None
    for widget in (header, view.message, window.workflow_title, window.form.rows["1.width"].label):
        fg = widget.palette().color(widget.foregroundRole())
        bg = widget.palette().color(widget.backgroundRole())
        assert contrast(fg, bg) >= 7, widget.objectName()
        assert fg.lightnessF() > 0.6, widget.objectName()
    # And the pixels agree: the form and the results strip are painted dark.
    shot = window.grab().toImage()
    for widget in (window.form.viewport(), window.results.viewport()):
        corner = widget.mapTo(window, widget.rect().bottomRight()) - widget.rect().center() / 8
        assert shot.pixelColor(corner).lightnessF() < 0.35, widget.objectName()


def test_accents_follow_a_live_switch_to_dark(
    qtbot: QtBot, qapp: QApplication, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    """Built light, then the system turns dark: the reds and the status colour are picked again."""
    assert not is_dark()
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Fails", failing_prompt())
    window: MainWindow = open_window(server=fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    window.run_workflow()
    view = window.progress.error_view
    qtbot.waitUntil(view.isVisible, timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: not window.ctx.controller.busy, timeout=RUN_TIMEOUT)
    issue = ValidationIssue("1", "Width must be at most 16384.", input_name="width", field_key="1.width")
    window.form.show_issues([issue])
    window.ctx.errors.report_exception(RuntimeError("boom"), what="Testing")
    row = window.form.rows["1.width"]
    light_red, light_status = error_color(window.palette()), status_color("connected", window.palette())
    assert (
        light_red.name() in row.error.styleSheet()
        and light_status.name() in window.connection_label.styleSheet()
    )

    old_palette, old_style = qapp.palette(), qapp.style().name()
    qapp.setStyle("Fusion")
    try:
        qapp.setPalette(dark_palette())
        qapp.processEvents()
        assert is_dark(window.palette())
        base = window.palette().color(Role.Window)
        red, status = error_color(window.palette()), status_color("connected", window.palette())
        assert red != light_red and status != light_status
        assert contrast(red, base) >= 4.5 and contrast(status, base) >= 4.5
        sheets = {
            "progress error title": view.title.styleSheet(),
            "progress error frame": view.styleSheet(),
            "app error title": window.error_view.title.styleSheet(),
            "app error frame": window.error_view.styleSheet(),
            "field error": row.error.styleSheet(),
            "field frame": row.frame.border.name() if row.frame.border is not None else "",
            "form error summary": window.form.error_box.styleSheet(),
        }
        for what, sheet in sheets.items():
            assert red.name() in sheet and light_red.name() not in sheet, what
        assert status.name() in window.connection_label.styleSheet()
        header = window.form.groups["1"].header
        assert header is not None
        for widget in (row.label, header, view.message, window.form.error_box):  # text: light on dark
            fg = widget.palette().color(widget.foregroundRole())
            assert fg.lightnessF() > 0.6 and contrast(fg, base) >= 7, widget.objectName()
    finally:
        qapp.setPalette(old_palette)
        qapp.setStyle(old_style)
    qapp.processEvents()
    assert light_red.name() in row.error.styleSheet()  # and back again


def test_the_canvas_gets_the_room_and_the_splitter_is_remembered(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path, artifacts_dir: Path
) -> None:
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Image", failing_prompt())
    window = open_window(server=fake.url, data_dir=data_dir)
    window.resize(780, 760)
    wait_connected(qtbot, window)
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.splitter)

    # No workflow yet: nothing to reset.
    assert not window.reset_button.isEnabled() and not window.reset_action.isEnabled()
    pick(qtbot, window, key)
    assert window.reset_button.isEnabled() and window.reset_action.isEnabled()

    # Idle: the progress bar is one line, the results strip says what it is for, the canvas has the room
    # (the form is in its own panel beside it).
    assert window.splitter.count() == 2
    assert not window.progress.details_shown()
    assert window.progress.status_label.text() == "Ready"
    assert window.progress.height() < 60
    hint = window.results.findChild(QLabel, "resultsHint")
    assert hint is not None and hint.text() == EMPTY_HINT and hint.isVisibleTo(window)
    canvas_pane, _results = (window.splitter.widget(i) for i in range(2))
    assert canvas_pane is window.canvas
    assert canvas_pane.height() >= 0.6 * window.splitter.height()
    assert window.form.isVisibleTo(window) and window.form_dock.isVisible()
    window.grab().save(str(artifacts_dir / "03b-idle-layout.png"))

    # Sizes move with the user and come back next time.
    total = sum(window.splitter.sizes())
    window.splitter.setSizes([total - 200, 200])
    wanted = window.splitter.sizes()
    window.close()
    assert window.ctx.settings.get(SPLITTER_KEY) == wanted
    again = open_window(server=fake.url, data_dir=data_dir)
    wait_connected(qtbot, again)
    qtbot.waitUntil(lambda: again.stack.currentWidget() is again.splitter)
    qtbot.waitUntil(lambda: abs(again.splitter.sizes()[1] - wanted[1]) <= 4)
    assert all(abs(a - b) <= 4 for a, b in zip(again.splitter.sizes(), wanted, strict=True))


def test_status_notes_go_once_superseded(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "TestSlowSteps", "inputs": {"image": ["1", 0], "steps": 30, "delay": 0.01}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "s"}},
    }
    key = write_workflow(data_dir, "Slow", prompt)
    window = open_window(server=fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    messages: list[str] = []
    window.statusBar().messageChanged.connect(messages.append)
    window.run_workflow()
    qtbot.waitUntil(lambda: any(m.startswith("Queued 1 run of Slow") for m in messages), timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: window.ctx.run_state.status is not ExecutionStatus.QUEUED, timeout=RUN_TIMEOUT)
    assert not window.statusBar().currentMessage().startswith("Queued")
    qtbot.waitUntil(lambda: window.results.count() == 1, timeout=RUN_TIMEOUT)
    hint = window.results.findChild(QLabel, "resultsHint")
    assert hint is not None and not hint.isVisibleTo(window)


def test_http_request_logs_are_quiet() -> None:
    names = ("comfydesk", *QUIET_LOGGERS)
    before = {n: logging.getLogger(n).level for n in names}
    try:
        configure_logging()
        assert logging.getLogger("comfydesk.app").getEffectiveLevel() == logging.INFO
        for name in ("httpx", "httpcore", "uvicorn.access"):
            assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name
            assert not logging.getLogger(name).isEnabledFor(logging.INFO)
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def test_palette_is_restored(qapp: QApplication) -> None:
    """The dark fixture leaves the light palette behind (later screenshots are light)."""
    assert not is_dark(QGuiApplication.palette())
