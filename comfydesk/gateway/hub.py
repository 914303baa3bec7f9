"""Progress fan-out: every WebSocket subscriber gets its own bounded queue of messages and its own writer.

A subscriber listens to one execution or to all executions of a token (admins: of everyone). Each socket's
writer (`ws._forward`) takes its messages in order; a slow socket only fills its own queue, never holds up
the others. What a slow subscriber loses is what a newer message supersedes: once it is `_BEHIND`, a new
progress or preview replaces the oldest waiting one of the same execution, and a full queue gives up its
oldest progress or preview. Status changes and the terminal messages (`completed`, `failed`,
`cancelled`) are never dropped, so every client learns how its run ended.

A message is encoded once, however many sockets get it (a preview is tens of kilobytes; 500 subscribers
must not mean 500 encodings), and handed to many subscribers a slice at a time, paced (`FANOUT_SLICE`,
`FANOUT_PAUSE`): between slices the event loop answers HTTP requests, so a preview for 500 sockets is not
one long stall of everything else. Messages reach each subscriber in the order they were published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["EventHub", "Outgoing", "Subscription"]

_QUEUE_SIZE = 256  # messages waiting for one socket before its progress and previews are dropped
_BEHIND = 8  # messages waiting for one socket: from here a newer progress or preview supersedes an older one
_DROPPABLE = frozenset({"progress", "preview"})
_TERMINAL = frozenset({"completed", "failed", "cancelled"})
_REMEMBERED = 50_000  # executions whose newest change number is remembered (oldest forgotten first)
#: A message for many subscribers is handed to `FANOUT_SLICE` of them, then the hub waits `FANOUT_PAUSE`
#: seconds before the next slice. Each subscriber's writer sends its frame in the next turn of the event
#: loop, so a slice costs the loop well under a millisecond, and between slices it answers requests: a
#: preview for 500 sockets takes about a fifth of the loop for some 70 ms, instead of all of it at once
#: (which delays every request that arrives meanwhile, and the ones queued behind those).
FANOUT_SLICE = 16
FANOUT_PAUSE = 0.002


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message, encoded once: `type` decides what may be dropped, `text` is what goes on the wire."""

    type: str
    text: str
    execution_id: int = 0


class Subscription:
    """One socket's messages, in order, until `close()`: `offer` (the hub) puts, `next` (its writer) takes."""

    __slots__ = ("_pending", "_waiter", "admin", "closed", "dropped", "execution_id", "token_id")

    def __init__(self, execution_id: int | None, token_id: int | None, admin: bool) -> None:
        self.execution_id = execution_id  # None: all executions of the token (or everyone's, for an admin)
        self.token_id = token_id
        self.admin = admin
        self.closed = False
        self.dropped = 0  # progress and preview messages this subscriber did not get (superseded, full)
        self._pending: deque[Outgoing] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def wants(self, execution_id: int, token_id: int | None) -> bool:
        if self.execution_id is not None:
            return self.execution_id == execution_id
        return self.admin or token_id == self.token_id

    @property
    def pending(self) -> int:
        """Messages offered and not yet taken by the writer."""
        return len(self._pending)

    def offer(self, message: Outgoing) -> None:
        if self.closed:
            return
        pending = self._pending
        droppable = message.type in _DROPPABLE
        if droppable and len(pending) >= _BEHIND:  # behind: only the newest progress and preview matter
            self._drop_first(lambda m: m.type == message.type and m.execution_id == message.execution_id)
        if len(pending) >= _QUEUE_SIZE and not self._drop_first(lambda m: m.type in _DROPPABLE):
            if droppable:
                self.dropped += 1
                return
            # Nothing but status and terminal messages waiting: the oldest status change goes (the newer
            # ones say more), a terminal message never does.
            self._drop_first(lambda m: m.type not in _TERMINAL, count=False)
        pending.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _drop_first(self, which: Callable[[Outgoing], bool], *, count: bool = True) -> bool:
        """Drop the oldest waiting message `which` picks; False if there is none."""
        for i, item in enumerate(self._pending):
            if which(item):
                del self._pending[i]
                if count:
                    self.dropped += 1
                return True
        return False

    async def next(self) -> Outgoing | None:
        """The next message, waiting for one; None once the subscription is closed."""
        while not self._pending:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.closed:
            return None
        return self._pending.popleft()

    def close(self) -> None:
        """No more messages (the client has gone): `next` answers None, what was pending is let go."""
        self.closed = True
        self._pending.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class EventHub:
    """Subscribers of this instance. Messages come from the runs this instance follows (`publish`) and, on
    PostgreSQL, from rows other instances changed (`publish(..., remote=True)`): each execution row
    carries a change number (`seq`), and a remote message whose change was already published here is
    dropped, so a subscriber never gets the same change twice from the two paths.

    `publish` decides at once who gets a message (the subscribers at that moment) and hands it to them in
    slices of `FANOUT_SLICE`, one slice per turn of the event loop, messages in the order published."""

    def __init__(self, *, fanout_slice: int = FANOUT_SLICE, fanout_pause: float = FANOUT_PAUSE) -> None:
        self._subs: set[Subscription] = set()
        self._seen: OrderedDict[int, tuple[int, str]] = OrderedDict()
        self._slice = max(1, fanout_slice)
        self._pause = max(0.0, fanout_pause)
        self._backlog: deque[tuple[Outgoing, list[Subscription]]] = deque()
        self._fanout: asyncio.Task[None] | None = None

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
            sub.close()

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
        text = json.dumps(message, separators=(",", ":"))
        outgoing = Outgoing(str(message.get("type", "")), text, execution_id)
        if self._fanout is None and len(subs) <= self._slice:
            for sub in subs:  # one slice, nothing ahead of it: at once
                sub.offer(outgoing)
            return
        if outgoing.type in _DROPPABLE:
            self._supersede(outgoing)
        self._backlog.append((outgoing, subs))
        if self._fanout is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a script using the hub directly): hand it over now
                self._drain_now()
                return
            self._fanout = loop.create_task(self._deliver(), name="gateway-fanout")

    def _supersede(self, message: Outgoing) -> None:
        """A progress or preview still waiting for its turn gives way to a newer one of its execution (the
        fan-out is behind by more than a message). The one being handed out (the first) goes on."""
        for i in range(len(self._backlog) - 1, 0, -1):
            waiting = self._backlog[i][0]
            if waiting.type == message.type and waiting.execution_id == message.execution_id:
                del self._backlog[i]
                return

    async def _deliver(self) -> None:
        try:
            while self._backlog:
                outgoing, subs = self._backlog[0]
                for start in range(0, len(subs), self._slice):
                    if start:
                        await asyncio.sleep(self._pause)
                    for sub in subs[start : start + self._slice]:
                        sub.offer(outgoing)
                    self._backlog[0] = (outgoing, subs[start + self._slice :])  # if cancelled: the rest
                self._backlog.popleft()
                if self._backlog:
                    await asyncio.sleep(self._pause)
        finally:
            self._fanout = None
            self._drain_now()  # cancelled (the gateway is stopping): what is left goes at once

    def _drain_now(self) -> None:
        while self._backlog:
            outgoing, subs = self._backlog.popleft()
            for sub in subs:
                sub.offer(outgoing)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
