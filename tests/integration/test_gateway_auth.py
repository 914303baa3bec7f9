"""Who may do what on the gateway: a token on every route (walking FastAPI's route table), per-token
isolation of executions and images, admin rights, rate limits with their headers, body size limits, and the
load balancer's probes, which alone need no token. On SQLite and on PostgreSQL (counters in the database)."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from comfydesk.gateway.app import PROBES
from comfydesk.gateway.testing import RunningGateway, start_gateway
from tests.integration.gateway_helpers import (
    API,
    BLOG_POST_IMAGE,
    client,
    create_workflow,
    execute,
    run_to_end,
    ws_url,
)
from tests.postgres import running_gateway


@pytest.fixture
def gateway(tmp_path: Path, database_url: str | None) -> Iterator[RunningGateway]:
    """The conftest's gateway, once on SQLite and once on PostgreSQL."""
    yield from running_gateway(tmp_path, database_url)


_PARAMS = {"workflow_id": "1", "execution_id": "1", "file_name": "1.png"}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _PARAMS[m.group(1)], path)


def _flat(routes: list[Any]) -> list[Any]:
    """The route table with included routers expanded (newer FastAPI keeps them as router objects)."""
    out: list[Any] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out += _flat(list(inner.routes)) if inner is not None else [route]
    return out


def _routes(gw: RunningGateway) -> tuple[list[tuple[str, str]], list[str]]:
    http: list[tuple[str, str]] = []
    sockets: list[str] = []
    for route in _flat(list(gw.app.routes)):
        if getattr(route, "path", None) in PROBES:  # the load balancer's: see the probe test below
            continue
        if isinstance(route, APIRoute):
            http += [(method, _concrete(route.path)) for method in sorted(route.methods)]
        elif isinstance(route, APIWebSocketRoute):
            sockets.append(_concrete(route.path))
        else:  # the OpenAPI document is a plain Starlette route
            http += [(method, route.path) for method in sorted(getattr(route, "methods", None) or ["GET"])]
    return http, sockets


@pytest.mark.parametrize("auth", [None, "Bearer not-a-token", "Basic YWRtaW46YWRtaW4=", "Bearer  x y"])
async def test_every_route_wants_a_valid_token(gateway: RunningGateway, auth: str | None) -> None:
    async with client(gateway, gateway.admin_token) as c:  # real ids exist, so a 401 is not a 404
        await create_workflow(c)
        execution = await execute(c, 1)
        await run_to_end(gateway, gateway.admin_token, execution)
    http, sockets = _routes(gateway)
    assert len(http) >= 12 and len(sockets) == 2
    headers = {"Authorization": auth} if auth else {}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as anon:
        for method, path in http:
            resp = await anon.request(method, path, json={} if method in ("POST", "PUT") else None)
            assert resp.status_code == 401, (method, path, resp.status_code)
            assert "X-RateLimit-Limit" in resp.headers
            if method == "HEAD":
                continue
            body = resp.json()
            assert body["status"] == "error" and body["errors"][0]["code"] == "unauthorized"
    for path in sockets:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(gateway, path[len(API) :]), additional_headers=headers):
                pass
        assert refused.value.response.status_code == 401


async def test_a_revoked_token_stops_working(gateway: RunningGateway) -> None:
    secret = gateway.create_token("temp")
    async with client(gateway, secret) as c:
        assert (await c.get(f"{API}/workflows")).status_code == 200
        assert gateway.revoke_token("temp")
        for _ in range(300):  # the gateway caches a token for at most 2 s
            if (await c.get(f"{API}/workflows")).status_code == 401:
                break
            await asyncio.sleep(0.02)
        assert (await c.get(f"{API}/workflows")).status_code == 401


async def test_websocket_takes_the_token_in_the_query(gateway: RunningGateway) -> None:
    async with client(gateway, gateway.admin_token) as c:
        execution = await execute(c, await create_workflow(c))
    url = ws_url(gateway, f"/executions/{execution}/events") + f"?token={gateway.admin_token}"
    async with connect(url) as ws:
        first = await ws.recv()
    assert '"type":"status"' in first.replace(" ", "") if isinstance(first, str) else False


async def test_a_token_sees_only_its_own_executions_and_images(gateway: RunningGateway) -> None:
    alice, bob = gateway.create_token("alice"), gateway.create_token("bob")
    async with (
        client(gateway, alice) as a,
        client(gateway, bob) as b,
        client(gateway, gateway.admin_token) as adm,
    ):
        workflow_id = await create_workflow(a)
        assert [w["id"] for w in (await b.get(f"{API}/workflows")).json()["data"]["workflows"]] == [
            workflow_id
        ]
        mine = await execute(a, workflow_id)
        done = await run_to_end(gateway, alice, mine)
        image_url = done["outputs"]["images"][0]["url"]
        theirs = await execute(b, workflow_id)
        await run_to_end(gateway, bob, theirs)

        assert (await b.get(f"{API}/executions/{mine}")).status_code == 404
        assert (await b.post(f"{API}/executions/{mine}/cancel")).status_code == 404
        assert (await b.get(image_url)).status_code == 404
        assert (await a.get(image_url)).status_code == 200
        listed = (await b.get(f"{API}/executions")).json()["data"]
        assert [e["id"] for e in listed["executions"]] == [theirs] and listed["total"] == 1
        # An admin sees everyone's.
        assert (await adm.get(f"{API}/executions")).json()["data"]["total"] == 2
        assert (await adm.get(image_url)).status_code == 200
        # Only the owner or an admin changes a shared workflow.
        assert (await b.put(f"{API}/workflows/{workflow_id}", json=BLOG_POST_IMAGE)).status_code == 403
        assert (await b.delete(f"{API}/workflows/{workflow_id}")).status_code == 403
        assert (await b.get(f"{API}/backends")).status_code == 403
        assert (await adm.get(f"{API}/backends")).status_code == 200
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            ws_url(gateway, f"/executions/{mine}/events"),
            additional_headers={"Authorization": f"Bearer {bob}"},
        ):
            pass
    assert refused.value.response.status_code == 404


