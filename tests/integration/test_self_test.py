"""`comfydesk --self-test` as a user or CI runs it: a real process, offscreen, on the built-in demo engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _self_test(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "comfydesk", "--self-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_self_test_runs_a_sample_and_exits_0(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "QT_QPA_PLATFORM": ""}
    done = _self_test(env)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for step in (
        "Qt started (offscreen platform)",
        "window shown",
        "demo engine started in-process at http://127.0.0.1:",
        "node catalog loaded (",
        "sample workflow opened",
        "ran it: 1 image(s)",
        "states queued → running → completed",
        "result shown in the window",
        "window closed, demo engine stopped",
    ):
        assert step in out, out
    assert out.rstrip().splitlines()[-1].startswith("self-test passed in ")
    assert not (home / "data" / "comfydesk").exists()  # a throwaway data folder, not the user's


def test_self_test_without_its_resources_exits_1_saying_why(tmp_path: Path) -> None:
    # A copy of the package without resources/ beside it: the demo engine has no catalog to serve.
    import shutil

    import comfydesk

    shutil.copytree(Path(comfydesk.__file__).parent, tmp_path / "comfydesk")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "comfydesk", "--self-test"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    last = done.stdout.rstrip().splitlines()[-1]
    assert last.startswith("FAILED after ") and "resources" in last, done.stdout
