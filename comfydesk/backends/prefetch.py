"""The node definitions of a ComfyUI on this computer, asked for the moment the app starts.

The window's start (`comfydesk.gui.run`) takes a few hundred milliseconds of the UI thread before the app
state and its connection exist. Meanwhile the server can already be answering `GET /object_info`: a thread
of its own asks for it over a plain socket (no HTTP library to import first) and parses it, so that the
nodes pane can list the nodes, and the connection use them, without asking again.

Only where that is safe to do without the connection's settings: plain `http://` to a loopback address
(127.0.0.0/8, ::1, localhost), no sign-in, a ComfyUI profile (not a gateway, not a server comfydesk starts
itself). Anything unexpected in the answer (another status, a compressed or chunked body, a body of another
length, not JSON, not node definitions, too big, too slow) makes it give up quietly: the connection then
asks as it always does. It never raises.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from comfydesk.core.nodes import NodeCatalog

__all__ = ["MAX_BYTES", "ObjectInfoPrefetch", "prefetch_allowed"]

log = logging.getLogger(__name__)

MAX_BYTES = 256 * 1024 * 1024
"""An answer announcing more than this is not read (real catalogs are a few MB)."""
PREFETCH_KINDS = ("comfyui-local", "comfyui-remote")


def _loopback(host: str) -> bool:
    """localhost, ::1 or 127.x.y.z (written out: `ipaddress` costs the start more than this)."""
    host = host.lower()
    if host in ("localhost", "::1", "0:0:0:0:0:0:0:1"):
        return True
    parts = host.split(".")
    return (
        len(parts) == 4
        and parts[0] == "127"
        and all(p.isdigit() and p.isascii() and int(p) <= 255 for p in parts)
    )


def prefetch_allowed(url: str, *, kind: str = "comfyui-local", auth: str = "none") -> bool:
    """True when `url` (of a profile of `kind`, signing in with `auth`) may be asked before connecting."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and _loopback(parts.hostname or "")
        and kind in PREFETCH_KINDS
        and auth == "none"
        and port is not None
        and not parts.username
    )


class ObjectInfoPrefetch:
    """`GET <url>/object_info` on a daemon thread, started at once; `catalog()` once `done()`.

    `url`: a ComfyUI address `prefetch_allowed` accepts. `timeout`: seconds for the whole answer. `hold`: the
    answer is parsed only once `release` is called (the window's start releases it once its frame is on
    screen: parsing holds the interpreter, and the frame comes first), or after `timeout` at the latest.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, hold: bool = False) -> None:
        self.url = url if "://" in url else f"http://{url}"
        self._timeout = timeout
        self._catalog: NodeCatalog | None = None
        self._released = threading.Event()
        if not hold:
            self._released.set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="comfydesk-object-info", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Parse the answer as soon as it is there (see `hold`)."""
        self._released.set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done (at most `timeout` seconds); True when done."""
        return self._done.wait(timeout)

    def catalog(self) -> NodeCatalog | None:
        """The server's node definitions, or None (not done yet, or given up)."""
        return self._catalog if self._done.is_set() else None

    def _run(self) -> None:
        try:
            body = self._fetch()
            if body is not None:
                self._released.wait(self._timeout)
                self._catalog = _parse(body)
        except Exception as exc:  # an optimisation: whatever went wrong, the connection asks again
            log.debug("node definitions not fetched ahead of the connection: %s", exc)
        finally:
            self._done.set()

    def _fetch(self) -> bytes | None:
        parts = urlsplit(self.url)
        host, port = parts.hostname or "", parts.port or 80
        path = parts.path.rstrip("/") + "/object_info"
        deadline = time.monotonic() + self._timeout
        with socket.create_connection((host, port), timeout=self._timeout) as sock:
            host_header = f"[{host}]" if ":" in host else host
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host_header}:{port}\r\nAccept: application/json\r\n"
                "Accept-Encoding: identity\r\nUser-Agent: comfydesk\r\nConnection: close\r\n\r\n"
            )
            sock.sendall(request.encode("ascii"))
            data = bytearray()
            head_end = -1
            length = -1
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                sock.settimeout(remaining)
                chunk = sock.recv(1 << 20)
                if chunk:
                    data += chunk
                if head_end < 0:
                    head_end = data.find(b"\r\n\r\n")
                    if head_end >= 0:
                        length = _content_length(bytes(data[:head_end]))
                        if length < 0:
                            return None
                    elif len(data) > 65536 or not chunk:
                        return None  # no end of headers in sight
                if head_end >= 0 and len(data) - head_end - 4 >= length:
                    return bytes(data[head_end + 4 : head_end + 4 + length])
                if not chunk:
                    return None  # closed before the whole body came


def _content_length(head: bytes) -> int:
    """The body's length of a `200 OK` answer whose body is sent as is, else -1."""
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.") or status[1] != "200":
        return -1
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            return -1
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "identity").lower() != "identity":
        return -1
    if headers.get("content-encoding", "identity").lower() != "identity":
        return -1
    try:
        length = int(headers.get("content-length", ""))
    except ValueError:
        return -1
    return length if 0 <= length <= MAX_BYTES else -1


def _parse(body: bytes) -> NodeCatalog | None:
    from comfydesk.core.limits import CATALOG_MAX_CONTAINERS, loads_bounded
    from comfydesk.core.nodes import parse_object_info

    doc = loads_bounded(body, max_containers=CATALOG_MAX_CONTAINERS)
    if not isinstance(doc, dict) or not doc:
        return None
    catalog = parse_object_info(doc)
    return catalog if len(catalog) else None
