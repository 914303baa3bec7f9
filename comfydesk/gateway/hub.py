"""Progress fan-out: every WebSocket subscriber gets its own bounded queue of messages.

A subscriber listens to one execution or to all executions of a token (admins: of everyone). A slow
subscriber loses progress and preview messages first; status changes and the terminal message are never
dropped, so every client learns how its run ended. A message is encoded once, however many sockets get it
(a preview is tens of kilobytes; 500 subscribers must not mean 500 encodings).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventHub", "Outgoing", "Subscription"]

_QUEUE_SIZE = 256
_DROPPABLE = frozenset({"progress", "preview"})


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message, encoded once: `type` decides what may be dropped, `text` is what goes on the wire."""

    type: str
    text: str


@dataclass(eq=False)
class Subscription:
    execution_id: int | None  # None: all executions of the token (or everyone's, for an admin)
    token_id: int | None
    admin: bool
    queue: asyncio.Queue[Outgoing] = field(default_factory=lambda: asyncio.Queue(_QUEUE_SIZE))

    def wants(self, execution_id: int, token_id: int | None) -> bool:
        if self.execution_id is not None:
            return self.execution_id == execution_id
        return self.admin or token_id == self.token_id

    def offer(self, message: Outgoing) -> None:
        if self.queue.full():
            if message.type in _DROPPABLE:
                return
            self._make_room()
        self.queue.put_nowait(message)

    def _make_room(self) -> None:
        """Drop the oldest droppable message (or, failing that, the oldest) to let an important one in."""
        kept: list[Outgoing] = []
        dropped = False
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if not dropped and item.type in _DROPPABLE:
                dropped = True
                continue
            kept.append(item)
        if not dropped and kept:
            kept.pop(0)
        for item in kept:
            self.queue.put_nowait(item)


class EventHub:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    @contextlib.contextmanager
    def subscribe(
        self, *, execution_id: int | None, token_id: int | None, admin: bool
    ) -> Iterator[Subscription]:
        sub = Subscription(execution_id, token_id, admin)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    def publish(self, execution_id: int, token_id: int | None, message: dict[str, Any]) -> None:
        subs = [sub for sub in self._subs if sub.wants(execution_id, token_id)]
        if not subs:
            return
        outgoing = Outgoing(str(message.get("type", "")), json.dumps(message, separators=(",", ":")))
        for sub in subs:
            sub.offer(outgoing)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
