"""Probe findings 2, 7, 9, 10, 11 and 12: the command line against a dying or odd server, and odd options.

In-process `comfydesk.cli.main` against the fake ComfyUI (real sockets), or `python -m comfydesk` as a real
process where a signal is part of the story. No sleeps: every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfydesk.cli import main
from comfydesk.commands._run_inputs import MAX_NAME_BYTES, fit_name, write_unique
from comfydesk.testing import RunningFake
from tests.conftest import ROOT, load_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _slow(tmp_path: Path, steps: int) -> Path:
    doc = load_json("workflows/api/slow_steps.json")
    doc["2"]["inputs"].update(steps=steps)
    return _write(tmp_path, "slow.json", doc)


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)  # polling interval of a condition wait


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("COMFYDESK_SERVER", None)
    env["LANG"] = "C.UTF-8"
    env.update(extra)
    return env


# -- 2. a dead server is given up ------------------------------------------------------------------------


def test_run_gives_up_on_a_dead_server_within_the_budget_and_exits_2(
    fake: RunningFake, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMFYDESK_RECONNECT_BUDGET", "2")
    wf = _slow(tmp_path, 1000)  # ~10 s of work: the server dies long before

    def kill_when_running() -> None:
        _wait(lambda: fake.state.running is not None, 20, "the run to start")
        fake.stop()

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    t0 = time.monotonic()
    code = main(["run", str(wf), "--server", fake.url, "--kind", "comfyui", "--out", str(tmp_path / "out")])
    elapsed = time.monotonic() - t0
    killer.join()
    err = capsys.readouterr().err
    assert code == 2, err
    assert "connection lost" in err and "reconnecting" in err
    assert f"lost the connection to {fake.url}" in err and "gave up after" in err
    assert elapsed < 20


def test_cli_reconnect_budget_defaults_to_two_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    from comfydesk.backends.reconnect import CLI_RECONNECT_BUDGET, cli_policy

    monkeypatch.delenv("COMFYDESK_RECONNECT_BUDGET", raising=False)
    assert CLI_RECONNECT_BUDGET == 120.0 and cli_policy().max_elapsed == 120.0
    assert cli_policy().gives_up_after(3, elapsed=121.0) and not cli_policy().gives_up_after(3, elapsed=60.0)
    monkeypatch.setenv("COMFYDESK_RECONNECT_BUDGET", "nan")
    assert cli_policy().max_elapsed == 120.0


# -- 7. terminal injection -------------------------------------------------------------------------------


def test_server_file_names_and_error_text_reach_no_terminal_raw(
    fake: RunningFake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = load_json("workflows/api/empty_blur_save.json")
    save = next(n for n in doc.values() if n["class_type"] == "SaveImage")
    save["inputs"]["filename_prefix"] = "x\x1b]0;PWNED\x07\x1b[2J\nnext"
    out_dir = tmp_path / "out"
    code = main(["run", str(_write(tmp_path, "evil.json", doc)), "--server", fake.url, "--out", str(out_dir)])
    out = capsys.readouterr()
    assert code == 0, out.err
    saved = [p.name for p in out_dir.iterdir()]
    assert len(saved) == 1 and saved[0].startswith("x]0;PWNED[2Jnext")
    assert not any(ord(c) < 32 or ord(c) == 127 for c in saved[0])
    assert "\x1b" not in out.out + out.err and "\x07" not in out.out + out.err
    assert (out_dir / saved[0]).read_bytes().startswith(PNG_MAGIC)

    fail = load_json("workflows/api/fail.json")
    fail["3"]["inputs"]["message"] = "boom\x1b[2J\x1b]0;PWNED\x07"
    code = main(
        ["run", str(_write(tmp_path, "fail.json", fail)), "--server", fake.url, "--out", str(out_dir)]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "boom[2J]0;PWNED" in err and "\x1b" not in err and "\x07" not in err


# -- 9. Ctrl+C while downloading -------------------------------------------------------------------------


def test_sigint_while_downloading_exits_130_at_once_and_leaves_no_file(
    fake: RunningFake, tmp_path: Path
) -> None:
    fake.faults.delay_route("/view", 30.0)
    out_dir = tmp_path / "out"
    wf = ROOT.parent / "shared" / "fixtures" / "comfyui" / "workflows" / "api" / "empty_blur_save.json"
    if not wf.exists():  # COMFYDESK_FIXTURES elsewhere
        from tests.conftest import FIXTURES

        wf = FIXTURES / "workflows" / "api" / "empty_blur_save.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "comfydesk", "run", str(wf), "--server", fake.url, "--out", str(out_dir)],
        cwd=str(ROOT),
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        for line in proc.stderr:  # until the run has completed and the download started
            lines.append(line)
            if "completed" in line:
                break
        assert any("completed" in line for line in lines), "".join(lines)
        _wait(lambda: fake.state.wait_idle(0.01), 10, "the run to finish on the server")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=15)
        assert proc.returncode == 130, "".join(lines) + err
        assert time.monotonic() - t0 < 5
        assert "interrupted while saving the outputs: 0 of 1 saved" in err
        assert not out_dir.exists() or not list(out_dir.iterdir())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# -- 10. torn files --------------------------------------------------------------------------------------


def test_sigkill_while_writing_an_output_leaves_nothing_under_its_name(tmp_path: Path) -> None:
    """The probe's SIGKILL during a 1.5 GB write left a 2 MB `ok.png`; writes now go to a temporary file."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from comfydesk.commands._run_inputs import write_unique\n"
        "write_unique(Path(sys.argv[1]), 'ok.png', b'x' * (400 * 1024 * 1024))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=str(ROOT), env=_env())
    try:
        _wait(
            lambda: any(p.name.endswith(".part") and p.stat().st_size > 0 for p in tmp_path.iterdir()),
            30,
            "the write to begin",
        )
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "ok.png").exists()


