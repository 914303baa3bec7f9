"""V1Backend and the CLI's kind detection where no gateway is needed: what is refused before any request,
`--kind auto` against the fake ComfyUI (real sockets) and a closed port, and a server that answers 429
forever (a few lines of ASGI on uvicorn: the gateway cannot be told to do that)."""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from typing import Any

import pytest
import uvicorn

from comfydesk.backends.base import Throttled
from comfydesk.backends.comfyui import ComfyUIBackend
from comfydesk.backends.v1 import GATEWAY_KIND, THROTTLE_RETRIES, V1Backend, probe_gateway
from comfydesk.backends.v1_errors import RateLimited
from comfydesk.commands._common import make_backend, open_backend, resolve_kind
from comfydesk.core.errors import BackendError, ServerUnreachable
from comfydesk.core.graph import ApiGraph
from comfydesk.testing import fake_comfyui


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _args(server: str, kind: str = "auto", token: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(server=server, kind=kind, token=token)


async def test_submit_needs_a_stored_workflow() -> None:
    backend = V1Backend("http://127.0.0.1:9", token="t0ken")
    graph = ApiGraph.from_prompt({"1": {"class_type": "EmptyImage", "inputs": {}}})
    with pytest.raises(ValueError, match="runs only the workflows stored on it"):
        await backend.submit(graph)
    await backend.close()


async def test_uploads_are_refused_in_words() -> None:
    backend = V1Backend("http://127.0.0.1:9", token="t0ken")
    with pytest.raises(BackendError, match="does not accept uploads"):
        await backend.upload_image(b"png", "a.png")
    assert await backend.queue() == []
    await backend.close()


def test_an_address_with_a_password_is_refused() -> None:
    with pytest.raises(ValueError, match="takes a token"):
        V1Backend("http://me:secret@host:9000", token=None)


async def test_an_unreachable_gateway_names_the_url_not_the_token() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    backend = V1Backend(url, token="s3cret-token", timeout=2.0)
    with pytest.raises(ServerUnreachable) as info:
        await backend.connect()
    assert url in str(info.value) and "s3cret-token" not in info.value.user_text()
    await backend.close()


async def test_kind_given_explicitly_asks_nothing() -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nobody there: asking would fail
    assert await resolve_kind(_args(url, "gateway")) == "gateway"
    assert await resolve_kind(_args(url, "comfyui")) == "comfyui"
    assert isinstance(make_backend(_args(url), kind="gateway"), V1Backend)
    assert isinstance(make_backend(_args(url), kind="comfyui"), ComfyUIBackend)


async def test_auto_detects_a_comfyui() -> None:
    with fake_comfyui() as fake:
        assert await probe_gateway(fake.url, token="t0ken") is False
        backend = await open_backend(_args(fake.url, token="t0ken"))
        try:
            assert isinstance(backend, ComfyUIBackend)
        finally:
            await backend.close()


async def test_auto_on_a_closed_port_is_unreachable() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ServerUnreachable, match=r"127\.0\.0\.1"):
        await resolve_kind(_args(url))


def test_gateway_kind_name() -> None:
    assert GATEWAY_KIND == "comfydesk-gateway"


class _AlwaysBusy:
    """A real HTTP server (uvicorn, own thread) that answers every request 429 in the gateway's envelope."""

    def __init__(self) -> None:
        self.hits = 0
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(self, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.005)  # polling interval of a condition wait

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.hits += 1
        body = json.dumps(
            {
                "status": "error",
                "message": "Too many requests",
                "errors": [{"code": "rate_limited", "message": "Rate limit exceeded; retry in 0 s"}],
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"retry-after", b"0")]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


async def test_rate_limiting_that_never_ends_is_an_error_after_a_few_waits() -> None:
    busy = _AlwaysBusy()
    backend = V1Backend(busy.url, token="t0ken")
    try:
        assert await probe_gateway(busy.url, token="t0ken") is True  # a 429 envelope is a gateway's
        with pytest.raises(RateLimited, match="rate-limiting") as info:
            await backend.list_workflows()
        assert "t0ken" not in info.value.user_text()
        assert busy.hits == 1 + THROTTLE_RETRIES + 1  # the probe, then the first try and every retry
    finally:
        await backend.close()
        busy.stop()
    throttled = []
    async for event in backend.events():
        if isinstance(event, Throttled):
            throttled.append(event)
    assert throttled == [Throttled(0.0, "listing the workflows")] * THROTTLE_RETRIES


@pytest.mark.parametrize(
    "pasted",
    [
        "http://gw:9000",
        "http://gw:9000/",
        "gw:9000",
        "http://gw:9000/api/v1/comfyui",
        "http://gw:9000/api/v1/",
    ],
)
def test_the_gateway_root_is_found_in_what_people_paste(pasted: str) -> None:
    assert V1Backend(pasted, token=None).url == "http://gw:9000"
    assert V1Backend("https://host/gw/api/v1/comfyui/", token=None).url == "https://host/gw"
