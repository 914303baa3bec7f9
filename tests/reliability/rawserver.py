"""A tiny hostile HTTP server on real sockets (asyncio streams on a thread of its own), for answers the
fake ComfyUI cannot give: endless bodies, bodies trickled a byte at a time, echoed credentials.

`with raw_server(handler) as url:` serves until the block ends; `handler(method, path, headers, writer)`
writes whatever it likes and returns (the connection is closed after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator

Handler = Callable[[str, str, dict[str, str], asyncio.StreamWriter], Awaitable[None]]

SYSTEM_STATS = b'{"system": {"comfyui_version": "0.8.0", "os": "posix"}, "devices": []}'


def head(status: int = 200, *, length: int | None = None, ctype: str = "application/json") -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {ctype}", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def answer(writer: asyncio.StreamWriter, body: bytes, status: int = 200) -> None:
    writer.write(head(status, length=len(body)) + body)
    await writer.drain()


async def endless(writer: asyncio.StreamWriter, chunk: bytes = b"[" * 65536) -> None:
    """Headers, then a body that never ends (until the client goes away)."""
    writer.write(head())
    with contextlib.suppress(ConnectionError, OSError):
        while True:
            writer.write(chunk)
            await writer.drain()


async def trickle(writer: asyncio.StreamWriter, every: float) -> None:
    """Headers, then one byte every `every` seconds, for ever (the client has to give up)."""
    writer.write(head())
    with contextlib.suppress(ConnectionError, OSError):
        while True:
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(every)


@contextlib.contextmanager
def raw_server(handler: Handler) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, object] = {}

    async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                lines = request.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                await handler(method, path, headers, writer)
                break
        except (asyncio.IncompleteReadError, ConnectionError, OSError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # the server stopping: end quietly (asyncio logs a cancelled handler)
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def main() -> None:
        server = await asyncio.start_server(serve_one, "127.0.0.1", 0)
        box["port"] = server.sockets[0].getsockname()[1]
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
    assert started.wait(10), "raw server did not start"
    try:
        yield f"http://127.0.0.1:{box['port']}"
    finally:
        stop = box["stop"]
        assert isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        with contextlib.suppress(Exception):
            loop.close()
