"""WebSocket side of the fake ComfyUI: connected sockets, routing by client id, preview frames, faults.

Every send goes through the event loop, from HTTP handlers and from the executor thread alike, so messages
keep one global order, as they do on the real server. Other threads append to one pending queue and wake the
loop once per batch (`call_soon_threadsafe` only when no wake-up is pending): the loop takes the whole batch
in order in one turn, instead of one wake-up (a write to the loop's self-pipe) per message.
"""

from __future__ import annotations

import asyncio
import json
import struct
import uuid
from collections import deque
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
#: Messages a socket's sender sends in a row before it lets other tasks of the loop run.
_SENDER_BURST = 64


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
        #: Calls made from other threads, run on the loop in order; `_wake_pending` is True while a
        #: `_run_pending` is scheduled and has not started taking calls yet.
        self._pending: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._wake_pending = False

    # -- thread-safe API --------------------------------------------------------------------------------

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if asyncio._get_running_loop() is loop:  # None on a thread without a running loop
            self._run_pending()  # calls made earlier from other threads go first
            fn(*args)
            return
        self._pending.append((fn, args))  # deque.append is atomic: safe from any thread
        if not self._wake_pending:
            self._wake_pending = True
            try:
                loop.call_soon_threadsafe(self._run_pending)
            except RuntimeError:  # the loop closed meanwhile: nothing will be sent any more
                self._wake_pending = False

    def _run_pending(self) -> None:
        """Loop thread: run every call queued by other threads, oldest first."""
        # Cleared before taking: a call appended from now on either is taken below or schedules a new run.
        self._wake_pending = False
        pending = self._pending
        while pending:
            fn, args = pending.popleft()
            try:
                fn(*args)
            except Exception as exc:  # pragma: no cover - as the loop treats a failing callback
                assert self.loop is not None
                self.loop.call_exception_handler({"message": "fake hub call failed", "exception": exc})

    def send(self, event: str, data: Any, sid: str | None = None) -> None:
        """Send `{"type": event, "data": data}` to socket `sid`, or to every socket when `sid` is None."""
        text = json.dumps({"type": event, "data": data})
        self._call(self._dispatch, text, sid)

    def send_text(self, text: str, sid: str | None = None) -> None:
        """Send a message serialized by the caller, exactly as `send` would have serialized it."""
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
        burst = 0
        while True:
            if conn.drop_after is not None and conn.drop_after <= 0:
                return
            if burst >= _SENDER_BURST:
                # A backlog is sent without suspending (get and send return at once): let HTTP handlers
                # and other sockets in now and then, or a flood starves them until the run is over.
                burst = 0
                await asyncio.sleep(0)
            message = await conn.queue.get()
            burst += 1
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
