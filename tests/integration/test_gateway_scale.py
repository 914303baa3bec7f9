"""Several gateway instances on one PostgreSQL database: migrations once, runs, images and progress shared,
a graceful stop hands runs over, rate limits hold across instances, and (real processes) an instance killed
-9 in the middle of 200 runs loses none and submits none twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from websockets.asyncio.client import connect

from comfydesk.gateway.store import GatewayStore
from comfydesk.gateway.testing import RunningGateway, start_gateway
from comfydesk.testing import RunningFake, start_fake_comfyui
from comfydesk.testing.demo import demo_config
from tests.integration.gateway_helpers import (
    API,
    TERMINAL,
    client,
    create_workflow,
    execute,
    follow,
    run_to_end,
)
from tests.integration.test_gateway_runs import pattern_workflow
from tests.postgres import PostgresCluster

ROOT = Path(__file__).resolve().parents[2]

# Two gateways in one process answer their first requests on two threads at once. FastAPI silences a
# pydantic warning while it builds a route's fields with `warnings.catch_warnings()`, which is not
# thread-safe: one thread's exit can restore the filters under the other, and pytest's "error" filter then
# turns the warning into a 500. Separate processes (production, the test at the bottom) never share filters.
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.UnsupportedFieldAttributeWarning")


def machine(path: Path, *, step_delay: float = 0.01) -> RunningFake:
    config = demo_config(path)
    config.step_delay = step_delay
    return start_fake_comfyui(config)


@pytest.fixture
def cluster_db(postgres: PostgresCluster) -> str:
    return postgres.create_database()


@pytest.fixture
def pair(tmp_path: Path, cluster_db: str) -> Iterator[tuple[RunningGateway, RunningGateway, RunningFake]]:
    """Two instances (in this process) on one database and one image directory, before one machine."""
    fake = machine(tmp_path / "machine", step_delay=0.03)
    shared = {"database_url": cluster_db, "image_dir": tmp_path / "images", "comfyui_urls": [fake.url]}
    a = start_gateway(data_dir=tmp_path / "a", **shared)  # type: ignore[arg-type]
    b = start_gateway(data_dir=tmp_path / "b", **shared)  # type: ignore[arg-type]
    try:
        for gw in (a, b):  # each LISTENs for the other's changes (it connects just after start-up)
            deadline = time.monotonic() + 10
            while not gw.app.state.gateway.relay.listening:
                assert time.monotonic() < deadline, "an instance is not listening for notifications"
                time.sleep(0.01)  # polling the condition
        yield a, b, fake
    finally:
        a.stop()
        b.stop()
        fake.stop()


def test_migrations_run_once_when_instances_start_together(cluster_db: str) -> None:
    stores: list[GatewayStore] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(4)

    def open_store() -> None:
        gate.wait()
        try:
            stores.append(GatewayStore.open(cluster_db))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and len(stores) == 4
    with stores[0].engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == ["0002"]
    for store in stores:
        store.close()


async def test_instances_share_runs_images_and_progress(pair: Any) -> None:
    """A run submitted through A is followed over B's WebSocket to its end; both serve its image."""
    a, b, _fake = pair
    token = a.admin_token
    async with client(a, token) as ca, client(b, token) as cb:
        workflow_id = await create_workflow(ca, pattern_workflow(16))
        assert (await cb.get(f"{API}/workflows/{workflow_id}")).status_code == 200
        execution = await execute(ca, workflow_id, {"inputs": {"seed": 1}})
        messages = await follow(b, token, execution)  # B does not follow the run: A does
        assert execution not in b.app.state.gateway.dispatcher.by_execution
        kinds = [m["type"] for m in messages]
        assert kinds[0] == "status" and kinds[-1] == "completed" and kinds.count("completed") == 1
        percents = [m["execution"]["progress"] for m in messages]
        assert percents == sorted(percents) and percents[-1] == 100
        assert any(0 < p < 100 for p in percents)  # progress crossed instances, not only the end
        (image,) = messages[-1]["execution"]["outputs"]["images"]
        for c in (ca, cb):
            got = await c.get(image["url"])
            assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        # The other way round, and B's listing knows A's run.
        other = await execute(cb, workflow_id, {"inputs": {"seed": 2}})
        assert (await run_to_end(a, token, other))["status"] == "completed"
        listed = (await cb.get(f"{API}/executions")).json()["data"]
        assert {e["id"] for e in listed["executions"]} == {execution, other}


async def test_a_subscriber_that_misses_notifications_catches_up_from_the_row(pair: Any) -> None:
    a, b, _fake = pair
    relay = b.app.state.gateway.relay
    dropped: list[str] = []
    relay.on_notification = lambda _channel, payload: dropped.append(payload)  # B hears nothing now
    token = a.admin_token
    async with client(a, token) as ca:
        execution = await execute(ca, await create_workflow(ca, pattern_workflow(8)), {"inputs": {"seed": 9}})
    messages = await asyncio.wait_for(follow(b, token, execution), 20)
    assert messages[-1]["type"] == "completed" and messages[-1]["execution"]["progress"] == 100
    assert len(messages[-1]["execution"]["outputs"]["images"]) == 1
    assert any(p.startswith(f"{execution}:") for p in dropped)  # it was told, and did not listen


