"""GUI test setup: offscreen Qt, a qasync loop over pytest-qt's QApplication, and a screenshot folder."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("LANG", "C.UTF-8")

import pytest
import qasync
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def collect_on_ui_thread() -> Iterator[None]:
    """As the app does (comfydesk.app.collector): no cyclic collection on a worker thread during a GUI test,
    where freeing a cycle that holds a QObject would delete it off its thread; collected here at teardown."""
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.enable()


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    """A qasync loop marked as running on top of Qt's, so qtbot.waitSignal/waitUntil drive coroutines."""
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            deadline = loop.time() + 5
            while any(not t.done() for t in pending) and loop.time() < deadline:
                qapp.processEvents()
        # Mark it stopped without QCoreApplication.exit(): later tests keep using the same QApplication.
        loop._QEventLoop__is_running = False  # type: ignore[attr-defined]
        asyncio.events._set_running_loop(None)
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def artifacts_dir() -> Path:
    """<repo>/test-artifacts (gitignored): screenshots written by GUI tests."""
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def docs_shots(artifacts_dir: Path) -> Path:
    """Where the screenshots shown in docs/ are written: test-artifacts/ in a normal run, so tests never
    change tracked files; docs/ itself with COMFYDESK_DOCS_SCREENSHOTS=1 (to refresh them on purpose)."""
    return ROOT / "docs" if os.environ.get("COMFYDESK_DOCS_SCREENSHOTS") == "1" else artifacts_dir
