"""Fault injection for the fake ComfyUI: thread-safe switches the HTTP routes and the WebSocket honour."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["HTML_ERROR_PAGE", "CannedAnswer", "Faults", "normalise_path"]


def normalise_path(path: str) -> str:
    """`/api/prompt` and `/prompt` are the same route for faults (ComfyUI mirrors routes under /api).

    A fault set on `/history/*` applies to every path under `/history/` (`/history/<prompt id>`)."""
    path = "/" + path.lstrip("/")
    if path.startswith("/api/"):
        path = path[4:]
    return path.rstrip("/") or "/"


def _key_for(path: str, keys: object) -> str:
    """The fault key matching `path`: the path itself, else the nearest `<parent>/*` pattern."""
    key = normalise_path(path)
    if key in keys:  # type: ignore[operator]
        return key
    parent = key
    while "/" in parent.rstrip("/") and parent != "/":
        parent = parent.rsplit("/", 1)[0]
        if f"{parent}/*" in keys:  # type: ignore[operator]
            return f"{parent}/*"
    return key


@dataclass
class CannedAnswer:
    """An answer a faulted route gives instead of its own: a status, a body (may be empty) and its type."""

    status: int
    body: bytes
    content_type: str


#: What a reverse proxy in front of a dead ComfyUI answers (nginx's error page, trimmed).
HTML_ERROR_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


class Faults:
    """Faults to inject, mutable while the server runs; each method is safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drops: list[int] = []  # one per socket still to connect, in order
        self._refuse = 0
        self._delays: dict[str, float] = {}
        self._failures: dict[str, tuple[CannedAnswer, int]] = {}
        self._malformed: dict[str, int] = {}
        self._requests: dict[str, int] = {}  # path -> HTTP requests received (not cleared by `clear`)

    def drop_websocket_after(self, n_messages: int) -> None:
        """The next connected socket is closed abruptly (no close frame) after sending `n_messages` more."""
        with self._lock:
            self._drops = [max(0, n_messages)]

    def drop_websockets_after(self, counts: list[int]) -> None:
        """The next `len(counts)` sockets to connect are each closed abruptly (no close frame), the i-th
        after sending `counts[i]` messages: a connection that keeps dropping as soon as it is back."""
        with self._lock:
            self._drops = [max(0, n) for n in counts]

    def refuse_websockets(self, count: int) -> None:
        """The next `count` WebSocket handshakes are rejected (HTTP 403)."""
        with self._lock:
            self._refuse = max(0, count)

    def delay_route(self, path: str, seconds: float) -> None:
        """Every request to `path` waits `seconds` before it is handled (until `clear`)."""
        with self._lock:
            self._delays[normalise_path(path)] = seconds

    def fail_route(
        self,
        path: str,
        status: int = 500,
        times: int = 1,
        *,
        body: bytes = b"injected fault",
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        """The next `times` requests to `path` answer `status` with `body` (empty: no body at all)."""
        with self._lock:
            self._failures[normalise_path(path)] = (CannedAnswer(status, body, content_type), times)

    def answer_html(self, path: str, status: int = 200, times: int = 1) -> None:
        """The next `times` requests to `path` answer an HTML page (a proxy's or a login page's) with
        `status`, instead of ComfyUI's JSON."""
        self.fail_route(path, status, times, body=HTML_ERROR_PAGE, content_type="text/html")

    def malformed_json(self, path: str, times: int = 1) -> None:
        """The next `times` requests to `path` answer 200 with a truncated JSON body."""
        with self._lock:
            self._malformed[normalise_path(path)] = times

    def clear(self) -> None:
        with self._lock:
            self._drops = []
            self._refuse = 0
            self._delays.clear()
            self._failures.clear()
            self._malformed.clear()

    def requests_to(self, path: str) -> int:
        """How many HTTP requests for exactly `path` the server has received so far (tests: "asked once")."""
        with self._lock:
            return self._requests.get(path, 0)

    # -- used by the server -------------------------------------------------------------------------------

    def record_request(self, path: str) -> None:
        with self._lock:
            self._requests[path] = self._requests.get(path, 0) + 1

    def take_websocket_drop(self) -> int | None:
        """Claim the pending drop for a newly connected socket (None when there is none)."""
        with self._lock:
            return self._drops.pop(0) if self._drops else None

    def take_websocket_refusal(self) -> bool:
        with self._lock:
            if self._refuse > 0:
                self._refuse -= 1
                return True
            return False

    def delay_for(self, path: str) -> float:
        with self._lock:
            return self._delays.get(_key_for(path, self._delays), 0.0)

    def take_failure(self, path: str) -> CannedAnswer | None:
        with self._lock:
            key = _key_for(path, self._failures)
            fault = self._failures.get(key)
            if fault is None:
                return None
            answer, times = fault
            if times <= 1:
                del self._failures[key]
            else:
                self._failures[key] = (answer, times - 1)
            return answer

    def take_malformed(self, path: str) -> bool:
        with self._lock:
            key = _key_for(path, self._malformed)
            left = self._malformed.get(key, 0)
            if left <= 0:
                return False
            if left == 1:
                del self._malformed[key]
            else:
                self._malformed[key] = left - 1
            return True