async def test_a_graceful_stop_hands_its_runs_to_the_other_instance(pair: Any) -> None:
    a, b, fake = pair
    token = a.admin_token
    async with client(a, token) as ca, client(b, token) as cb:
        workflow_id = await create_workflow(ca, pattern_workflow(60))
        execution = await execute(ca, workflow_id, {"inputs": {"seed": 3}})
        finished = asyncio.ensure_future(follow(b, token, execution))
        while (await cb.get(f"{API}/executions/{execution}")).json()["data"]["execution"]["progress"] == 0:
            await asyncio.sleep(0.02)  # polling the condition: the run has started on the machine
        started = time.monotonic()
        await asyncio.to_thread(a.stop)  # leases are 30 s: only the hand-over makes B take it at once
        messages = await asyncio.wait_for(finished, 20)
        assert time.monotonic() - started < 15
        assert messages[-1]["type"] == "completed"
        assert messages[-1]["execution"]["progress"] == 100
        assert len(messages[-1]["execution"]["outputs"]["images"]) == 1
        got = (await cb.get(f"{API}/executions/{execution}")).json()["data"]["execution"]
        assert got["status"] == "completed"
        assert (await cb.get(got["outputs"]["images"][0]["url"])).status_code == 200
    assert fake.state.prompts_posted == 1  # taken over, never submitted twice


async def test_a_run_followed_elsewhere_is_cancelled_through_any_instance(pair: Any) -> None:
    a, b, _fake = pair
    token = a.admin_token
    async with client(a, token) as ca, client(b, token) as cb:
        workflow_id = await create_workflow(ca, pattern_workflow(100))
        execution = await execute(ca, workflow_id, {"inputs": {"seed": 4}})
        resp = await cb.post(f"{API}/executions/{execution}/cancel")
        assert resp.status_code == 200
        assert resp.json()["data"]["execution"]["status"] == "cancelled"
        dispatcher = a.app.state.gateway.dispatcher
        deadline = time.monotonic() + 20
        while execution in dispatcher.by_execution:  # A lets go of it (its end, or the renewal)
            assert time.monotonic() < deadline, "A still follows the cancelled run"
            await asyncio.sleep(0.05)  # polling the condition
        got = (await ca.get(f"{API}/executions/{execution}")).json()["data"]["execution"]
        assert got["status"] == "cancelled"


async def test_rate_limits_hold_across_instances(tmp_path: Path, cluster_db: str) -> None:
    fake = machine(tmp_path / "machine")
    shared: dict[str, Any] = {
        "database_url": cluster_db,
        "comfyui_urls": [fake.url],
        "rate_limit": "20/minute",
    }
    a = start_gateway(data_dir=tmp_path / "a", **shared)
    b = start_gateway(data_dir=tmp_path / "b", **shared)
    try:
        token = a.create_token("shared")
        async with client(a, token) as ca, client(b, token) as cb:
            answers = await asyncio.gather(*(c.get(f"{API}/workflows") for c in (ca, cb) * 15))
        statuses = [r.status_code for r in answers]
        assert statuses.count(200) == 20 and statuses.count(429) == 10
        remaining = sorted(int(r.headers["X-RateLimit-Remaining"]) for r in answers if r.status_code == 200)
        assert remaining == list(range(20))
    finally:
        a.stop()
        b.stop()
        fake.stop()


def test_serve_refuses_a_bad_lease_and_an_unreachable_database_in_words(tmp_path: Path) -> None:
    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "comfydesk", "serve", "--port", "0", *args],
            cwd=str(ROOT),
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            capture_output=True,
            text=True,
            timeout=60,
        )

    bad_lease = serve("--lease", "0", "--data-dir", str(tmp_path / "d"))
    assert bad_lease.returncode != 0
    assert "--lease must be a positive number of seconds, not 0" in bad_lease.stderr
    nowhere = serve("--database", f"postgresql+psycopg://nobody:secret@127.0.0.1:{_free_port()}/x")
    assert nowhere.returncode != 0
    assert "cannot open the database: OperationalError" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr and "secret" not in nowhere.stderr


# -- real processes: three instances, two machines, 200 runs, one instance killed -9 halfway ---------------

RUNS = 200


