"""Fault injection for the fake ComfyUI: thread-safe switches the HTTP routes and the WebSocket honour."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["Faults", "normalise_path"]


def normalise_path(path: str) -> str:
    """`/api/prompt` and `/prompt` are the same route for faults (ComfyUI mirrors routes under /api)."""
    path = "/" + path.lstrip("/")
    if path.startswith("/api/"):
        path = path[4:]
    return path.rstrip("/") or "/"


@dataclass
class _Counted:
    value: float | int
    times: int


class Faults:
    """Faults to inject, mutable while the server runs; each method is safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drop_after: int | None = None
        self._refuse = 0
        self._delays: dict[str, float] = {}
        self._failures: dict[str, _Counted] = {}
        self._malformed: dict[str, int] = {}

    def drop_websocket_after(self, n_messages: int) -> None:
        """The next connected socket is closed abruptly (no close frame) after sending `n_messages` more."""
        with self._lock:
            self._drop_after = max(0, n_messages)

    def refuse_websockets(self, count: int) -> None:
        """The next `count` WebSocket handshakes are rejected (HTTP 403)."""
        with self._lock:
            self._refuse = max(0, count)

    def delay_route(self, path: str, seconds: float) -> None:
        """Every request to `path` waits `seconds` before it is handled (until `clear`)."""
        with self._lock:
            self._delays[normalise_path(path)] = seconds

    def fail_route(self, path: str, status: int = 500, times: int = 1) -> None:
        """The next `times` requests to `path` answer `status` with a text body."""
        with self._lock:
            self._failures[normalise_path(path)] = _Counted(status, times)

    def malformed_json(self, path: str, times: int = 1) -> None:
        """The next `times` requests to `path` answer 200 with a truncated JSON body."""
        with self._lock:
            self._malformed[normalise_path(path)] = times

    def clear(self) -> None:
        with self._lock:
            self._drop_after = None
            self._refuse = 0
            self._delays.clear()
            self._failures.clear()
            self._malformed.clear()

    # -- used by the server -------------------------------------------------------------------------------

    def take_websocket_drop(self) -> int | None:
        """Claim the pending drop for a newly connected socket (None when there is none)."""
        with self._lock:
            n, self._drop_after = self._drop_after, None
            return n

    def take_websocket_refusal(self) -> bool:
        with self._lock:
            if self._refuse > 0:
                self._refuse -= 1
                return True
            return False

    def delay_for(self, path: str) -> float:
        with self._lock:
            return self._delays.get(normalise_path(path), 0.0)

    def take_failure(self, path: str) -> int | None:
        key = normalise_path(path)
        with self._lock:
            fault = self._failures.get(key)
            if fault is None:
                return None
            fault.times -= 1
            if fault.times <= 0:
                del self._failures[key]
            return int(fault.value)

    def take_malformed(self, path: str) -> bool:
        key = normalise_path(path)
        with self._lock:
            left = self._malformed.get(key, 0)
            if left <= 0:
                return False
            if left == 1:
                del self._malformed[key]
            else:
                self._malformed[key] = left - 1
            return True
