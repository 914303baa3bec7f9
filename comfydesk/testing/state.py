"""The fake server's mutable state: the prompt queue, the history and a few counters, behind one lock."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeState", "QueueItem", "now_ms"]

JSON = dict[str, Any]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class QueueItem:
    """A queued prompt, shown by ComfyUI as `[number, prompt_id, prompt, extra_data, outputs_to_execute]`."""

    number: int | float
    prompt_id: str
    prompt: JSON
    extra_data: JSON
    outputs: list[str]

    def as_list(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]

    @property
    def client_id(self) -> str | None:
        value = self.extra_data.get("client_id")
        return value if isinstance(value, str) else None


@dataclass
class FakeState:
    """Queue, history and counters. Tests read it; only the server mutates it (always under `lock`)."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    number: int = 0
    pending: list[QueueItem] = field(default_factory=list)
    running: QueueItem | None = None
    history: dict[str, JSON] = field(default_factory=dict)
    #: Bumped by a restart; work started under an older generation is silently dropped.
    generation: int = 0
    prompts_posted: int = 0
    prompts_executed: int = 0
    websocket_connections: int = 0
    uploads: int = 0
    #: Files served by `/view` (whole files, not `preview=` re-encodings): what a client downloaded.
    views: int = 0

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)
        self.interrupt = threading.Event()

    def queue_remaining(self) -> int:
        with self.lock:
            return len(self.pending) + (1 if self.running is not None else 0)

    def put(self, item: QueueItem) -> None:
        with self.lock:
            index = len(self.pending)
            while index > 0 and self.pending[index - 1].number > item.number:
                index -= 1
            self.pending.insert(index, item)
            self.changed.notify_all()

    def take_next(self, timeout: float) -> QueueItem | None:
        """Move the first pending item to running (waits up to `timeout` for one)."""
        with self.changed:
            if not self.pending:
                self.changed.wait(timeout)
            if not self.pending or self.running is not None:
                return None
            self.running = self.pending.pop(0)
            return self.running

    def delete_pending(self, prompt_ids: list[str]) -> int:
        with self.lock:
            before = len(self.pending)
            self.pending = [i for i in self.pending if i.prompt_id not in prompt_ids]
            return before - len(self.pending)

    def clear_pending(self) -> None:
        with self.lock:
            self.pending = []

    def snapshot_queue(self) -> JSON:
        with self.lock:
            running = [self.running.as_list()] if self.running is not None else []
            return {"queue_running": running, "queue_pending": [i.as_list() for i in self.pending]}

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued or running (for synchronous tests)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.pending or self.running is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
            return True
