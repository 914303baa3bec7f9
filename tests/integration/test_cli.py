"""The network commands (`check`, `run`) against the fake ComfyUI over real sockets.

Most tests call `comfydesk.cli.main` in-process (the fake serves from its own thread); the `slow` ones spawn
`python -m comfydesk` as real processes, as a user or a CI job would.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from comfydesk.cli import main
from tests.conftest import FIXTURES, ROOT, load_json

API = FIXTURES / "workflows" / "api"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ check


def test_check_reports_the_server(fake_comfyui: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--server", fake_comfyui.url]) == 0
    out = capsys.readouterr().out
    assert f"server:  {fake_comfyui.url.rstrip('/')}" in out
    assert "kind:    ComfyUI " in out
    assert "devices: " in out and "nodes:   " in out and "queue:   0 (0 running, 0 pending)" in out
    nodes = int(out.split("nodes:")[1].split()[0])
    assert nodes >= 449


def test_check_closed_port_exits_2_naming_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    assert main(["check", "--server", url, "--token", "s3cret-token"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("comfydesk: ") and url in captured.err
    assert "s3cret-token" not in captured.err


def test_check_uses_comfydesk_server_env(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMFYDESK_SERVER", fake_comfyui.url)
    assert main(["check"]) == 0
    assert "ComfyUI" in capsys.readouterr().out


def test_nodes_and_convert_read_definitions_from_the_server(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["nodes", "--server", fake_comfyui.url, "--search", "ksampler", "--json"]) == 0
    ids = [n["id"] for n in json.loads(capsys.readouterr().out)["nodes"]]
    assert ids[:2] == ["KSampler", "KSamplerAdvanced"]
    # UI format needs definitions: without options, the default server ($COMFYDESK_SERVER) is asked
    monkeypatch.setenv("COMFYDESK_SERVER", fake_comfyui.url)
    assert main(["convert", str(FIXTURES / "workflows" / "ui" / "default.json")]) == 0
    assert json.loads(capsys.readouterr().out) == load_json("workflows/ui_reference_api/default.json")


def test_nodes_and_convert_without_a_server_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    assert main(["nodes", "--server", url]) == 2
    assert url in capsys.readouterr().err
    monkeypatch.setenv("COMFYDESK_SERVER", url)
    assert main(["convert", str(FIXTURES / "workflows" / "ui" / "default.json")]) == 2
    assert "needs the server's node definitions" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------------- run


def test_run_writes_a_png_and_prints_its_path(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    code = main(
        ["run", str(API / "empty_blur_save.json"), "--server", fake_comfyui.url, "--out", str(out_dir)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    paths = captured.out.splitlines()
    assert len(paths) == 1 and paths[0].startswith(str(out_dir))
    data = Path(paths[0]).read_bytes()
    assert data.startswith(PNG_MAGIC)
    with Image.open(Path(paths[0])) as img:
        assert img.size == (64, 64)
    assert "submitted " in captured.err and "%]" in captured.err  # progress lines (stderr is not a TTY)


def test_run_twice_into_one_folder_never_overwrites(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = [
        "run",
        str(API / "empty_blur_save.json"),
        "--server",
        fake_comfyui.url,
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(args) == 0
    assert main(args) == 0
    paths = capsys.readouterr().out.splitlines()
    assert len(set(paths)) == 2 and all(Path(p).is_file() for p in paths)


def test_run_json_output(fake_comfyui: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(
        [
            "run",
            str(API / "empty_blur_save.json"),
            "--server",
            fake_comfyui.url,
            "--out",
            str(tmp_path / "out"),
            "--json",
            "--set",
            "Image Blur.blur_radius=5",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    assert set(doc) == {"execution_id", "status", "outputs", "elapsed"}
    assert doc["status"] == "completed" and isinstance(doc["elapsed"], float)
    assert [(o["node_id"], o["kind"]) for o in doc["outputs"]] == [("3", "images")]
    assert Path(doc["outputs"][0]["path"]).read_bytes().startswith(PNG_MAGIC)
    sent = _history_prompt(fake_comfyui.url, doc["execution_id"])
    assert sent["2"]["inputs"]["blur_radius"] == 5


def _history_prompt(url: str, execution_id: str) -> dict[str, Any]:
    entry = httpx.get(f"{url.rstrip('/')}/history/{execution_id}", timeout=10).json()[execution_id]
    return entry["prompt"][2]  # type: ignore[no-any-return]


def test_run_text_output_is_saved_as_txt(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(
        ["run", str(API / "text_output.json"), "--server", fake_comfyui.url, "--out", str(tmp_path / "out")]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    texts = [Path(p) for p in captured.out.splitlines() if p.endswith(".txt")]
    assert texts and all(p.name.startswith("2_text") for p in texts)
    assert "line one" in texts[0].read_text(encoding="utf-8")


def test_run_failing_node_exits_1_naming_node_and_message(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["run", str(API / "fail.json"), "--server", fake_comfyui.url, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "node 3 (TestFail)" in err and "deliberate failure from TestFail" in err
    assert "RuntimeError" in err
    assert not (tmp_path / "out").exists()


def test_run_validation_error_exits_2_before_submitting(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    before = httpx.get(f"{fake_comfyui.url.rstrip('/')}/history", timeout=10).json()
    args = [
        "run",
        str(API / "empty_blur_save.json"),
        "--server",
        fake_comfyui.url,
        "--out",
        str(tmp_path / "out"),
    ]
    assert main([*args, "--set", "1.width=999999", "--set", "Image Blur.sigma=-4"]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0] == "comfydesk: the workflow is not valid (2 problems):"
    assert lines[1].startswith("  node 1 (EmptyImage), input 'width': ")
    assert lines[2].startswith("  node 2 (Image Blur), input 'sigma': ")
    assert "submitted" not in err
    assert httpx.get(f"{fake_comfyui.url.rstrip('/')}/history", timeout=10).json() == before


def test_run_ui_format_is_converted_then_validated(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ui = FIXTURES / "workflows" / "ui" / "default.json"
    assert main(["run", str(ui), "--server", fake_comfyui.url, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "node 15 (MarkdownNote) dropped" in err  # the conversion report
    assert "  node 4 (Load Checkpoint), input 'ckpt_name': " in err  # the template's model is not there
    assert "tiny-random-sd15.safetensors" in err and "--set NODE_ID.input=VALUE" in err


def test_run_timeout_cancels_on_the_server_and_exits_1(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = load_json("workflows/api/slow_steps.json")
    doc["2"]["inputs"].update(steps=1000, delay=10.0)
    wf = _write(tmp_path, "slow.json", doc)
    args = ["run", str(wf), "--server", fake_comfyui.url, "--out", str(tmp_path / "out"), "--json"]
    assert main([*args, "--timeout", "0.5"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert (doc["status"], doc["error"]) == ("cancelled", "timed out")
    assert "took longer than 0.5 s" in captured.err
    base = fake_comfyui.url.rstrip("/")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # interrupted at the fake's next step check
        entry = httpx.get(f"{base}/history/{doc['execution_id']}", timeout=5).json()
        if entry:
            break
        time.sleep(0.05)
    assert entry[doc["execution_id"]]["status"]["status_str"] == "error"


def test_run_output_the_server_lost_is_reported_and_exits_1(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake_comfyui.faults.fail_route("/view", status=404)
    args = [
        "run",
        str(API / "empty_blur_save.json"),
        "--server",
        fake_comfyui.url,
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "comfydesk: output of node 3 not saved: the server no longer has the output file" in captured.err


def test_run_survives_a_dropped_websocket(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = load_json("workflows/api/slow_steps.json")
    doc["2"]["inputs"].update(steps=40)
    wf = _write(tmp_path, "slow.json", doc)
    fake_comfyui.faults.drop_websocket_after(12)
    code = main(["run", str(wf), "--server", fake_comfyui.url, "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    # "reconnected" may not show: the backend can finish the run from /history before it reports the socket up
    assert "connection lost; reconnecting (attempt 1" in captured.err
    assert Path(captured.out.strip()).read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["nosuch=1"], "no placeholder, node id or node title is called that"),
        (["1.width=wide"], "node 1 (EmptyImage), input 'width': Width must be a whole number"),
        (["oops"], "expected NAME=VALUE"),
    ],
)
def test_run_bad_set_exits_2(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, sets: list[str], message: str
) -> None:
    args = [
        "run",
        str(API / "empty_blur_save.json"),
        "--server",
        fake_comfyui.url,
        "--out",
        str(tmp_path / "out"),
    ]
    assert main([*args, *(a for s in sets for a in ("--set", s))]) == 2
    assert message in capsys.readouterr().err


def test_run_placeholder_workflow_and_image_upload(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = {
        "name": "Invert and scale",
        "description": "v1 shape with placeholders",
        "nodes": [
            {"id": "10", "type": "LoadImage", "inputs": {"image": "{photo}"}},
            {"id": "11", "type": "ImageInvert", "inputs": {"image": ["10", 0]}},
            {
                "id": "12",
                "type": "ImageScale",
                "inputs": {
                    "image": ["11", 0],
                    "upscale_method": "bilinear",
                    "width": "{width}",
                    "height": 24,
                    "crop": "disabled",
                },
            },
            {
                "id": "13",
                "type": "SaveImage",
                "inputs": {"images": ["12", 0], "filename_prefix": "cli/{name}"},
            },
        ],
    }
    wf = _write(tmp_path, "v1.json", doc)
    photo = tmp_path / "photo.png"
    Image.new("RGB", (20, 10), (250, 0, 0)).save(photo)
    base = ["run", str(wf), "--server", fake_comfyui.url, "--out", str(tmp_path / "out")]

    assert main([*base, "--set", "photo=" + str(photo)]) == 2  # {width} and {name} are required
    err = capsys.readouterr().err
    assert "Pass --set width=VALUE." in err and "Pass --set name=VALUE." in err

    code = main([*base, "--set", f"photo={photo}", "--set", "width=32", "--set", "name=fox", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "uploaded " in captured.err
    out = json.loads(captured.out)["outputs"]
    with Image.open(out[0]["path"]) as img:
        assert img.size == (32, 24)
        assert img.convert("RGB").getpixel((0, 0))[0] < 20  # red inverted: no red left


def test_run_unknown_node_type_exits_2(
    fake_comfyui: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = load_json("workflows/api/empty_blur_save.json")
    doc["2"]["class_type"] = "NoSuchNode"
    wf = _write(tmp_path, "wf.json", doc)
    assert main(["run", str(wf), "--server", fake_comfyui.url, "--out", str(tmp_path / "out")]) == 2
    assert "unknown node type NoSuchNode" in capsys.readouterr().err


def test_run_against_closed_port_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    assert (
        main(["run", str(API / "empty_blur_save.json"), "--server", url, "--out", str(tmp_path / "out")]) == 2
    )
    assert url in capsys.readouterr().err


# ----------------------------------------------------------------------------------- real processes


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("COMFYDESK_SERVER", None)
    env["LANG"] = "C.UTF-8"
    return env


def _comfydesk(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "comfydesk", *args],
        cwd=str(ROOT),
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def _wait_for_server(url: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"demo-server exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        try:
            if httpx.get(f"{url}/system_stats", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling interval of a condition wait, not a fixed wait
    raise AssertionError(f"demo-server did not answer on {url} within {timeout} s")


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    proc = _comfydesk("demo-server", "--port", str(port), "--data-dir", str(tmp_path / "demo-data"))
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(url, proc)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _sample_workflow() -> tuple[Path, list[str]]:
    """A sample workflow shipped in resources/workflows, with a --set for each of its placeholders."""
    from comfydesk.core.workflow import find_placeholders, load_workflow_file

    samples = sorted((ROOT / "resources" / "workflows").glob("*.json"))
    if not samples:
        pytest.skip("no sample workflow in resources/workflows yet")
    for path in samples:
        try:
            wf = load_workflow_file(path)
        except Exception:
            continue  # UI-format samples need a catalog; an API/v1 one is enough here
        sets: list[str] = []
        for name, targets in find_placeholders(wf.graph).items():
            node_id, input_name = targets[0]
            value = wf.graph[node_id].inputs[input_name]
            whole = value == "{" + name + "}"
            low = name.lower()
            if whole and any(w in low for w in ("seed",)):
                sets.append(f"{name}=42")
            elif whole and any(w in low for w in ("width", "height", "size")):
                sets.append(f"{name}=64")
            elif whole and any(w in low for w in ("steps", "count", "batch")):
                sets.append(f"{name}=2")
            elif whole and any(w in low for w in ("cfg", "strength", "denoise", "scale")):
                sets.append(f"{name}=1.0")
            else:
                sets.append(f"{name}=a lighthouse at dusk")
        return path, sets
    pytest.skip("no API or /api/v1 sample workflow in resources/workflows")


@pytest.mark.slow
def test_end_to_end_demo_server_and_run_as_processes(demo_server: str, tmp_path: Path) -> None:
    workflow, sets = _sample_workflow()
    out_dir = tmp_path / "results"
    args = ["run", str(workflow), "--server", demo_server, "--out", str(out_dir)]
    for s in sets:
        args += ["--set", s]
    proc = _comfydesk(*args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    paths = [Path(p) for p in out.splitlines()]
    pngs = [p for p in paths if p.suffix == ".png"]
    assert pngs, f"no PNG among {paths}"
    for p in pngs:
        assert p.parent == out_dir and p.read_bytes().startswith(PNG_MAGIC)
        with Image.open(p) as img:
            img.verify()


def _lines(stream: Any) -> queue.Queue[str | None]:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.mark.slow
def test_ctrl_c_interrupts_the_run_on_the_server_and_exits_130(fake_comfyui: Any, tmp_path: Path) -> None:
    doc = load_json("workflows/api/slow_steps.json")
    doc["2"]["inputs"].update(steps=1000, delay=10.0)  # as slow as the fake goes: seconds, not milliseconds
    wf = _write(tmp_path, "slow.json", doc)
    seen: list[str] = []
    rest: list[str] = []
    execution_id = ""
    with _comfydesk("run", str(wf), "--server", fake_comfyui.url, "--out", str(tmp_path / "out")) as proc:
        assert proc.stderr is not None
        lines = _lines(proc.stderr)
        deadline = time.monotonic() + 30
        try:
            while "step " not in (seen[-1] if seen else ""):  # the progress line: the node is running
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                if line is None:
                    raise AssertionError(f"comfydesk run ended before showing progress: {seen}")
                seen.append(line)
                if line.startswith("submitted "):
                    execution_id = line.split()[1]
            assert execution_id, seen
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        while (line := lines.get(timeout=10)) is not None:
            rest.append(line)
    assert proc.returncode == 130, seen + rest
    assert any("cancelling the run on the server" in line for line in rest), rest
    base = fake_comfyui.url.rstrip("/")
    deadline = time.monotonic() + 10
    entry: dict[str, Any] = {}
    while time.monotonic() < deadline:  # the server records the interrupt at its next step check
        entry = httpx.get(f"{base}/history/{execution_id}", timeout=5).json().get(execution_id, {})
        if entry:
            break
        time.sleep(0.05)
    assert entry, "the interrupted run never reached the history"
    assert entry["status"]["status_str"] == "error"
    assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"])
    running = httpx.get(f"{base}/queue", timeout=5).json()["queue_running"]
    assert all(item[1] != execution_id for item in running)
