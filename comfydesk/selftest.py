"""`comfydesk --self-test`: prove that this install works, from start-up to a picture, without ComfyUI.

It opens the real window offscreen on a throwaway data folder, starts the built-in demo engine in-process and
connects to it, waits for the node catalog, picks a sample workflow from the library, presses Run and waits
for the result to arrive on disk, through the same code the window uses (backend, run state, results).
Each step is printed with its time; the exit code is 0 when every step passed, 1 with the reason otherwise.
Packaged builds run it in CI (`.ci/run`), so a bundle missing a Qt plugin, a resource or a module fails there.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["SAMPLE_KEY", "SelfTestError", "run_self_test"]

SAMPLE_KEY = "sample:inverted_rings.json"
"""The sample workflow the self-test runs (12 steps of the demo engine, an invert and a scale)."""
STEP_TIMEOUT = 60.0
"""Seconds any one step may take before the self-test gives up and says which step it was."""


class SelfTestError(Exception):
    """A step did not pass; the message says which and why."""


@dataclass
class _Report:
    out: IO[str]
    started: float = field(default_factory=time.perf_counter)
    last: float = field(default_factory=time.perf_counter)

    def step(self, text: str) -> None:
        now = time.perf_counter()
        self.out.write(f"  ok  {text:<58} {now - self.last:6.2f} s\n")
        self.out.flush()
        self.last = now

    def total(self) -> float:
        return time.perf_counter() - self.started


async def _until(what: str, condition: Callable[[], bool], timeout: float = STEP_TIMEOUT) -> None:
    """Wait for `condition` (checked as the loop turns); SelfTestError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SelfTestError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


def _check_image(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return im.size


async def _steps(window: Any, report: _Report) -> None:
    """The self-test proper, on the running loop; `window` is a comfydesk MainWindow."""
    from comfydesk.app.tasks import AppError

    ctx = window.ctx
    errors: list[str] = []
    watching = False  # errors before the demo starts are the default profile's (no ComfyUI here): not ours

    def on_error(error: object) -> None:
        if isinstance(error, AppError) and watching:
            errors.append(f"{error.what}: {error.message}" if error.what else error.message)

    ctx.errors.error_changed.connect(on_error)

    def check_errors() -> bool:
        if errors:
            raise SelfTestError(f"the window reported an error: {errors[0]}")
        return False

    await _until("the window to show", lambda: window.isVisible())
    report.step("window shown (offscreen)")

    watching = True
    ctx.start_demo()
    await _until("the demo engine to start", lambda: check_errors() or ctx.demo.url is not None)
    report.step(f"demo engine started in-process at {ctx.demo.url}")

    await _until(
        "the connection to the demo engine",
        lambda: check_errors() or (ctx.connection.backend is not None and ctx.connection.url == ctx.demo.url),
    )
    report.step("connected to the demo engine")

    await _until("the node catalog", lambda: check_errors() or ctx.catalog.catalog is not None)
    catalog = ctx.catalog.catalog
    if len(catalog) == 0:
        raise SelfTestError("the node catalog arrived empty")
    report.step(f"node catalog loaded ({len(catalog)} node types)")

    await _until(f"the sample workflow {SAMPLE_KEY} in the library", lambda: ctx.library.entry(SAMPLE_KEY))
    ctx.library.select(SAMPLE_KEY)
    await _until(
        "the sample's form",
        lambda: (
            check_errors()
            or (
                window._current is not None
                and window._current.key == SAMPLE_KEY
                and window._current.spec is not None
                and window.form.spec() is window._current.spec
                and window.run_button.isEnabled()
            )
        ),
    )
    report.step(f"sample workflow opened with its form ({len(window.form.rows)} fields)")

    results: list[Any] = []
    statuses: list[str] = []
    ctx.controller.results_added.connect(lambda items: results.extend(items))
    ctx.run_state.status_changed.connect(lambda s: statuses.append(getattr(s, "value", str(s))))
    window.run_workflow()
    await _until("the run to start", lambda: check_errors() or ctx.controller.busy or bool(results))
    await _until("the run's result image", lambda: check_errors() or bool(results))
    await _until("the run to finish", lambda: check_errors() or not ctx.controller.busy)
    path = Path(results[0].path)
    if not path.is_file():
        raise SelfTestError(f"the result {path} was announced but is not on disk")
    width, height = await asyncio.to_thread(_check_image, path)
    seen = " → ".join(dict.fromkeys(s for s in statuses if s))
    report.step(f"ran it: {len(results)} image(s), {width}×{height}, states {seen}")

    await _until("the results strip to show it", lambda: bool(window.results.results()))
    report.step("result shown in the window")


async def _run_and_close(window: Any, report: _Report) -> None:
    try:
        await _steps(window, report)
    finally:
        window.close()  # as the user closing it: settings written, then the app state shuts down
        # Waited for, not called a second time: a second aclose() from here would run the shutdown itself and
        # wait 2 s for the window's own "Closing" task, which waits for it.
        await _until("the app to shut down", lambda: bool(window.ctx.closed))
    report.step("window closed, demo engine stopped")


def run_self_test(out: IO[str] | None = None) -> int:
    """Run the self-test (see the module docstring); returns the process exit code."""
    out = out or sys.stdout
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a self-test never needs (or opens) a screen
    report = _Report(out)
    from comfydesk import __version__

    out.write(f"comfydesk {__version__} self-test (Python {sys.version.split()[0]}, {sys.platform})\n")
    out.flush()
    try:
        code = _run(report)
    except SelfTestError as exc:
        out.write(f"FAILED after {report.total():.2f} s: {exc}\n")
        return 1
    except Exception as exc:  # a missing module or plugin in a bundle shows here: name it
        out.write(f"FAILED after {report.total():.2f} s: {type(exc).__name__}: {exc}\n")
        return 1
    out.write(f"self-test passed in {report.total():.2f} s\n")
    return code


def _run(report: _Report) -> int:
    import keyring
    import qasync
    from keyring.backends import fail
    from PySide6.QtWidgets import QApplication

    from comfydesk.app.collector import UiThreadCollector
    from comfydesk.gui import create_main_window

    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call] # never the user's keyring (nor a D-Bus wait on a headless machine)
    existing = QApplication.instance()
    app = (
        existing
        if isinstance(existing, QApplication)
        else QApplication([sys.argv[0], "-platform", "offscreen"])
    )
    app.setQuitOnLastWindowClosed(False)
    report.step(f"Qt started ({app.platformName()} platform)")
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    collector = UiThreadCollector()
    with tempfile.TemporaryDirectory(prefix="comfydesk-selftest-") as tmp:
        try:
            window = create_main_window(server=None, data_dir=Path(tmp) / "data")
            report.step("window built (app state, stores, widgets)")
            with loop:
                window.show()
                loop.run_until_complete(_run_and_close(window, report))
        finally:
            collector.stop()
            asyncio.set_event_loop(None)
    return 0
