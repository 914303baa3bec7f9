"""A TCP proxy on real sockets that can cut a WebSocket after its k-th message, for servers that have no
fault switch of their own (the gateway's `/events` socket).

`with ws_cut_proxy(port) as proxy:` serves at `proxy.url` and forwards every connection to
127.0.0.1:`port`. Plain HTTP passes through untouched. When the server answers a WebSocket handshake (101),
the proxy reads the server's frames and counts its messages (text or binary frames that end a message);
`proxy.cut_next_after(k)` makes the next WebSocket die right after its k-th message: both TCP connections
are aborted, no close frame, as when a network drops. `proxy.hang_next_request(prefix)` makes the next
HTTP request to a path starting with `prefix` go unanswered: it is not forwarded, and the client waits
until its own timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

_DATA_OPCODES = (0x0, 0x1, 0x2)  # continuation, text, binary: a message ends at a data frame with FIN


class WsCutProxy:
    """State shared with the proxy's loop thread; methods are safe to call from any thread."""

    def __init__(self) -> None:
        self.url = ""
        self._lock = threading.Lock()
        self._pending: int | None = None
        self.cuts = 0
        self.websockets = 0
        #: Messages each WebSocket carried from the server, in the order the sockets were opened.
        self.messages: list[int] = []
        self._hangs: list[bytes] = []
        self.hung = 0

    def hang_next_request(self, path_prefix: str) -> None:
        """The next HTTP request whose path starts with `path_prefix` is swallowed: never answered."""
        with self._lock:
            self._hangs.append(path_prefix.encode())

    def _claim_hang(self, data: bytes) -> bool:
        parts = data.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return False
        with self._lock:
            for prefix in self._hangs:
                if parts[1].startswith(prefix):
                    self._hangs.remove(prefix)
                    self.hung += 1
                    return True
        return False

    def cut_next_after(self, k: int | None) -> None:
        """The next WebSocket through the proxy is dropped after the server has sent it `k` messages
        (None: no cut is pending any more)."""
        with self._lock:
            self._pending = None if k is None else max(0, k)

    def _claim(self) -> tuple[int, int | None]:
        with self._lock:
            self.websockets += 1
            self.messages.append(0)
            n, self._pending = self._pending, None
            return len(self.messages) - 1, n

    def _count(self, index: int) -> None:
        with self._lock:
            self.messages[index] += 1

    def _count_cut(self) -> None:
        with self._lock:
            self.cuts += 1


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


async def _client_to_server(
    state: WsCutProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            if state._claim_hang(data):
                while await reader.read(65536):  # swallowed until the client gives up and hangs up
                    pass
                break
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


async def _frame(reader: asyncio.StreamReader) -> tuple[bytes, int, bool]:
    """One WebSocket frame as received (header and payload), its opcode and FIN bit."""
    head = await reader.readexactly(2)
    fin, opcode, length = bool(head[0] & 0x80), head[0] & 0x0F, head[1] & 0x7F
    extra = b""
    if length == 126:
        extra = await reader.readexactly(2)
        length = int.from_bytes(extra, "big")
    elif length == 127:
        extra = await reader.readexactly(8)
        length = int.from_bytes(extra, "big")
    mask = await reader.readexactly(4) if head[1] & 0x80 else b""
    payload = await reader.readexactly(length)
    return head + extra + mask + payload, opcode, fin


async def _server_to_client(
    state: WsCutProxy,
    upstream: asyncio.StreamReader,
    client: asyncio.StreamWriter,
    up_writer: asyncio.StreamWriter,
) -> None:
    try:
        answer = await upstream.readuntil(b"\r\n\r\n")
        client.write(answer)
        await client.drain()
        if b" 101 " not in answer.split(b"\r\n", 1)[0]:
            await _pipe(upstream, client)
            return
        index, cut_after = state._claim()
        if cut_after is not None and cut_after <= 0:
            raise _Cut
        sent = 0
        while True:
            frame, opcode, fin = await _frame(upstream)
            client.write(frame)
            await client.drain()
            if opcode in _DATA_OPCODES and fin:
                sent += 1
                state._count(index)
                if cut_after is not None and sent >= cut_after:
                    raise _Cut
    except _Cut:
        state._count_cut()
        client.transport.abort()
        up_writer.transport.abort()
    except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        with contextlib.suppress(Exception):
            client.close()


class _Cut(Exception):
    pass


@contextlib.contextmanager
def ws_cut_proxy(port: int) -> Iterator[WsCutProxy]:
    state = WsCutProxy()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, object] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.transport.abort()
            return
        tasks = [
            asyncio.create_task(_client_to_server(state, reader, up_writer)),
            asyncio.create_task(_server_to_client(state, up_reader, writer, up_writer)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        box["stop"] = stop = asyncio.Event()
        started.set()
        async with server:
            await stop.wait()
            server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10), "the proxy did not start"
    try:
        yield state
    finally:
        stop = box["stop"]
        assert isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        with contextlib.suppress(Exception):
            loop.close()