async def test_rate_limits_under_concurrent_clients(tmp_path: Any, database_url: str | None) -> None:
    """Two tokens hammer the gateway at once: each gets exactly its own allowance, then 429 with
    Retry-After; the headers count down on every answer."""
    gw = start_gateway(data_dir=tmp_path / "gw", rate_limit="20/minute", database_url=database_url)
    try:
        tokens = [gw.create_token("one"), gw.create_token("two")]

        async def hammer(token: str) -> list[httpx.Response]:
            async with client(gw, token) as c:
                return list(await asyncio.gather(*(c.get(f"{API}/workflows") for _ in range(30))))

        results = await asyncio.gather(*(hammer(t) for t in tokens))
        for answers in results:
            statuses = [r.status_code for r in answers]
            assert statuses.count(200) == 20 and statuses.count(429) == 10
            for r in answers:
                assert r.headers["X-RateLimit-Limit"] == "20"
                assert int(r.headers["X-RateLimit-Reset"]) > 0
            limited = next(r for r in answers if r.status_code == 429)
            assert int(limited.headers["Retry-After"]) >= 1
            assert limited.json()["errors"][0]["code"] == "rate_limited"
            remaining = sorted(
                int(r.headers["X-RateLimit-Remaining"]) for r in answers if r.status_code == 200
            )
            assert remaining == list(range(20))
    finally:
        gw.stop()


async def test_burst_caps_requests_within_one_second(tmp_path: Any, database_url: str | None) -> None:
    gw = start_gateway(data_dir=tmp_path / "gw", rate_limit="1000/minute", burst=5, database_url=database_url)

    async def second_starts() -> None:  # the limiter counts per second of the clock: start at the top of one
        while time.time() % 1 > 0.05:
            await asyncio.sleep(0.005)  # polling the clock, not a fixed wait

    try:
        async with client(gw, gw.admin_token) as c:
            for _ in range(3):
                # Eight requests within one second: 5 pass, 3 are refused. On a busy machine they can spill
                # into the next second, where the shared limiter's sliding count (this second plus a share of
                # the last) rightly lets another through: such a try says nothing, and is made again once
                # both seconds have passed.
                await second_starts()
                start = time.time()
                answers = await asyncio.gather(*(c.get(f"{API}/nodes") for _ in range(8)))
                if int(time.time()) == int(start):
                    break
                for _ in range(2):
                    await asyncio.sleep(0.1)
                    await second_starts()
            statuses = [r.status_code for r in answers]
        assert statuses.count(200) == 5 and statuses.count(429) == 3
    finally:
        gw.stop()


async def test_bodies_over_the_limit_get_413(tmp_path: Any) -> None:
    gw = start_gateway(data_dir=tmp_path / "gw", max_body=4096)
    try:
        big = dict(BLOG_POST_IMAGE, description="x" * 5000)
        async with client(gw, gw.admin_token) as c:
            resp = await c.post(f"{API}/workflows", json=big)
            assert resp.status_code == 413
            assert resp.json()["errors"][0]["code"] == "payload_too_large"

            async def chunks() -> Any:  # no Content-Length: counted as it streams
                for _ in range(10):
                    yield b" " * 1000

            resp = await c.post(
                f"{API}/workflows", content=chunks(), headers={"Content-Type": "application/json"}
            )
            assert resp.status_code == 413
            assert (await c.get(f"{API}/workflows")).json()["data"]["workflows"] == []
    finally:
        gw.stop()


async def test_the_access_log_names_the_token_never_its_secret(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="comfydesk.gateway.access")
    async with client(gateway, gateway.admin_token) as c:
        await c.get(f"{API}/workflows", params={"token": gateway.admin_token})
        await c.get(f"{API}/nodes")
    lines = [r.getMessage() for r in caplog.records if r.name == "comfydesk.gateway.access"]
    assert any('"GET /api/v1/comfyui/workflows" 200' in line for line in lines)
    assert all(gateway.admin_token not in line for line in lines)
    assert all("token=admin-1" in line for line in lines)


async def test_probes_answer_without_a_token_and_say_nothing_secret(gateway: RunningGateway) -> None:
    """/healthz and /readyz are for load balancers: no token, no rate limit, no addresses or names."""
    async with httpx.AsyncClient(base_url=gateway.url) as anon:
        health = await anon.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = await anon.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready"
        assert body["checks"] == {"database": "ok", "comfyui": "1 of 1 machines healthy", "stopping": False}
        assert "X-RateLimit-Limit" not in ready.headers
    text = ready.text + health.text
    assert "127.0.0.1" not in text and "cdk_" not in text and "sqlite" not in text and "postgres" not in text


async def test_readyz_is_503_without_a_comfyui_machine(tmp_path: Path, database_url: str | None) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    gw = start_gateway(comfyui_urls=[dead], data_dir=tmp_path / "gw", database_url=database_url)
    try:
        async with httpx.AsyncClient(base_url=gw.url) as anon:
            ready = await anon.get("/readyz")
            assert (await anon.get("/healthz")).status_code == 200
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "unavailable",
            "checks": {"database": "ok", "comfyui": "0 of 1 machines healthy", "stopping": False},
        }
    finally:
        gw.stop()