def _serve(
    port: int, machines: list[str], database: str, images: Path, data: Path
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "comfydesk", "serve", "--port", str(port), "--database", database]
    for url in machines:
        command += ["--comfyui", url]
    command += ["--image-dir", str(images), "--data-dir", str(data), "--lease", "2"]
    command += ["--rate-limit", "100000/min"]
    data.mkdir(parents=True, exist_ok=True)
    log = open(data / "serve.log", "wb")  # noqa: SIM115 - the child holds it; closed right after
    try:
        return subprocess.Popen(
            command,
            cwd=str(ROOT),
            env=dict(os.environ, PYTHONPATH=str(ROOT), LANG="C.UTF-8"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 40
    async with httpx.AsyncClient() as c:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"serve exited {proc.returncode}: {log.read_text()[-3000:]}"
            try:
                if (await c.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)  # polling the condition: the instance coming up
    raise AssertionError(f"{url} did not become ready: {log.read_text()[-3000:]}")


async def _watch(url: str, token: str, execution: int) -> str:
    """The WebSocket of one execution on one instance, until its terminal message; returns its type."""
    ws = "ws" + url[len("http") :] + f"{API}/executions/{execution}/events"
    async with connect(ws, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=20) as sock:
        async for frame in sock:
            kind = str(json.loads(frame)["type"])
            if kind in TERMINAL:
                return kind
    raise AssertionError(f"execution {execution}: the socket closed before the run ended")


@pytest.mark.slow
async def test_three_processes_one_killed_midway_lose_and_repeat_nothing(
    tmp_path: Path, cluster_db: str
) -> None:
    # About 0.1 s a run: when the victim dies, the machines' queues hold dozens of its runs.
    fakes = [machine(tmp_path / f"machine{i}", step_delay=0.015) for i in range(2)]
    images = tmp_path / "images"
    token = subprocess.run(
        [sys.executable, "-m", "comfydesk", "serve", "token", "create", "ci", "--database", cluster_db],
        cwd=str(ROOT),
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ports = [_free_port() for _ in range(3)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    procs = [
        _serve(p, [f.url for f in fakes], cluster_db, images, tmp_path / f"gw{i}")
        for i, p in enumerate(ports)
    ]
    try:
        await asyncio.gather(
            *(
                _ready(u, p, tmp_path / f"gw{i}" / "serve.log")
                for i, (u, p) in enumerate(zip(urls, procs, strict=True))
            )
        )
        clients = [
            httpx.AsyncClient(base_url=u, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            for u in urls
        ]
        try:
            workflow_id = await create_workflow(clients[0], pattern_workflow(6))
            ids: list[int] = []
            submitted_at: list[int] = []  # which instance took each run
            watchers: list[asyncio.Task[str]] = []
            victim = 2

            async def submit(n: int, alive: list[int]) -> None:
                at = alive[n % len(alive)]
                execution = await execute(clients[at], workflow_id, {"inputs": {"seed": n}})
                ids.append(execution)
                submitted_at.append(at)
                # Subscribe on another live instance than the one that took it (never on the victim).
                others = [i for i in alive if i != at and i != victim] or [i for i in alive if i != victim]
                watchers.append(asyncio.create_task(_watch(urls[others[n % len(others)]], token, execution)))

            for first in range(0, RUNS // 2, 10):  # ten at a time, round-robin
                await asyncio.gather(*(submit(n, [0, 1, 2]) for n in range(first, first + 10)))
            through_victim = [ids[k] for k in range(len(ids)) if submitted_at[k] == victim]
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait(10)
            unfinished = [
                e
                for e in through_victim
                if (await clients[0].get(f"{API}/executions/{e}")).json()["data"]["execution"]["status"]
                in ("queued", "running")
            ]
            assert unfinished, "the victim had no run left to take over: the test proves nothing"
            for first in range(RUNS // 2, RUNS, 10):
                await asyncio.gather(*(submit(n, [0, 1]) for n in range(first, first + 10)))
            ends = await asyncio.wait_for(asyncio.gather(*watchers), 120)
            assert ends == ["completed"] * RUNS

            survivors = [clients[0], clients[1]]
            seen: dict[int, dict[str, Any]] = {}
            for execution in ids:
                got = (await survivors[execution % 2].get(f"{API}/executions/{execution}")).json()
                seen[execution] = got["data"]["execution"]
            assert all(e["status"] == "completed" and e["progress"] == 100 for e in seen.values())

            # Exactly once: one prompt per execution reached a machine, and each machine ran what it got.
            store = GatewayStore.open(cluster_db)
            try:
                rows = [store.get_execution(i) for i in ids]
            finally:
                store.close()
            prompts = {str(r["prompt_id"]) for r in rows if r is not None}
            assert len(prompts) == RUNS
            assert sum(f.state.prompts_posted for f in fakes) == RUNS
            ran = set().union(*(set(f.state.history) for f in fakes))
            assert ran == prompts
            assert all(f.state.prompts_posted > RUNS // 4 for f in fakes)  # both machines had work

            # Every image from every live instance (the victim is restarted to show it serves them too).
            procs[victim] = _serve(
                ports[victim], [f.url for f in fakes], cluster_db, images, tmp_path / "gw2b"
            )
            await _ready(urls[victim], procs[victim], tmp_path / "gw2b" / "serve.log")
            image_urls = [e["outputs"]["images"][0]["url"] for e in seen.values()]
            assert len(image_urls) == RUNS
            for c in clients:
                answers = await asyncio.gather(*(c.get(u) for u in image_urls))
                assert {r.status_code for r in answers} == {200}
        finally:
            for c in clients:
                await c.aclose()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for f in fakes:
            f.stop()
