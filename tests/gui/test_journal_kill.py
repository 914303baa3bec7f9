"""kill -9 of a real comfydesk process mid-run loses nothing the server produced: the next start reconciles
the run from the server's history, downloads its output and ends it as completed in the journal."""

from __future__ import annotations

import gc
import hashlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import qasync
from pytestqt.qtbot import QtBot

from comfydesk.app.context import build_context
from comfydesk.store.journal import Journal
from comfydesk.store.paths import resolve_paths
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from tests.conftest import FIXTURES
from tests.gui.helpers import write_workflow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "journal_app_script.py"
TIMEOUT = 30_000


@pytest.fixture
def slow_fake(tmp_path: Path) -> Iterator[RunningFake]:
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake", step_delay=0.01)
    )
    yield fake
    fake.stop()


def slow_save(steps: int) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 40, "height": 30, "batch_size": 1, "color": 99},
        },
        "2": {"class_type": "TestSlowSteps", "inputs": {"image": ["1", 0], "steps": steps, "delay": 1.0}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "killed"}},
    }


def submitted_id(proc: subprocess.Popen[str]) -> str:
    """The execution id the process prints once its run is submitted (and recorded)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("SUBMITTED "):
            return line.split()[1]
    raise AssertionError(f"the app exited without submitting: {proc.stderr.read() if proc.stderr else ''}")


@pytest.mark.parametrize("restart", ["after the run finished", "while it still runs"])
def test_kill_9_mid_run_loses_nothing(
    qtbot: QtBot, qloop: qasync.QEventLoop, slow_fake: RunningFake, tmp_path: Path, restart: str
) -> None:
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Slow save", slow_save(steps=500))  # about 5 s on the fake
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(data_dir), slow_fake.url, key],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(60, proc.kill)  # a hung child never hangs the suite
    watchdog.start()
    try:
        execution_id = submitted_id(proc)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    paths = resolve_paths(data_dir)
    journal = Journal(paths.journal_file, paths.blobs_dir)
    [left] = journal.unfinished_runs("cli")
    journal.close()
    assert left.execution_id == execution_id and left.status in ("queued", "running")
    assert left.api_graph["2"]["inputs"]["steps"] == 500

    def finished_on_server() -> dict[str, Any]:
        doc = httpx.get(f"{slow_fake.url}/history/{execution_id}").json()
        return doc.get(execution_id) or {}

    if restart == "after the run finished":
        qtbot.waitUntil(lambda: bool(finished_on_server().get("outputs")), timeout=TIMEOUT)
    else:
        assert not finished_on_server()

    try:
        start_again_and_check(qtbot, slow_fake, data_dir, left.id, finished_on_server)
    finally:
        # The context's QObjects have no parent: collect them now, on the UI thread, not in a cyclic GC pass
        # that may run on any thread later (a QObject destroyed off its thread crashes Qt).
        gc.collect()


def start_again_and_check(
    qtbot: QtBot,
    fake: RunningFake,
    data_dir: Path,
    run_id: int,
    finished_on_server: Callable[[], dict[str, Any]],
) -> None:
    """Start the app context again on the data dir: the run ends completed with the server's output."""
    ctx = build_context(server=fake.url, data_dir=data_dir)
    try:
        ctx.start()  # a run still on the server is followed until it ends

        def run_now() -> Any:
            return ctx.journal.call_blocking(lambda j: j.run(run_id))

        qtbot.waitUntil(lambda: run_now().status == "completed", timeout=TIMEOUT)
        saved = finished_on_server()["outputs"]["9"]["images"][0]
        server_bytes = (fake.data_dir / "output" / saved["filename"]).read_bytes()
        [output] = ctx.journal.call_blocking(lambda j: j.outputs_of_run(run_id))
        assert output.path is not None and output.path.is_file()
        assert hashlib.sha256(output.path.read_bytes()).hexdigest() == output.sha256
        assert output.sha256 == hashlib.sha256(server_bytes).hexdigest()
        assert (output.width, output.height, output.node_id) == (40, 30, "9")
    finally:
        ctx.close()
        qtbot.waitUntil(lambda: ctx.closed, timeout=10_000)
