"""WebSocket side of the fake ComfyUI: connected sockets, routing by client id, preview frames, faults.

Every send goes through the event loop with `call_soon_threadsafe`, from HTTP handlers and from the executor
thread alike, so messages keep one global order, as they do on the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from comfydesk.testing.faults import Faults

__all__ = ["PREVIEW_IMAGE", "PREVIEW_IMAGE_WITH_METADATA", "Hub"]

JSON = dict[str, Any]
PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
_ABORT = object()


@dataclass(eq=False)
class _Conn:
    sid: str
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    drop_after: int | None = None
    preview_metadata: bool = False
    got_first_text: bool = False


class Hub:
    """Routes messages to sockets; thread-safe entry points are `send`, `send_preview`, `abort_all`."""

    def __init__(self, faults: Faults, features: JSON, queue_remaining: Callable[[], int]) -> None:
        self.faults = faults
        self.features = features
        self.queue_remaining = queue_remaining
        self.loop: asyncio.AbstractEventLoop | None = None
        self._conns: dict[str, _Conn] = {}
        #: (client_id, node_id) of the node executing now, re-announced to a client that reconnects.
        self.current: tuple[str | None, str | None] = (None, None)
        #: WebSocket handshakes accepted so far (tests check how often a client connected).
        self.connections = 0
        #: Messages sent on every socket so far (frames, text or binary), and that count when the last
        #: socket connected.
        self.sent = 0
        self.sent_at_connect = 0

    # -- thread-safe API --------------------------------------------------------------------------------

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            if asyncio.get_running_loop() is loop:
                fn(*args)
                return
        except RuntimeError:
            pass
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn, *args)

    def send(self, event: str, data: Any, sid: str | None = None) -> None:
        """Send `{"type": event, "data": data}` to socket `sid`, or to every socket when `sid` is None."""
        text = json.dumps({"type": event, "data": data})
        self._call(self._dispatch, text, sid)

    def send_raw(self, frame: str | bytes, sid: str | None = None) -> None:
        """Fault injection: send `frame` as it is (any text, even invalid JSON, or bytes) to `sid` or all."""
        self._call(self._dispatch, frame, sid)

    def broadcast_status(self) -> None:
        self.send("status", {"status": {"exec_info": {"queue_remaining": self.queue_remaining()}}})

    def send_preview(self, sid: str, progress: JSON, jpeg: bytes, metadata: JSON) -> None:
        """A step's `progress` message plus its preview frame, in the order the real server uses."""
        self._call(self._dispatch_preview, sid, progress, jpeg, metadata)

    def abort_all(self) -> None:
        """Drop every socket without a close frame (what a server restart looks like to clients)."""
        self._call(self._abort_all)

    def drop_connected_after(self, n_messages: int) -> None:
        """Fault injection: every socket connected now is dropped (no close frame) once it has sent
        `n_messages` more messages; sockets that connect later are not affected."""
        self._call(self._drop_connected_after, max(1, n_messages))

    # -- loop thread ------------------------------------------------------------------------------------

    def _dispatch(self, message: Any, sid: str | None) -> None:
        if sid is None:
            for conn in list(self._conns.values()):
                conn.queue.put_nowait(message)
        else:
            target = self._conns.get(sid)
            if target is not None:
                target.queue.put_nowait(message)

    def _dispatch_preview(self, sid: str, progress: JSON, jpeg: bytes, metadata: JSON) -> None:
        conn = self._conns.get(sid)
        if conn is None:
            return
        text = json.dumps({"type": "progress", "data": progress})
        if conn.preview_metadata:
            meta = json.dumps(metadata).encode()
            frame = struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(meta)) + meta + jpeg
            conn.queue.put_nowait(frame)
            conn.queue.put_nowait(text)
        else:
            conn.queue.put_nowait(text)
            conn.queue.put_nowait(struct.pack(">II", PREVIEW_IMAGE, 1) + jpeg)

    def _drop_connected_after(self, n_messages: int) -> None:
        for conn in self._conns.values():
            conn.drop_after = n_messages

    def _abort_all(self) -> None:
        for conn in list(self._conns.values()):
            conn.queue.put_nowait(_ABORT)

    def sent_since_connect(self) -> int:
        """Messages sent since the last socket connected (all of them on it, when it is the only one)."""
        return self.sent - self.sent_at_connect

    @property
    def connected(self) -> list[str]:
        return list(self._conns)

    async def endpoint(self, websocket: WebSocket) -> None:
        """`/ws?clientId=...`: ComfyUI's socket protocol."""
        self.loop = asyncio.get_running_loop()
        if self.faults.take_websocket_refusal():
            await websocket.close(code=1008)  # before accept: the handshake is refused with 403
            return
        self.connections += 1  # before the handshake completes: a client cannot see it before the count
        self.sent_at_connect = self.sent
        await websocket.accept()
        sid = websocket.query_params.get("clientId") or uuid.uuid4().hex
        conn = _Conn(sid=sid, drop_after=self.faults.take_websocket_drop())
        self._conns[sid] = conn
        status = {"status": {"exec_info": {"queue_remaining": self.queue_remaining()}}, "sid": sid}
        conn.queue.put_nowait(json.dumps({"type": "status", "data": status}))
        client, node = self.current
        if client == sid and node is not None:
            conn.queue.put_nowait(json.dumps({"type": "executing", "data": {"node": node}}))
        sender = asyncio.create_task(self._sender(websocket, conn))
        receiver = asyncio.create_task(self._receiver(websocket, conn))
        try:
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, receiver):
                task.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)
            if self._conns.get(sid) is conn:
                del self._conns[sid]
        # Returning without a close frame makes uvicorn drop the TCP connection: an abrupt close (1006).

    async def _sender(self, websocket: WebSocket, conn: _Conn) -> None:
        while True:
            if conn.drop_after is not None and conn.drop_after <= 0:
                return
            message = await conn.queue.get()
            if message is _ABORT:
                return
            try:
                if isinstance(message, bytes):
                    await websocket.send_bytes(message)
                else:
                    await websocket.send_text(message)
            except (WebSocketDisconnect, RuntimeError, OSError):
                return
            self.sent += 1
            if conn.drop_after is not None:
                conn.drop_after -= 1

    async def _receiver(self, websocket: WebSocket, conn: _Conn) -> None:
        while True:
            try:
                message = await websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None or conn.got_first_text:
                continue
            conn.got_first_text = True
            try:
                parsed = json.loads(text)
            except ValueError:
                continue
            if isinstance(parsed, dict) and parsed.get("type") == "feature_flags":
                flags = parsed.get("data") or {}
                conn.preview_metadata = bool(
                    isinstance(flags, dict) and flags.get("supports_preview_metadata")
                )
                conn.queue.put_nowait(json.dumps({"type": "feature_flags", "data": self.features}))
