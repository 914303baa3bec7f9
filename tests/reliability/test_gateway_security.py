"""Gateway security beyond `tests/integration/test_gateway_auth.py` (which walks the route table for a token
on every route and WebSocket, checks isolation of executions and images, rate limits per token under
concurrency, body limits and the access log): tokens at rest, another token's ids on every route of the route
table, path traversal in the image route, CORS, anonymous floods, WebSocket frame size and the token in a
WebSocket query. A real gateway on 127.0.0.1 with its demo engine, on SQLite."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

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


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    running = start_gateway(data_dir=tmp_path / "gw")
    try:
        yield running
    finally:
        running.stop()


def _flat(routes: list[Any]) -> list[Any]:
    out: list[Any] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out += _flat(list(inner.routes)) if inner is not None else [route]
    return out


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_tokens_are_stored_hashed_and_nowhere_in_clear(gateway: RunningGateway, tmp_path: Path) -> None:
    secret = gateway.create_token("alice")
    db = tmp_path / "gw" / "gateway.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, token_hash FROM tokens").fetchall()
    hashes = dict(rows)
    assert hashes["alice"] == hashlib.sha256(secret.encode()).hexdigest()
    store = gateway.app.state.gateway.store.sync
    assert store.token_for_secret(secret) is not None
    assert store.token_for_secret(hashes["alice"]) is None  # what the database holds is no credential
    assert store.token_for_secret(secret[:-1]) is None and store.token_for_secret(secret + "x") is None
    for path in _all_files(tmp_path / "gw"):  # the database, its WAL, images, anything written
        data = path.read_bytes()
        for token in (secret, gateway.admin_token):
            assert token.encode() not in data, path


async def test_no_token_reaches_another_tokens_execution_on_any_route(gateway: RunningGateway) -> None:
    """Walk the route table: every HTTP route and WebSocket that names an execution or an image answers
    another (non-admin) token 404 for it, exactly as for an id that does not exist."""
    alice, bob = gateway.create_token("alice"), gateway.create_token("bob")
    async with client(gateway, alice) as a:
        workflow_id = await create_workflow(a)
        mine = await execute(a, workflow_id)
        done = await run_to_end(gateway, alice, mine)
    image = done["outputs"]["images"][0]["url"].rsplit("/", 1)[1]
    values = {"execution_id": str(mine), "file_name": image, "workflow_id": str(workflow_id)}
    http: list[tuple[str, str]] = []
    sockets: list[str] = []
    for route in _flat(list(gateway.app.routes)):
        path = getattr(route, "path", "")
        if "{execution_id}" not in path and "{file_name}" not in path:
            continue
        concrete = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
        if isinstance(route, APIRoute):
            http += [(m, concrete) for m in sorted(route.methods or ()) if m != "HEAD"]
        elif isinstance(route, APIWebSocketRoute):
            sockets.append(concrete)
    assert len(http) >= 3 and sockets  # get, cancel, the image; the execution's events
    async with client(gateway, bob) as b, client(gateway, alice) as a:
        for method, path in http:
            theirs = await b.request(method, path)
            assert theirs.status_code == 404, (method, path, theirs.status_code)
            assert str(mine) in theirs.json()["errors"][0]["message"]
            assert alice not in theirs.text
            assert (await a.request(method, path)).status_code in (200, 409), (method, path)
    for path in sockets:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                ws_url(gateway, path[len(API) :]), additional_headers={"Authorization": f"Bearer {bob}"}
            ):
                pass
        assert refused.value.response.status_code == 404


TRAVERSALS = [
    "../gateway.db",
    "..%2fgateway.db",
    "..%2F..%2Fgateway.db",
    "%2e%2e%2fgateway.db",
    "..%5cgateway.db",
    "%2fetc%2fpasswd",
    "1.png%00.png",
    "1.png%2f..%2f..%2fgateway.db",
    "..",
    ".",
    "%2e%2e",
    "\u0661.png",  # an Arabic-Indic digit: `\d` matches it, the stored name does not
    "01.png",
    "1.PNG",
    "1.png.png",
    ".incoming-x.tmp",
    "1.svg",
    "x" * 5000 + ".png",
]


async def test_the_image_route_serves_no_file_but_its_own(gateway: RunningGateway, tmp_path: Path) -> None:
    async with client(gateway, gateway.admin_token) as c:
        done = await run_to_end(gateway, gateway.admin_token, await execute(c, await create_workflow(c)))
        url = done["outputs"]["images"][0]["url"]
        assert (await c.get(url)).status_code == 200
        images = tmp_path / "gw" / "images"
        (images / ".incoming-x.tmp").write_bytes(b"half a file")  # an interrupted write: never served
        (images / "1.svg").write_bytes(b"<svg/>")
        db = (tmp_path / "gw" / "gateway.db").read_bytes()[:64]
        base = "/api/v1/images/generated/"
        for name in TRAVERSALS:
            resp = await c.get(base + name)
            # 404 from the route; an escape that leaves the route is 404 "no such route" (never the file)
            assert resp.status_code in (404, 405), (name, resp.status_code)
            assert resp.headers["content-type"].startswith("application/json"), name
            assert db not in resp.content and b"root:" not in resp.content and b"<svg" not in resp.content
        # The raw path, not normalised by the client: a dot-dot segment never reaches the file system.
        async with httpx.AsyncClient() as raw:
            for name in ("../../gateway.db", "..%2F..%2Fgateway.db", "../../../../../etc/passwd"):
                request = raw.build_request(
                    "GET",
                    gateway.url + base,
                    headers={"Authorization": f"Bearer {gateway.admin_token}"},
                )
                request.url = request.url.copy_with(raw_path=(base + name).encode())
                resp = await raw.send(request)
                assert resp.status_code == 404, (name, resp.status_code)
                assert db not in resp.content and b"root:" not in resp.content


async def test_cors_is_closed_by_default(gateway: RunningGateway) -> None:
    """No CORS middleware: a browser page of another origin can neither preflight nor read an answer."""
    evil = {"Origin": "https://evil.example"}
    async with client(gateway, gateway.admin_token) as c:
        preflight = await c.options(
            f"{API}/workflows",
            headers={**evil, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x"},
        )
        simple = await c.get(f"{API}/workflows", headers=evil)
        assert simple.status_code == 200
        for resp in (preflight, simple):
            assert not [h for h in resp.headers if h.lower().startswith("access-control-")], resp.headers
        assert preflight.status_code in (401, 404, 405)


async def test_anonymous_floods_are_rate_limited_by_address(tmp_path: Path) -> None:
    """Guessing tokens concurrently: every wrong guess counts against the address; after the allowance
    the answer is 429, also for WebSocket handshakes, and a valid token (its own allowance) still works."""
    gw = start_gateway(data_dir=tmp_path / "gw", rate_limit="20/minute")
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as anon:
            answers = await asyncio.gather(
                *(
                    anon.get(f"{API}/workflows", headers={"Authorization": f"Bearer cdk_guess{n}"})
                    for n in range(40)
                )
            )
        statuses = [r.status_code for r in answers]
        assert statuses.count(401) == 20 and statuses.count(429) == 20
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(gw, "/events") + "?token=cdk_guess"):
                pass
        assert refused.value.response.status_code == 429
        async with client(gw, gw.admin_token) as c:
            assert (await c.get(f"{API}/workflows")).status_code == 200
    finally:
        gw.stop()


async def test_a_websocket_frame_over_the_limit_closes_the_socket(gateway: RunningGateway) -> None:
    async with client(gateway, gateway.admin_token) as c:
        await create_workflow(c)
    async with connect(
        ws_url(gateway, "/events"),
        additional_headers={"Authorization": f"Bearer {gateway.admin_token}"},
        max_size=None,
    ) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            # The gateway may close the socket while the frame is still being sent (then `send` says so)
            # or once it has it all (then the next `recv` does).
            await ws.send(b"x" * (2 * 1024 * 1024))
            for _ in range(100):
                await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big
    async with client(gateway, gateway.admin_token) as c:  # and the gateway is fine
        assert (await c.get(f"{API}/workflows")).status_code == 200


async def test_a_token_in_a_websocket_query_is_not_logged(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    async with client(gateway, gateway.admin_token) as c:
        execution = await execute(c, await create_workflow(c))
    url = ws_url(gateway, f"/executions/{execution}/events") + f"?token={gateway.admin_token}"
    async with connect(url) as ws:
        async for frame in ws:
            if '"completed"' in str(frame):
                break
    # Everything the gateway's side logged (the test's own client logs its request line at DEBUG).
    client_side = ("websockets.client", "httpx", "httpcore")
    server = [r for r in caplog.records if not r.name.startswith(client_side)]
    text = "\n".join(r.getMessage() + str(r.exc_info or "") for r in server)
    assert any(r.name.startswith("comfydesk.gateway") for r in server)
    assert gateway.admin_token not in text


@pytest.mark.parametrize("depth", [200, 1_000, 100_000])
async def test_deeply_nested_bodies_are_refused_in_words_on_every_route(
    gateway: RunningGateway, depth: int
) -> None:
    """Walk the route table: every route that takes a body answers a deeply nested JSON document (as a
    whole body, and as a workflow's `nodes` or an input value) with a 4xx in the API's error envelope, never
    a 500 or a dropped connection; the gateway goes on answering."""
    async with client(gateway, gateway.admin_token) as c:
        workflow_id = await create_workflow(c)
        execution = await execute(c, workflow_id)
        await run_to_end(gateway, gateway.admin_token, execution)
        values = {"workflow_id": str(workflow_id), "execution_id": str(execution), "file_name": "1.png"}
        nested = "[" * depth + "]" * depth
        bodies = {
            "whole": nested,
            "nodes": '{"name": "deep", "nodes": ' + nested + "}",
            # A real workflow whose first input holds the nested list: it reaches the graph's validation.
            "input": json.dumps(_with_input(BLOG_POST_IMAGE, "@@DEEP@@")).replace('"@@DEEP@@"', nested),
        }
        tried = 0
        for route in _flat(list(gateway.app.routes)):
            if not isinstance(route, APIRoute) or route.body_field is None:
                continue  # routes that read no body (cancel) do not parse one either
            concrete = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path)
            for method in sorted((route.methods or set()) & {"POST", "PUT", "PATCH"}):
                for what, body in bodies.items():
                    resp = await c.request(
                        method, concrete, content=body, headers={"Content-Type": "application/json"}
                    )
                    tried += 1
                    assert 400 <= resp.status_code < 500, (method, concrete, what, resp.status_code)
                    assert resp.json()["status"] == "error", (method, concrete, what)
                    assert resp.json()["errors"][0]["message"], (method, concrete, what)
        assert tried >= 9  # create and update a workflow, execute: each with three bodies
        assert (await c.get(f"{API}/workflows")).status_code == 200


def _with_input(workflow: dict[str, Any], value: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(workflow))
    node = doc["nodes"][0]
    node["inputs"][next(iter(node["inputs"]))] = value
    return doc
