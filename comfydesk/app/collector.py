"""Cyclic garbage collection on the UI thread only.

Python's cycle collector runs on whichever thread happens to allocate when a threshold is crossed: a worker
thread (a thumbnail, the journal, httpx's resolver) may then free a cycle that holds a QObject, and Qt deletes
that object off its thread, which crashes the process at random. The app therefore turns the automatic
collector off and runs the same generational collection from a timer on the UI thread instead.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500


class UiThreadCollector(QObject):
    """While it lives, cycles are collected on the thread that made it (the UI thread), never elsewhere."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        self._thresholds = gc.get_threshold()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)
        self._timer.start()

    def check(self) -> int:
        """Collect the generations whose counts passed their thresholds, as the automatic collector would."""
        count0, count1, count2 = gc.get_count()
        limit0, limit1, limit2 = self._thresholds
        if count0 <= limit0:
            return 0
        generation = 0
        if count1 > limit1:
            generation = 1
            if count2 > limit2:
                generation = 2
        return gc.collect(generation)

    def stop(self) -> None:
        """Collect what is left here, and give collection back to Python."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()