def test_write_unique_never_overwrites_and_cleans_up(tmp_path: Path) -> None:
    first = write_unique(tmp_path, "a.png", b"1")
    second = write_unique(tmp_path, "a.png", b"2")
    assert (first.name, second.name) == ("a.png", "a_1.png")
    assert (first.read_bytes(), second.read_bytes()) == (b"1", b"2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_1.png"]  # no temporary files left


def test_convert_with_a_lone_surrogate_keeps_the_value_and_never_empties_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.json"
    src.write_text(
        '{"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "a\\ud800b"}}}', encoding="utf-8"
    )
    precious = tmp_path / "precious.json"
    precious.write_text("keep me", encoding="utf-8")
    assert main(["convert", str(src), "-o", str(precious)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert json.loads(precious.read_text("utf-8"))["1"]["inputs"]["filename_prefix"] == "a\ud800b"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_convert_to_a_folder_leaves_it_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path, "in.json", {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "a"}}})
    assert main(["convert", str(src), "-o", str(tmp_path)]) == 1
    assert "this is a folder" in capsys.readouterr().err


# -- 11. long output names, --out a file -----------------------------------------------------------------


def test_a_300_character_output_name_is_shortened_and_later_outputs_still_saved(tmp_path: Path) -> None:
    long = "n" * 300 + ".png"
    path = write_unique(tmp_path, long, b"1")
    assert len(path.name.encode()) <= MAX_NAME_BYTES and path.suffix == ".png" and path.read_bytes() == b"1"
    assert write_unique(tmp_path, "later.png", b"2").read_bytes() == b"2"
    assert fit_name("é" * 300 + ".webp").endswith(".webp")
    assert len(fit_name("é" * 300 + ".webp").encode()) <= MAX_NAME_BYTES


def test_run_with_long_output_names_saves_every_output(
    fake: RunningFake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = load_json("workflows/api/two_outputs.json")
    for node in doc.values():
        if node["class_type"] == "SaveImage":
            node["inputs"]["filename_prefix"] = "p" * 220  # the server's own name is ~230 characters
    out_dir = tmp_path / "out"
    code = main(["run", str(_write(tmp_path, "two.json", doc)), "--server", fake.url, "--out", str(out_dir)])
    out = capsys.readouterr()
    assert code == 0, out.err
    saved = out.out.split()
    assert len(saved) >= 2 and all(Path(p).is_file() for p in saved)


def test_out_pointing_at_a_file_is_refused_before_the_run(
    fake: RunningFake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out.txt"
    target.write_text("x", encoding="utf-8")
    wf = _slow(tmp_path, 2)
    assert main(["run", str(wf), "--server", fake.url, "--out", str(target)]) == 2
    assert "this is a file, not a folder" in capsys.readouterr().err
    assert httpx.get(f"{fake.url}/history", timeout=10).json() == {}  # nothing was submitted
    assert target.read_text("utf-8") == "x"


# -- 12. options ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "soon"])
def test_bad_timeout_is_refused_before_anything_runs(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "wf.json", "--timeout", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --timeout:" in err and ("above 0" in err or "number of seconds" in err)


def test_a_good_timeout_is_accepted() -> None:
    from comfydesk.commands.run import positive_seconds

    assert positive_seconds("0.5") == 0.5 and math.isfinite(positive_seconds("1e3"))


@pytest.mark.parametrize("port", ["99999", "0", "-5", "http"])
def test_demo_server_bad_port_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo-server", "--port", port])
    assert exc.value.code == 2
    assert "argument --port:" in capsys.readouterr().err


def test_demo_server_file_as_data_dir_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "data"
    afile.write_text("x", encoding="utf-8")
    assert main(["demo-server", "--data-dir", str(afile), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "this is a file, not a folder" in err and "Traceback" not in err


def test_demo_server_port_in_use_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo-server", "--data-dir", str(tmp_path / "d"), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_an_api_graph_with_a_cycle_is_a_400_naming_the_cycle(tmp_path: Path) -> None:
    from comfydesk.testing import start_fake_comfyui

    demo = start_fake_comfyui()  # the demo engine's catalogue
    try:
        prompt = {
            "1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "c"}},
        }
        resp = httpx.post(f"{demo.url}/prompt", json={"prompt": prompt}, timeout=10)
    finally:
        demo.stop()
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_prompt" and "cycle" in error["message"]
    assert "#1" in error["message"] and "#2" in error["message"]
