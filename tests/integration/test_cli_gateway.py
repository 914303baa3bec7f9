"""`comfydesk check`, `nodes` and `run` against the real gateway, as processes (`python -m comfydesk`), the
way a script or a CI job runs them. The kind of server is found out (`--kind auto`, the default)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from comfydesk.gateway.testing import RunningGateway, start_gateway
from tests.conftest import FIXTURES, ROOT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BLOG_POST: dict[str, Any] = {
    "name": "Blog Post Image",
    "description": "Generate blog post header image",
    "nodes": [
        {
            "id": "text_to_image",
            "type": "text_to_image",
            "inputs": {"prompt": "{prompt}", "negative_prompt": "{negative_prompt}"},
        }
    ],
}


def comfydesk(*args: str, token: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["LANG"] = "C.UTF-8"
    env.pop("COMFYDESK_SERVER", None)
    env.pop("COMFYDESK_TOKEN", None)
    if token is not None:
        env["COMFYDESK_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "comfydesk", *args],
        cwd=str(ROOT),
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def published(gateway: RunningGateway) -> Iterator[tuple[RunningGateway, str, str]]:
    """The gateway, an artist's token, and the id of the spec's "Blog Post Image" workflow it published."""
    token = gateway.create_token("artist")
    resp = httpx.post(
        f"{gateway.url}/api/v1/comfyui/workflows",
        json=BLOG_POST,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    yield gateway, token, str(resp.json()["data"]["workflow"]["id"])


def test_check_reports_a_gateway(published: tuple[RunningGateway, str, str]) -> None:
    gw, token, _ = published
    proc = comfydesk("check", "--server", gw.url, "--token", token)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"server:  {gw.url}"
    assert lines[1].startswith("kind:    comfydesk gateway")
    assert "nodes:   " in proc.stdout and "workflows: 1" in proc.stdout
    assert "queue:   0 (0 running, 0 pending) of this token" in proc.stdout
    assert "devices" not in proc.stdout
    assert token not in proc.stdout + proc.stderr


def test_a_rejected_token_exits_2_and_is_never_printed(gateway: RunningGateway) -> None:
    bad = "cdk_definitely-not-a-token"
    for args, env_token in (
        (["check", "--server", gateway.url, "--token", bad], None),
        (["nodes", "--server", gateway.url], bad),  # the token from $COMFYDESK_TOKEN
        (["run", "1", "--server", gateway.url, "--token", bad], None),
    ):
        proc = comfydesk(*args, token=env_token)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "token rejected" in proc.stderr, proc.stderr
        assert proc.stderr.startswith("comfydesk: ")
        assert bad not in proc.stdout + proc.stderr
    proc = comfydesk("check", "--server", gateway.url)
    assert proc.returncode == 2 and "none was given" in proc.stderr, proc.stderr


def test_nodes_lists_the_gateway_catalog(published: tuple[RunningGateway, str, str]) -> None:
    gw, token, _ = published
    proc = comfydesk("nodes", "--server", gw.url, "--json", "--search", "text to image", token=token)
    assert proc.returncode == 0, proc.stderr
    nodes = json.loads(proc.stdout)["nodes"]
    assert nodes[0]["id"] == "text_to_image"
    assert {i["name"] for i in nodes[0]["inputs"]} >= {"prompt", "negative_prompt"}


def test_run_a_stored_workflow_by_id(published: tuple[RunningGateway, str, str], tmp_path: Path) -> None:
    gw, token, wid = published
    out = tmp_path / "out"
    proc = comfydesk(
        "run",
        wid,
        "--server",
        gw.url,
        "--set",
        "prompt=A beautiful landscape",
        "--out",
        str(out),
        token=token,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0].startswith("submitted ")
    assert "[100%] completed" in proc.stderr
    (path,) = [Path(p) for p in proc.stdout.splitlines()]
    assert path.parent == out and path.read_bytes().startswith(PNG_MAGIC)
    with Image.open(path) as img:
        assert img.size == (1024, 768)

    proc = comfydesk(
        "run",
        f"gateway:{wid}",
        "--server",
        gw.url,
        "--token",
        token,
        "--set",
        "prompt=a red fox",
        "--set",
        "negative_prompt=blurry",
        "--out",
        str(out),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "completed" and len(doc["outputs"]) == 1
    assert Path(doc["outputs"][0]["path"]).read_bytes().startswith(PNG_MAGIC)
    assert Path(doc["outputs"][0]["path"]) != path  # never overwritten


def test_run_refusals_exit_2_in_words(published: tuple[RunningGateway, str, str], tmp_path: Path) -> None:
    gw, token, wid = published
    base = ["--server", gw.url, "--out", str(tmp_path / "out")]

    proc = comfydesk("run", wid, *base, token=token)  # no prompt: the gateway refuses, per field
    assert proc.returncode == 2, proc.stderr
    assert "the gateway refused the inputs" in proc.stderr
    assert "input 'prompt'" in proc.stderr and "--set prompt=VALUE" in proc.stderr

    proc = comfydesk("run", "99", *base, token=token)
    assert proc.returncode == 2
    assert "no workflow 99" in proc.stderr and f"{wid} 'Blog Post Image'" in proc.stderr

    proc = comfydesk("run", wid, *base, "--set", "text_to_image.prompt=x", token=token)
    assert proc.returncode == 2 and "set it with --set prompt=VALUE" in proc.stderr, proc.stderr

    fixed = {**BLOG_POST, "name": "Fixed negative"}
    fixed["nodes"] = [
        {
            "id": "text_to_image",
            "type": "text_to_image",
            "inputs": {"prompt": "{prompt}", "negative_prompt": "ugly"},
        }
    ]
    resp = httpx.post(
        f"{gw.url}/api/v1/comfyui/workflows",
        json=fixed,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    other = str(resp.json()["data"]["workflow"]["id"])
    proc = comfydesk(
        "run", other, *base, "--set", "prompt=x", "--set", "text_to_image.negative_prompt=y", token=token
    )
    assert proc.returncode == 2 and "only its placeholders can be set ({prompt})" in proc.stderr, proc.stderr

    workflow_file = FIXTURES / "workflows" / "api" / "slow_steps.json"
    proc = comfydesk("run", str(workflow_file), *base, token=token)
    assert proc.returncode == 2
    assert "runs only the workflows stored on it" in proc.stderr and "Blog Post Image" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_an_explicit_kind_is_believed(
    published: tuple[RunningGateway, str, str], fake_comfyui: object
) -> None:
    gw, token, wid = published
    url = getattr(fake_comfyui, "url")  # noqa: B009 - the fixture's type lives in comfydesk.testing
    proc = comfydesk("run", f"gateway:{wid}", "--server", url, "--kind", "comfyui", token=token)
    assert proc.returncode == 2 and "is a ComfyUI server" in proc.stderr, proc.stderr
    proc = comfydesk("check", "--server", gw.url, "--kind", "gateway", token=token)
    assert proc.returncode == 0 and "comfydesk gateway" in proc.stdout, proc.stderr
    proc = comfydesk("run", "12345", "--server", url, token=token)  # no such file, and not a gateway
    assert proc.returncode == 2 and "12345: cannot read the file" in proc.stderr, proc.stderr


def test_run_waits_out_the_rate_limit(tmp_path: Path) -> None:
    gw = start_gateway(data_dir=tmp_path / "gw", rate_limit="3/second")
    try:
        token = gw.create_token("busy")
        resp = httpx.post(
            f"{gw.url}/api/v1/comfyui/workflows",
            json=BLOG_POST,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        wid = str(resp.json()["data"]["workflow"]["id"])
        out = tmp_path / "out"
        proc = comfydesk(
            "run", wid, "--server", gw.url, "--set", "prompt=busy day", "--out", str(out), token=token
        )
        assert proc.returncode == 0, proc.stderr
        assert "the server is busy (too many requests); trying again in" in proc.stderr, proc.stderr
        assert Path(proc.stdout.strip()).read_bytes().startswith(PNG_MAGIC)
    finally:
        gw.stop()


def test_ctrl_c_cancels_the_execution_on_the_gateway(tmp_path: Path) -> None:
    gw = start_gateway(data_dir=tmp_path / "gw", demo_step_delay=1.0)  # 8 steps: seconds to interrupt
    try:
        token = gw.create_token("impatient")
        headers = {"Authorization": f"Bearer {token}"}
        resp = httpx.post(f"{gw.url}/api/v1/comfyui/workflows", json=BLOG_POST, headers=headers, timeout=10)
        wid = str(resp.json()["data"]["workflow"]["id"])
        env = dict(os.environ, PYTHONPATH=str(ROOT), LANG="C.UTF-8", COMFYDESK_TOKEN=token)
        args = ["run", wid, "--server", gw.url, "--set", "prompt=slow", "--out", str(tmp_path / "out")]
        with subprocess.Popen(
            [sys.executable, "-m", "comfydesk", *args],
            cwd=str(ROOT),
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            assert proc.stderr is not None
            seen: list[str] = []
            try:
                while not (seen and "step " in seen[-1]):  # the node is running
                    line = proc.stderr.readline()
                    assert line, f"comfydesk run ended before showing progress: {seen}"
                    seen.append(line)
                execution_id = next(x.split()[1] for x in seen if x.startswith("submitted "))
                proc.send_signal(signal.SIGINT)
                _, rest = proc.communicate(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
        assert proc.returncode == 130, [*seen, rest]
        assert "cancelling the run on the server" in rest
        status = httpx.get(f"{gw.url}/api/v1/comfyui/executions/{execution_id}", headers=headers, timeout=5)
        assert status.json()["data"]["execution"]["status"] == "cancelled"
    finally:
        gw.stop()
