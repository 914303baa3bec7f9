"""Closing a backend while a request is still opening its connection.

httpx's pool closes the connections it holds when its client closes, not one still being opened for a
request under way: that socket was then opened after all, owned by no one, and surfaced later as "unclosed
transport" (the template browser's thumbnails, closed on a reconnect, did this). Here the server's accept
queue is full, so the request's TCP connect waits, caught exactly there.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator

import pytest

from comfydesk.backends.comfyui import ComfyUIBackend
from comfydesk.backends.comfyui_http import InFlight
from comfydesk.backends.v1 import V1Backend
from comfydesk.core.errors import ServerUnreachable

Ask = Callable[[], Awaitable[object]]
Close = Callable[[], Awaitable[None]]


@pytest.fixture
def full_port() -> Iterator[int]:
    """A port whose listener never accepts and whose accept queue is full: a connect there waits."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in (*fillers, listener):
        sock.close()


async def _until_in_flight(in_flight: InFlight) -> None:
    async with asyncio.timeout(10):
        while in_flight.count == 0:
            await asyncio.sleep(0.01)


def _comfyui(url: str) -> tuple[Ask, Close, InFlight]:
    backend = ComfyUIBackend(url, timeout=30)
    return backend.server_info, backend.close, backend._transport.in_flight


def _gateway(url: str) -> tuple[Ask, Close, InFlight]:
    backend = V1Backend(url, token="a-token", timeout=30)
    return (lambda: backend.node_catalog(refresh=True)), backend.close, backend._transport.config.in_flight


@pytest.mark.parametrize("make", [_comfyui, _gateway], ids=["comfyui", "gateway"])
async def test_closing_ends_a_request_still_opening_its_connection(
    full_port: int, make: Callable[[str], tuple[Ask, Close, InFlight]]
) -> None:
    ask, close, in_flight = make(f"http://127.0.0.1:{full_port}")
    request = asyncio.create_task(ask())
    await _until_in_flight(in_flight)

    await asyncio.wait_for(close(), 10)

    # The caller hears a plain "closed" at once (not a connect timeout later, on a socket nobody owns).
    assert request.done()
    with pytest.raises(ServerUnreachable, match="the connection was closed"):
        await request
    assert in_flight.count == 0


async def test_a_request_after_close_is_refused_without_connecting(full_port: int) -> None:
    backend = ComfyUIBackend(f"http://127.0.0.1:{full_port}", timeout=30)
    await backend.close()
    with pytest.raises(ServerUnreachable, match="the connection was closed"):
        await backend.server_info()
    assert backend._transport.in_flight.count == 0


async def test_a_cancelled_caller_stays_cancelled(full_port: int) -> None:
    """Closing turns only the requests it ends into ServerUnreachable; a caller cancelled for its own
    reasons (the user closed a dialog) sees its cancellation, and its request ends with it."""
    backend = ComfyUIBackend(f"http://127.0.0.1:{full_port}", timeout=30)
    in_flight = backend._transport.in_flight
    request = asyncio.create_task(backend.server_info())
    await _until_in_flight(in_flight)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await _until_idle(in_flight)
    await backend.close()


async def _until_idle(in_flight: InFlight) -> None:
    async with asyncio.timeout(10):
        while in_flight.count:
            await asyncio.sleep(0.01)
