"""Progress across instances: a WebSocket subscriber here hears the runs that another instance follows.

Every change of an execution row bumps its change number (`seq`) and, on PostgreSQL, sends
`NOTIFY comfydesk_executions, '<id>:<seq>'` in the same transaction. This instance LISTENs; for a run it does
not follow itself and that a subscriber here wants, it reads the row (the row is the truth, the payload only
says "look") and publishes the state to its subscribers, in batches. A notification that was missed (the
listening connection dropped, or a subscriber arrived in between) is made good from the row: after every
reconnect, and every `resync_interval` for the executions that have a subscriber here. SQLite has no
NOTIFY and only one instance, which follows every run itself; the periodic catch-up still runs there.

What crosses instances: status changes, the percentage and the end with its images. Previews and per-step
detail (node, value, max) reach only the subscribers of the instance that follows the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from comfydesk.gateway.hub import EventHub
from comfydesk.gateway.store import EXECUTIONS_CHANNEL, WORK_CHANNEL, AsyncStore
from comfydesk.gateway.views import execution_json

__all__ = ["EventRelay", "libpq_dsn"]

log = logging.getLogger(__name__)

_TERMINAL = ("completed", "failed", "cancelled")


def libpq_dsn(url: str) -> str:
    """A SQLAlchemy `postgresql+psycopg://` URL as a libpq connection string for psycopg itself."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class EventRelay:
    def __init__(
        self,
        *,
        store: AsyncStore,
        hub: EventHub,
        follows: Callable[[int], bool],
        wake: Callable[[], None],
        database_url: str | None,
        resync_interval: float = 2.0,
    ) -> None:
        self.store = store
        self.hub = hub
        self.follows = follows  # does this instance follow the run itself (and publish its changes)?
        self.wake = wake  # another instance gave up leases
        self.dsn = libpq_dsn(database_url) if database_url and store.sync.postgres else None
        self.resync_interval = resync_interval
        self.listening = False
        self._pending: dict[int, int] = {}
        self._kick = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._publisher(), name="gateway-relay"))
        self._tasks.append(asyncio.create_task(self._resync_forever(), name="gateway-resync"))
        if self.dsn is not None:
            self._tasks.append(asyncio.create_task(self._listen_forever(), name="gateway-listen"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    # -- notifications ----------------------------------------------------------------------------------

    async def _listen_forever(self) -> None:
        import psycopg

        assert self.dsn is not None
        delay = 0.2
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                try:
                    await conn.execute(f"LISTEN {EXECUTIONS_CHANNEL}")
                    await conn.execute(f"LISTEN {WORK_CHANNEL}")
                    self.listening, delay = True, 0.2
                    # What was missed while not listening: the rows say it, and leases may be free.
                    await self.resync()
                    self.wake()
                    async for note in conn.notifies():
                        self.on_notification(note.channel, note.payload)
                finally:
                    self.listening = False
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: listen again when it is back
                log.warning("listening for other instances' changes failed (%s); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 2)

    def on_notification(self, channel: str, payload: str) -> None:
        if channel == WORK_CHANNEL:
            self.wake()
            return
        try:
            text_id, _, text_seq = payload.partition(":")
            execution_id, seq = int(text_id), int(text_seq)
        except ValueError:
            log.warning("ignoring a malformed notification %r", payload[:100])
            return
        if self.follows(execution_id) or not self.hub.interested(execution_id):
            return
        if seq <= self.hub.seen(execution_id)[0]:
            return
        self._pending[execution_id] = max(seq, self._pending.get(execution_id, 0))
        self._kick.set()

    async def _publisher(self) -> None:
        """Read the rows of notified changes, many at once, and publish them."""
        while True:
            await self._kick.wait()
            self._kick.clear()
            pending, self._pending = self._pending, {}
            try:
                await self._publish_rows(list(pending))
            except Exception:
                log.exception("publishing other instances' changes failed")

    # -- catching up ------------------------------------------------------------------------------------

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.resync_interval)
            try:
                await self.resync()
            except Exception as exc:
                log.warning("catching up with execution rows failed: %s", exc)

    async def resync(self) -> None:
        """Publish the newest state of every execution a subscriber here waits for, if not yet seen."""
        ids = [i for i in self.hub.watched_executions() if not self.follows(i)]
        if ids:
            await self._publish_rows(ids)

    async def _publish_rows(self, ids: list[int]) -> None:
        if not ids:
            return
        rows = await self.store.read(self.store.sync.get_executions, ids)
        rows = [r for r in rows if int(r.get("seq") or 0) > self.hub.seen(int(r["id"]))[0]]
        if not rows:
            return
        images = await self.store.read(self.store.sync.images_of, [r["id"] for r in rows])
        for row in rows:
            self.publish_row(row, images[row["id"]])

    def publish_row(self, row: dict[str, Any], images: list[dict[str, Any]]) -> None:
        execution_id, seq = int(row["id"]), int(row.get("seq") or 0)
        if self.follows(execution_id):
            return
        last_seq, last_status = self.hub.seen(execution_id)
        if seq <= last_seq:
            return
        status = str(row["status"])
        kind = status if status in _TERMINAL else ("status" if status != last_status else "progress")
        message = {"type": kind, "execution": execution_json(row, images)}
        self.hub.publish(execution_id, row.get("token_id"), message, seq=seq, remote=True)
