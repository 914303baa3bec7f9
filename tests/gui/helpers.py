"""Helpers for the window tests: open windows on a data dir, wait for a connection, pick a workflow."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keyring
from keyring.backends import fail
from pytestqt.qtbot import QtBot

from comfydesk.gui import create_main_window
from comfydesk.ui.main_window import MainWindow

OpenWindow = Callable[..., MainWindow]


def windows(qtbot: QtBot) -> Iterator[OpenWindow]:
    """Body of a fixture: yields an opener; closes every window afterwards and lets its tasks finish.

    The keyring is the failing one meanwhile, as on a headless machine (never the real user's keyring).
    """
    old = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    opened: list[MainWindow] = []

    def opener(*, server: str | None, data_dir: Path, show: bool = True) -> MainWindow:
        window = create_main_window(server=server, data_dir=data_dir)
        assert isinstance(window, MainWindow)
        opened.append(window)
        if show:
            window.show()
        return window

    try:
        yield opener
    finally:
        for window in opened:
            window.close()
            qtbot.waitUntil(lambda w=window: w.ctx.tasks.pending == 0, timeout=10_000)
            window.deleteLater()
        keyring.set_keyring(old)


def write_workflow(data_dir: Path, name: str, prompt: dict[str, Any]) -> str:
    folder = data_dir / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(prompt), encoding="utf-8")
    return f"local:{name}.json"


def wait_connected(qtbot: QtBot, window: MainWindow, timeout: int = 10_000) -> None:
    qtbot.waitUntil(
        lambda: window.ctx.connection.backend is not None and window.ctx.catalog.catalog is not None,
        timeout=timeout,
    )


def pick(qtbot: QtBot, window: MainWindow, key: str) -> None:
    """Select a workflow in the tree the way a user does, and wait for its form."""
    qtbot.waitUntil(lambda: window.workflow_pane.item_for(key) is not None, timeout=10_000)
    item = window.workflow_pane.item_for(key)
    assert item is not None
    window.workflow_pane.tree.setCurrentItem(item)
    qtbot.waitUntil(
        lambda: (
            window._current is not None
            and window._current.key == key
            and window._current.spec is not None
            and window.form.spec() is window._current.spec
        ),
        timeout=10_000,
    )
