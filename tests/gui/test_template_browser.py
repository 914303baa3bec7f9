"""The template browser against the fake ComfyUI serving the captured catalogue, templates and thumbnails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from comfydesk.app.templates import TemplateFilter
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.ui.main_window import MainWindow
from comfydesk.ui.template_browser import TemplateBrowser, template_key
from tests.conftest import FIXTURES
from tests.gui.helpers import OpenWindow, wait_connected, windows

#: Checkpoints this fake has besides the capture's: `default` and `flux_schnell` run on it, nothing else.
EXTRA_CHECKPOINTS = ["v1-5-pruned-emaonly-fp16.safetensors", "flux1-schnell-fp8.safetensors"]


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[RunningFake]:
    object_info: dict[str, Any] = json.loads((FIXTURES / "object_info.json").read_text(encoding="utf-8"))
    choices = object_info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    choices.extend(EXTRA_CHECKPOINTS)
    running = start_fake_comfyui(
        FakeConfig(object_info=object_info, captures_dir=FIXTURES, data_dir=tmp_path / "fake")
    )
    yield running
    running.stop()


def open_browser(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, data_dir: Path
) -> tuple[MainWindow, TemplateBrowser]:
    window = open_window(server=fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    browser = window.show_templates()
    qtbot.waitUntil(lambda: browser.grid.count() == 220, timeout=10_000)
    return window, browser


def test_catalogue_filters_and_lazy_thumbnails(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    window, browser = open_browser(qtbot, open_window, fake, tmp_path / "data")
    model = window.ctx.templates
    assert browser.categories.count() == 1 + 7  # "All templates" and the catalogue's categories
    assert browser.categories.item(1).text() == "Use cases (25)"

    # Only tiles on screen ask for thumbnails: the grid's first page, not all 220.
    qtbot.waitUntil(lambda: len(model._asked) > 0, timeout=5_000)
    assert len(model._asked) < 60

    # The search looks through titles, descriptions, tags and models.
    browser.search.setText("flux schnell")
    assert "flux_schnell" in browser.visible_names()
    browser.search.setText("Wan2.1")  # a model family, in `models` only for some
    names = browser.visible_names()
    assert "text_to_video_wan" in names
    assert all("wan2.1" in model.template(n).text() for n in names)  # type: ignore[union-attr]
    browser.search.clear()

    # Media type and category narrow the grid.
    browser.media.setCurrentIndex(browser.media.findData("video"))
    videos = browser.visible_names()
    assert videos and all(model.template(n).media_type == "video" for n in videos)  # type: ignore[union-attr]
    browser.media.setCurrentIndex(0)
    browser.categories.setCurrentRow(7)  # Getting Started
    assert len(browser.visible_names()) == 10 and "default" in browser.visible_names()

    # A thumbnail arrives off the UI thread once its tile scrolls into view, and lands on disk, per server.
    default = browser.grid.item(browser.visible_names().index("default"))
    browser.grid.scrollToItem(default)
    qtbot.waitUntil(lambda: model.thumbnail("default") is not None, timeout=10_000)
    cached = model.cache_dir / "default.webp"
    assert cached.read_bytes() == (FIXTURES / "templates" / "default-1.webp").read_bytes()
    assert cached.parent.parent == tmp_path / "data" / "cache" / "templates"
    assert not default.icon().isNull()

    # "Runs on this server": every node type and every model of the template file is there.
    browser.categories.setCurrentRow(0)
    browser.runs_here.setChecked(True)
    qtbot.waitUntil(lambda: sorted(browser.visible_names()) == ["default", "flux_schnell"], timeout=10_000)
    qtbot.waitUntil(lambda: model.runnable("sdxl_simple_example") is not None, timeout=10_000)
    sdxl = model.runnable("sdxl_simple_example")
    assert sdxl is not None and "checkpoints/sd_xl_base_1.0.safetensors" in sdxl.missing_models
    ltx = model.runnable("video_ltx2_pose_to_video")
    assert ltx is not None and "DWPreprocessor" in ltx.missing_nodes
    assert model.runnable("templates-color_illustration") is not None  # no file on this server: not runnable
    assert not model.runnable("templates-color_illustration").ok  # type: ignore[union-attr]
    assert model.filtered(TemplateFilter(search="flux", runs_here=True))[0].name == "flux_schnell"


def test_double_click_opens_the_form_and_save_copies_it(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path, artifacts_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    window, browser = open_browser(qtbot, open_window, fake, data_dir)
    browser.categories.setCurrentRow(7)  # Getting Started
    item = browser.grid.item(browser.visible_names().index("default"))
    browser.grid.setCurrentItem(item)
    qtbot.waitUntil(lambda: "Runs on this server" in browser.details.text(), timeout=10_000)
    assert "Getting Started" in browser.details.text()

    with qtbot.waitSignal(window.ctx.templates.saved, timeout=10_000) as saved:
        qtbot.mouseClick(browser.save_button, Qt.MouseButton.LeftButton)
    key = saved.args[0]
    title = window.ctx.templates.template("default").title  # type: ignore[union-attr]
    path = data_dir / "workflows" / key.split(":", 1)[1]
    assert path.stem == title
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(
        (FIXTURES / "workflows" / "ui" / "default.json").read_text(encoding="utf-8")
    )
    qtbot.waitUntil(lambda: window.ctx.library.entry(key) is not None, timeout=10_000)
    assert "Saved to your library" in browser.status.text()

    browser.grid.scrollToItem(item)
    rect = browser.grid.visualItemRect(item)
    qtbot.mouseClick(browser.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(browser.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(
        lambda: (
            window._current is not None
            and window._current.key == template_key("default")
            and window._current.spec is not None
            and window.form.spec() is window._current.spec
        ),
        timeout=10_000,
    )
    assert not browser.isVisible()


def test_screenshot(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path, docs_shots: Path
) -> None:
    window, browser = open_browser(qtbot, open_window, fake, tmp_path / "data")
    model = window.ctx.templates
    browser.resize(1180, 720)
    browser.search.setText("text to image")
    browser.categories.setCurrentRow(7)  # Getting Started
    names = browser.visible_names()
    assert "default" in names
    browser.grid.setCurrentItem(browser.grid.item(names.index("default")))
    qtbot.waitUntil(lambda: model.thumbnail("default") is not None, timeout=10_000)
    qtbot.waitUntil(lambda: model.thumbnail("01_get_started_text_to_image") is not None, timeout=10_000)
    qtbot.waitUntil(lambda: "Runs on this server" in browser.details.text(), timeout=10_000)
    image = browser.grab()
    assert not image.isNull()
    assert image.save(str(docs_shots / "template-browser.png"))


def test_opened_from_the_server_menu_and_reloaded_on_reconnect(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    window = open_window(server=fake.url, data_dir=tmp_path / "data")
    wait_connected(qtbot, window)
    server_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Server")
    assert window.templates_action in server_menu.actions()  # type: ignore[union-attr]
    window.templates_action.trigger()
    browser = window.findChild(TemplateBrowser, "templateBrowser")
    assert browser is not None and browser.isVisible()
    qtbot.waitUntil(lambda: browser.grid.count() == 220, timeout=10_000)
    old = window.ctx.connection.backend
    window.reconnect_action.trigger()
    qtbot.waitUntil(lambda: window.ctx.connection.backend not in (None, old), timeout=10_000)
    qtbot.waitUntil(lambda: browser.grid.count() == 220, timeout=10_000)
    assert window.show_templates() is browser  # one browser per window
