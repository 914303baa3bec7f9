"""Probe findings 1, 3 and 8: a hostile or broken server over real sockets.

Endless and trickled bodies come from a tiny raw server (`rawserver.py`); bad WebSocket messages are sent
through the fake ComfyUI's `hub.send_raw` fault. Every test asserts the documented, bounded outcome.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest

from comfydesk.backends.comfyui import ComfyUIBackend
from comfydesk.backends.comfyui_http import DOCUMENT_LIMIT, MIN_RATE, ROUTE_LIMITS, BodyLimit, limit_for
from comfydesk.backends.v1_http import probe_gateway
from comfydesk.cli import main
from comfydesk.core.errors import ServerResponseError, ServerUnreachable
from comfydesk.core.events import Completed, OutputRef
from comfydesk.core.graph import ApiGraph
from comfydesk.testing import RunningFake
from tests.conftest import load_json
from tests.reliability.rawserver import SYSTEM_STATS, answer, endless, raw_server, trickle

MiB = 1024 * 1024


def test_route_limits_are_the_documented_ones() -> None:
    assert limit_for("/api/object_info") == BodyLimit(256 * MiB, 600.0)
    assert limit_for("/object_info/KSampler") == BodyLimit(256 * MiB, 600.0)
    assert limit_for("/api/history/abc?x=1") == BodyLimit(256 * MiB, 600.0)
    assert limit_for("/api/view?filename=a.png") == BodyLimit(2048 * MiB, 3600.0)
    assert limit_for("/api/queue") == DOCUMENT_LIMIT == BodyLimit(64 * MiB, 600.0)
    assert MIN_RATE == 64 * 1024


# -- 1. unbounded responses --------------------------------------------------------------------------------


def _catalog_server(object_info: Any) -> Any:
    async def handler(method: str, path: str, headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        if path.startswith("/api/system_stats"):
            await answer(writer, SYSTEM_STATS)
        elif path.startswith("/api/object_info"):
            await object_info(writer)
        elif path.startswith("/api/queue"):
            await answer(writer, b'{"queue_running": [], "queue_pending": []}')
        else:
            await answer(writer, b"not found", 404)

    return handler


def test_endless_object_info_is_cut_at_the_catalog_limit(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe's endless /object_info grew the CLI to 12.7 GB; now `check` stops at the route's limit
    (lowered here to 8 MB to keep the test light; the soak run uses the real 256 MB)."""
    monkeypatch.setitem(ROUTE_LIMITS, "/object_info", BodyLimit(8 * MiB, 600.0))
    with raw_server(_catalog_server(endless)) as url:
        t0 = time.monotonic()
        code = main(["check", "--server", url, "--kind", "comfyui"])
    err = capsys.readouterr().err
    assert code == 2
    assert "the answer to GET /api/object_info is larger than the 8.0 MB accepted" in err
    assert time.monotonic() - t0 < 30


