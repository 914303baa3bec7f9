"""The UI-thread collector: while it lives, a cycle freed by the collector is freed on the UI thread, even
when garbage piles up on a worker thread; on stop, collection is Python's again."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

from pytestqt.qtbot import QtBot

from comfydesk.app.collector import UiThreadCollector


class Cycle:
    def __init__(self, freed_on: list[str]) -> None:
        self.me = self
        self.freed_on = freed_on

    def __del__(self) -> None:
        self.freed_on.append(threading.current_thread().name)


def test_cycles_made_on_a_worker_are_freed_on_the_ui_thread(qtbot: QtBot) -> None:
    gc.enable()  # as in the app, before the collector takes over (the GUI conftest turns it off per test)
    freed_on: list[str] = []
    refs: list[weakref.ref[Any]] = []
    kept: list[list[int]] = []

    def worker() -> None:
        # Enough live allocations to cross the generation-0 threshold many times over.
        for _ in range(20):
            refs.append(weakref.ref(Cycle(freed_on)))
        kept.extend([i] for i in range(50_000))

    collector = UiThreadCollector(interval_ms=10)
    try:
        assert not gc.isenabled()
        thread = threading.Thread(target=worker, name="worker")
        thread.start()
        thread.join()
        assert freed_on == []  # nothing collected on the worker
        qtbot.waitUntil(lambda: len(freed_on) == 20, timeout=5_000)
        assert set(freed_on) == {threading.main_thread().name}
        assert all(r() is None for r in refs)
    finally:
        collector.stop()
    assert gc.isenabled()
    gc.disable()  # give the fixture back the state it set


def test_check_collects_only_past_the_threshold(qtbot: QtBot) -> None:
    collector = UiThreadCollector(interval_ms=60_000)
    try:
        gc.collect()
        assert collector.check() == 0  # counts are back at zero: nothing to do
    finally:
        collector.stop()
    gc.disable()
