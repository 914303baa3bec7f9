"""GUI test setup: offscreen Qt, a qasync loop over pytest-qt's QApplication, and a screenshot folder."""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("LANG", "C.UTF-8")

import pytest
import qasync
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[2]


def _pin_singletons() -> None:
    """Work around a refcount bug of PySide6 6.12 on CPython 3.11.

    Each call of a Python override of a Qt virtual (qasync's `timerEvent`, run for every `call_soon`; a
    widget's `event`) drops one reference to None/True/False that it never took. From 3.12 on those objects
    are immortal and nothing happens; on 3.11 a few thousand such calls free None and abort the interpreter
    ("none_dealloc"). Tests push thousands of events through qasync, so pin the three singletons with a
    large reference count that is never given back.
    """
    if sys.version_info >= (3, 12):
        return
    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40


_pin_singletons()


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
