"""Progress over WebSocket: one execution (`/executions/{id}/events`) or all of a token's (`/events`).

A subscriber is registered before the current state is read, so nothing that happens in between is lost;
the first message is always the current state (`status`), and a run that has already ended is followed by
its terminal message at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from comfydesk.gateway.app import Gateway, bearer_of, rate_limited, unauthorized
from comfydesk.gateway.errors import error_response, not_found
from comfydesk.gateway.hub import Subscription
from comfydesk.gateway.store import TokenInfo
from comfydesk.gateway.views import execution_json

__all__ = ["ws_router"]

ws_router = APIRouter(prefix="/api/v1/comfyui")
_TERMINAL = ("completed", "failed", "cancelled")


async def _admit(websocket: WebSocket) -> tuple[Gateway, TokenInfo] | None:
    """Authenticate and rate-limit the handshake; refuse with the API's error envelope (HTTP 401/429)."""
    gw: Gateway = websocket.app.state.gateway
    secret = bearer_of(websocket.scope.get("headers", [])) or websocket.query_params.get("token")
    token = await gw.authenticate(secret)
    client = websocket.client.host if websocket.client else "-"
    decision = await gw.limiter.check(f"token:{token.id}" if token else f"addr:{client}")
    refusal = None if decision.allowed else rate_limited(decision.retry_after)
    if refusal is None and token is None:
        refusal = unauthorized()
    if refusal is None and token is not None:
        return gw, token
    assert refusal is not None
    refusal.headers.update(decision.headers())
    await _deny(websocket, refusal)
    return None


async def _deny(websocket: WebSocket, error: Any) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(error))
    else:
        await websocket.close(code=1008)


@ws_router.websocket("/executions/{execution_id}/events")
async def execution_events(websocket: WebSocket, execution_id: int) -> None:
    admitted = await _admit(websocket)
    if admitted is None:
        return
    gw, token = admitted
    with gw.hub.subscribe(execution_id=execution_id, token_id=token.id, admin=token.admin) as sub:
        row, images = await gw.store.read(gw.store.sync.execution_with_images, execution_id)
        if row is None or not (token.admin or row.get("token_id") == token.id):
            await _deny(websocket, not_found("Execution", execution_id))
            return
        await websocket.accept()
        current = execution_json(row, images)
        await websocket.send_json({"type": "status", "execution": current})
        if current["status"] in _TERMINAL:
            await websocket.send_json({"type": current["status"], "execution": current})
            await websocket.close()
            return
        await _forward(websocket, sub, stop_at_terminal=True)


@ws_router.websocket("/events")
async def all_events(websocket: WebSocket) -> None:
    admitted = await _admit(websocket)
    if admitted is None:
        return
    gw, token = admitted
    with gw.hub.subscribe(execution_id=None, token_id=token.id, admin=token.admin) as sub:
        await websocket.accept()
        rows, _total = await gw.store.read(
            gw.store.sync.list_executions,
            token_id=None if token.admin else token.id,
            status=None,
            limit=100,
        )
        for row in reversed([r for r in rows if r["status"] in ("queued", "running")]):
            await websocket.send_json({"type": "status", "execution": await _current(gw, row)})
        await _forward(websocket, sub, stop_at_terminal=False)


async def _current(gw: Gateway, row: dict[str, Any]) -> dict[str, Any]:
    images = (await gw.store.read(gw.store.sync.images_of, [row["id"]]))[row["id"]]
    return execution_json(row, images)


async def _forward(websocket: WebSocket, sub: Subscription, *, stop_at_terminal: bool) -> None:
    """Send the subscription's messages, in order, until the client leaves (or, for one execution, its run
    ends). This is the socket's own writer: a client that reads slowly holds up only its own messages."""
    reader = asyncio.create_task(_drain_client(websocket))
    reader.add_done_callback(lambda _task: sub.close())  # the client has gone: stop at once
    try:
        while (message := await sub.next()) is not None:
            await websocket.send_text(message.text)
            if stop_at_terminal and message.type in _TERMINAL:
                await websocket.close()
                return
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


async def _drain_client(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, so its close is noticed."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive_text()
