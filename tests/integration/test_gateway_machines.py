"""The gateway in front of several ComfyUI machines, and a gateway process killed mid-run: real processes and
sockets on 127.0.0.1 (the fake ComfyUI plays each machine)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfydesk.gateway.testing import start_gateway
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.testing.demo import demo_config
from tests.conftest import FIXTURES
from tests.integration.gateway_helpers import API, client, create_workflow, execute, run_to_end
from tests.integration.test_gateway_runs import pattern_workflow

ROOT = Path(__file__).resolve().parents[2]


def demo_machine(path: Path, *, step_delay: float = 0.01, port: int = 0) -> RunningFake:
    config = demo_config(path)
    config.step_delay = step_delay
    return start_fake_comfyui(config, port=port)


@pytest.fixture
def two_machines(tmp_path: Path) -> Iterator[tuple[RunningFake, RunningFake]]:
    a = demo_machine(tmp_path / "a", step_delay=0.03)
    b = demo_machine(tmp_path / "b", step_delay=0.03)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


async def _wait(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)  # polling interval of a condition wait


async def test_runs_go_to_the_least_loaded_machine(tmp_path: Path, two_machines: Any) -> None:
    a, b = two_machines
    gw = start_gateway(comfyui_urls=[a.url, b.url], data_dir=tmp_path / "gw")
    try:
        async with client(gw, gw.admin_token) as c:
            workflow_id = await create_workflow(c, pattern_workflow(20))
            ids = [await execute(c, workflow_id, {"inputs": {"seed": n}}) for n in range(4)]
            done = [await run_to_end(gw, gw.admin_token, i) for i in ids]
        assert [d["status"] for d in done] == ["completed"] * 4
        assert a.state.prompts_posted == 2 and b.state.prompts_posted == 2
    finally:
        gw.stop()


async def test_backends_show_state_and_catalog_differences(tmp_path: Path) -> None:
    demo = demo_machine(tmp_path / "demo")
    full = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "full")
    )
    gw = start_gateway(comfyui_urls=[demo.url, full.url], data_dir=tmp_path / "gw")
    try:
        async with client(gw, gw.admin_token) as c:
            backends = (await c.get(f"{API}/backends")).json()["data"]["backends"]
            nodes = {n["id"] for n in (await c.get(f"{API}/nodes")).json()["data"]["nodes"]}
        by_url = {b["url"]: b for b in backends}
        assert by_url[demo.url]["healthy"] and by_url[full.url]["healthy"]
        assert by_url[demo.url]["version"] == "0.8.0"
        assert "KSampler" in by_url[demo.url]["missing_nodes"]
        assert {"DemoPattern", "text_to_image"} <= set(by_url[demo.url]["extra_nodes"])
        assert "DemoPattern" in by_url[full.url]["missing_nodes"]
        # /nodes serves what both machines offer.
        assert {"SaveImage", "LoadImage", "ImageInvert"} <= nodes
        assert "KSampler" not in nodes and "DemoPattern" not in nodes
    finally:
        gw.stop()
        demo.stop()
        full.stop()


async def test_a_machine_dying_mid_run_fails_its_runs_and_is_skipped_until_back(
    tmp_path: Path, two_machines: Any
) -> None:
    a, b = two_machines
    gw = start_gateway(comfyui_urls=[a.url, b.url], data_dir=tmp_path / "gw")
    try:
        async with client(gw, gw.admin_token) as c:
            workflow_id = await create_workflow(c, pattern_workflow(100))
            first = await execute(c, workflow_id, {"inputs": {"seed": 1}})
            victim = a if a.state.prompts_posted else b
            survivor = b if victim is a else a
            port = int(victim.url.rsplit(":", 1)[1])

            async def running() -> bool:
                got = (await c.get(f"{API}/executions/{first}")).json()["data"]["execution"]
                return bool(got["progress"] > 0)

            await _wait(running, "the run to make progress")
            victim.stop()
            failed = await run_to_end(gw, gw.admin_token, first)
            assert failed["status"] == "failed"
            assert failed["error"]["code"] == "backend_unavailable"
            assert victim.url in failed["error"]["message"]

            async def victim_down() -> bool:
                backends = (await c.get(f"{API}/backends")).json()["data"]["backends"]
                return not next(x for x in backends if x["url"] == victim.url)["healthy"]

            await _wait(victim_down, "the dead machine to be marked unhealthy")
            before = survivor.state.prompts_posted
            second = await execute(c, workflow_id, {"inputs": {"seed": 2}})
            assert (await run_to_end(gw, gw.admin_token, second))["status"] == "completed"
            assert survivor.state.prompts_posted == before + 1

            back = demo_machine(tmp_path / "back", port=port)
            try:

                async def victim_up() -> bool:
                    backends = (await c.get(f"{API}/backends")).json()["data"]["backends"]
                    return bool(next(x for x in backends if x["url"] == victim.url)["healthy"])

                await _wait(victim_up, "the machine to be healthy again")
            finally:
                back.stop()
    finally:
        gw.stop()


async def test_no_machine_at_all_is_503(tmp_path: Path) -> None:
    dead = demo_machine(tmp_path / "dead")
    url = dead.url
    dead.stop()
    gw = start_gateway(comfyui_urls=[url], data_dir=tmp_path / "gw")
    try:
        async with client(gw, gw.admin_token) as c:
            resp = await c.get(f"{API}/nodes")
            assert resp.status_code == 503
            assert resp.json()["errors"][0]["code"] == "backend_unavailable"
    finally:
        gw.stop()


# -- a real gateway process, killed -9 in the middle of a run -------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(port: int, comfyui: str, data_dir: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), LANG="C.UTF-8")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "comfydesk",
            "serve",
            "--port",
            str(port),
            "--comfyui",
            comfyui,
            "--data-dir",
            str(data_dir),
        ],
        cwd=str(ROOT),
        env=env,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_up(url: str, token: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"serve exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        try:
            if (
                httpx.get(f"{url}{API}/nodes", headers={"Authorization": f"Bearer {token}"}).status_code
                == 200
            ):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling interval of a condition wait
    raise AssertionError("comfydesk serve did not come up")


@pytest.mark.slow
async def test_gateway_killed_mid_run_finishes_it_after_restart(tmp_path: Path) -> None:
    machine = demo_machine(tmp_path / "machine", step_delay=0.04)
    data = tmp_path / "gw"
    token = subprocess.run(
        [sys.executable, "-m", "comfydesk", "serve", "token", "create", "ci", "--data-dir", str(data)],
        cwd=str(ROOT),
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(port, machine.url, data)
    try:
        _wait_up(url, token, proc)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as c:
            workflow_id = await create_workflow(c, pattern_workflow(60))
            execution = await execute(c, workflow_id, {"inputs": {"seed": 5}})

            async def started() -> bool:
                got = (await c.get(f"{API}/executions/{execution}")).json()["data"]["execution"]
                return bool(got["progress"] > 0)

            await _wait(started, "the run to start")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        assert machine.state.prompts_posted == 1

        proc = _serve(port, machine.url, data)
        _wait_up(url, token, proc)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as c:

            async def finished() -> bool:
                got = (await c.get(f"{API}/executions/{execution}")).json()["data"]["execution"]
                return got["status"] not in ("queued", "running")

            await _wait(finished, "the run to finish after the restart", timeout=30)
            got = (await c.get(f"{API}/executions/{execution}")).json()["data"]["execution"]
            assert got["status"] == "completed" and got["progress"] == 100
            (image,) = got["outputs"]["images"]
            assert (await c.get(image["url"])).status_code == 200
        assert machine.state.prompts_posted == 1  # taken up again, never submitted twice
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        machine.stop()