async def test_endless_view_is_cut_at_the_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ROUTE_LIMITS, "/view", BodyLimit(4 * MiB, 3600.0))

    async def handler(method: str, path: str, headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        if path.startswith("/api/system_stats"):
            await answer(writer, SYSTEM_STATS)
        else:
            await endless(writer, b"\x00" * 65536)

    with raw_server(handler) as url:
        backend = ComfyUIBackend(url, timeout=5)
        try:
            with pytest.raises(
                ServerResponseError, match=r"GET /api/view is larger than the 4\.0 MB accepted"
            ):
                await backend.fetch_output(OutputRef("9", "images", "a.png", "", "output"))
        finally:
            await backend.close()


async def test_a_body_announced_too_large_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ROUTE_LIMITS, "/view", BodyLimit(1 * MiB, 3600.0))

    async def handler(method: str, path: str, headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        if path.startswith("/api/system_stats"):
            await answer(writer, SYSTEM_STATS)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000000000\r\nConnection: close\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(30)  # never sends the body: the client must not wait for it

    with raw_server(handler) as url:
        backend = ComfyUIBackend(url, timeout=5)
        t0 = time.monotonic()
        try:
            with pytest.raises(ServerResponseError, match=r"it announced 4768\.4 MB"):
                await backend.fetch_output(OutputRef("9", "images", "a.png", "", "output"))
        finally:
            await backend.close()
        assert time.monotonic() - t0 < 5


async def test_a_trickled_body_ends_at_the_timeout_not_later() -> None:
    """1 byte every 0.2 s never trips a per-read timeout; the total-time rule ends it at ~the timeout."""

    async def slow_object_info(writer: asyncio.StreamWriter) -> None:
        await trickle(writer, 0.2)

    with raw_server(_catalog_server(slow_object_info)) as url:
        backend = ComfyUIBackend(url, timeout=1.5)
        t0 = time.monotonic()
        try:
            with pytest.raises(ServerUnreachable, match=r"the answer to GET /api/object_info took too long"):
                await backend.node_catalog()
        finally:
            await backend.close()
        assert time.monotonic() - t0 < 6


async def test_the_gateway_probe_is_bounded_too() -> None:
    async def handler(method: str, path: str, headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        await trickle(writer, 0.2)

    with raw_server(handler) as url:
        t0 = time.monotonic()
        with pytest.raises(ServerUnreachable, match="took too long"):
            await probe_gateway(url, token=None, timeout=1.0)
        assert time.monotonic() - t0 < 6


@pytest.mark.soak
def test_check_against_a_trickling_server_ends_near_its_10_s_timeout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The probe's case exactly: `check` (10 s timeout) against a body trickled at 1 byte / 5 s."""

    async def slow_object_info(writer: asyncio.StreamWriter) -> None:
        await trickle(writer, 5.0)

    with raw_server(_catalog_server(slow_object_info)) as url:
        t0 = time.monotonic()
        code = main(["check", "--server", url, "--kind", "comfyui"])
        elapsed = time.monotonic() - t0
    assert code == 2
    assert "took too long" in capsys.readouterr().err
    assert elapsed < 20


@pytest.mark.soak
def test_endless_object_info_with_the_real_limit_keeps_memory_bounded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with raw_server(_catalog_server(endless)) as url:
        code = main(["check", "--server", url, "--kind", "comfyui"])
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert code == 2
    assert "larger than the 256.0 MB accepted" in capsys.readouterr().err
    assert grown_mb < 1024, f"grew {grown_mb:.0f} MB"


# -- 3. one bad WebSocket message --------------------------------------------------------------------------


async def test_bad_websocket_messages_are_skipped_and_the_run_completes(
    fake: RunningFake, caplog: pytest.LogCaptureFixture
) -> None:
    prompt = load_json("workflows/api/slow_steps.json")
    prompt["2"]["inputs"].update(steps=60)
    backend = ComfyUIBackend(fake.url, timeout=10)
    await backend.connect()
    events: list[Any] = []

    async def pump() -> None:
        async for event in backend.events():
            events.append(event)
            if isinstance(event, Completed):
                return

    task = asyncio.create_task(pump())
    try:
        execution = await backend.submit(ApiGraph.from_prompt(prompt))
        pid = execution.id
        hub = fake.server.hub
        hub.send_raw(json.dumps({"type": "execution_cached", "data": {"nodes": 5, "prompt_id": pid}}))
        hub.send_raw('{"type": "executed", "data": ' + "[" * 100_000 + "]" * 100_000 + "}")
        hub.send_raw('{"type": "progress", "data": {"prompt_id": "' + pid + '", "value": "x", "max": []}}')
        hub.send_raw(
            json.dumps({"type": "execution_error", "data": {"prompt_id": pid, "executed": 7}}) + "}{"
        )
        hub.send_raw(b"\x00\x00\x00\x04\xff\xff\xff\xff")  # a type-4 preview whose length lies
        hub.send_raw(json.dumps({"type": "executing", "data": {"prompt_id": pid, "node": {"a": 1}}}))
        await asyncio.wait_for(task, timeout=30)
    finally:
        task.cancel()
        await backend.close()
    terminal = [e for e in events if isinstance(e, Completed)]
    assert len(terminal) == 1 and terminal[0].execution_id == pid
    assert terminal[0].outputs, "the run's outputs were delivered"
    assert "skipped a WebSocket message" in caplog.text


# -- 8. secrets ---------------------------------------------------------------------------------------------


def _echo_server() -> Any:
    """A server that answers every route 500 with the credentials it received in the text."""

    async def handler(method: str, path: str, headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        if path.startswith("/api/system_stats"):
            await answer(writer, SYSTEM_STATS)
            return
        auth = headers.get("authorization", "")
        secret = auth.split(" ", 1)[-1]
        decoded = ""
        if auth.startswith("Basic "):
            decoded = base64.b64decode(secret).decode()
        body = f"denied: {auth} / {secret} / {decoded} / {path}".encode()
        await answer(writer, body, 500)

    return handler


@pytest.mark.parametrize(
    ("extra", "secrets"),
    [
        (["--token", "tok-S3CRET-123"], ["tok-S3CRET-123"]),
        ([], ["pa55-w0rd", base64.b64encode(b"alice:pa55-w0rd").decode()]),
    ],
    ids=["bearer", "basic"],
)
def test_secrets_echoed_by_a_server_are_never_printed(
    capsys: pytest.CaptureFixture[str], extra: list[str], secrets: list[str]
) -> None:
    with raw_server(_echo_server()) as url:
        server = url.replace("http://", "http://alice:pa55-w0rd@") if not extra else url
        code = main(["check", "--server", server, "--kind", "comfyui", *extra])
    out = capsys.readouterr()
    assert code == 2
    assert "answered HTTP 500: denied" in out.err  # the server's text is shown...
    for secret in secrets:  # ...without the secrets in it
        assert secret not in out.err and secret not in out.out


def test_a_token_in_the_server_query_is_not_shown(capsys: pytest.CaptureFixture[str]) -> None:
    async def object_info(writer: asyncio.StreamWriter) -> None:
        await answer(writer, b"{}")

    with raw_server(_catalog_server(object_info)) as url:
        code = main(["check", "--server", f"{url}/?token=Q-S3CRET-9&x=1", "--kind", "comfyui"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Q-S3CRET-9" not in out.out + out.err
    assert "token=***" in out.out
