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
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventHub", "Outgoing", "Subscription"]

_QUEUE_SIZE = 256
_DROPPABLE = frozenset({"progress", "preview"})
_REMEMBERED = 50_000  # executions whose newest change number is remembered (oldest forgotten first)


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
    """Subscribers of this instance. Messages come from the runs this instance follows (`publish`) and, on
    PostgreSQL, from rows other instances changed (`publish(..., remote=True)`): each execution row
    carries a change number (`seq`), and a remote message whose change was already published here is
    dropped, so a subscriber never gets the same change twice from the two paths."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._seen: OrderedDict[int, tuple[int, str]] = OrderedDict()

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

    def seen(self, execution_id: int) -> tuple[int, str]:
        """The newest change number and status published (or about to be) for an execution here."""
        return self._seen.get(execution_id, (0, ""))

    def note(self, execution_id: int, seq: int, status: str) -> None:
        """Change `seq` of the execution is (being) published by this instance."""
        old = self._seen.get(execution_id)
        if old is not None and old[0] >= seq:
            return
        self._seen[execution_id] = (seq, status)
        self._seen.move_to_end(execution_id)
        while len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)

    def interested(self, execution_id: int) -> bool:
        """Could any subscriber here want messages of this execution?"""
        return any(sub.execution_id in (None, execution_id) for sub in self._subs)

    def watched_executions(self) -> set[int]:
        """Executions that have a subscriber of their own here."""
        return {sub.execution_id for sub in self._subs if sub.execution_id is not None}

    def publish(
        self,
        execution_id: int,
        token_id: int | None,
        message: dict[str, Any],
        *,
        seq: int | None = None,
        remote: bool = False,
    ) -> None:
        if seq is not None:
            if remote and seq <= self.seen(execution_id)[0]:
                return
            status = str(message.get("execution", {}).get("status", ""))
            self.note(execution_id, seq, status)
        subs = [sub for sub in self._subs if sub.wants(execution_id, token_id)]
        if not subs:
            return
        outgoing = Outgoing(str(message.get("type", "")), json.dumps(message, separators=(",", ":")))
        for sub in subs:
            sub.offer(outgoing)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
