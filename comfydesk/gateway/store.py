"""Every read and write of the gateway's state, as plain synchronous methods on one `GatewayStore`.

The async side calls them through `AsyncStore`, which runs them on worker threads (writes on one thread, in
order) so the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from comfydesk.gateway import db
from comfydesk.gateway.db import executions, images, meta, now, rate_counters, tokens, utc, workflows

__all__ = [
    "EXECUTIONS_CHANNEL",
    "WORK_CHANNEL",
    "AsyncStore",
    "GatewayStore",
    "TokenInfo",
    "hash_token",
    "new_token_secret",
]

#: PostgreSQL NOTIFY channels: `<execution id>:<seq>` after every change of an execution row, and an empty
#: payload on `WORK_CHANNEL` when leases were given up (another instance may claim the runs at once).
EXECUTIONS_CHANNEL = "comfydesk_executions"
WORK_CHANNEL = "comfydesk_work"

P = ParamSpec("P")
T = TypeVar("T")
TOKEN_PREFIX = "cdk_"
UNFINISHED = ("queued", "running")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    admin: bool
    created_at: datetime
    revoked_at: datetime | None = None


def _token_info(row: RowMapping) -> TokenInfo:
    revoked = row["revoked_at"]
    return TokenInfo(
        row["id"], row["name"], bool(row["admin"]), utc(row["created_at"]), utc(revoked) if revoked else None
    )


class GatewayStore:
    """The gateway's database. Rows come back as plain dicts with UTC datetimes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = db.is_postgres(engine)

    @classmethod
    def open(cls, url: str) -> GatewayStore:
        """Open (and create or upgrade) the database at `url`; a SQLite file's folder is made."""
        sqlite_file = sa.engine.make_url(url)
        if sqlite_file.get_backend_name() == "sqlite" and sqlite_file.database not in (None, "", ":memory:"):
            Path(str(sqlite_file.database)).parent.mkdir(parents=True, exist_ok=True)
        engine = db.make_engine(url)
        db.migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- meta -------------------------------------------------------------------------------------------

    def ping(self) -> bool:
        """True when the database answers (readiness)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.literal(1))).scalar() == 1

    def _epoch(self) -> sa.ColumnElement[float]:
        """The database's clock in epoch seconds: leases of every instance are measured by one clock."""
        if self.postgres:
            return sa.cast(sa.extract("epoch", sa.func.clock_timestamp()), sa.Float)
        return (sa.func.julianday("now") - 2440587.5) * 86400.0

    def _notify(self, conn: sa.Connection, channel: str, payload: str) -> None:
        """PostgreSQL delivers it when the transaction commits; other databases have one instance only."""
        if self.postgres:
            conn.execute(sa.select(sa.func.pg_notify(channel, payload)))

    def instance_id(self) -> str:
        """This gateway's lasting id (ComfyUI client ids derive from it, so a restart hears its old runs)."""
        with self.engine.begin() as conn:
            value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "instance_id")).scalar()
            if value is None:
                value = uuid.uuid4().hex
                conn.execute(meta.insert().values(key="instance_id", value=value))
            return str(value)

    # -- tokens -----------------------------------------------------------------------------------------

    def create_token(self, name: str, *, admin: bool = False) -> tuple[TokenInfo, str]:
        """A new token; the secret is returned once and only its hash is kept."""
        secret = new_token_secret()
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(tokens.c.id).where(tokens.c.name == name)).first()
            if exists is not None:
                raise ValueError(f"a token named {name!r} exists already")
            result = conn.execute(
                tokens.insert().values(
                    name=name, token_hash=hash_token(secret), admin=admin, created_at=now()
                )
            )
            (token_id,) = result.inserted_primary_key or (0,)
            row = conn.execute(sa.select(tokens).where(tokens.c.id == token_id)).mappings().one()
        return _token_info(row), secret

    def list_tokens(self) -> list[TokenInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(tokens).order_by(tokens.c.id)).mappings().all()
        return [_token_info(r) for r in rows]

    def revoke_token(self, name: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                tokens.update()
                .where(tokens.c.name == name, tokens.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
        return bool(result.rowcount)

    def token_for_secret(self, secret: str) -> TokenInfo | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(tokens).where(
                        tokens.c.token_hash == hash_token(secret), tokens.c.revoked_at.is_(None)
                    )
                )
                .mappings()
                .first()
            )
        return _token_info(row) if row is not None else None

    def has_tokens(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(tokens)).scalar_one() > 0

    # -- workflows --------------------------------------------------------------------------------------

    def list_workflows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(workflows).order_by(workflows.c.id)).mappings().all()
        return [_plain(r) for r in rows]

    def get_workflow(self, workflow_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(workflows).where(workflows.c.id == workflow_id)).mappings().first()
        return _plain(row) if row is not None else None

    def create_workflow(
        self, *, name: str, description: str, nodes: list[Any], owner_token_id: int | None
    ) -> dict[str, Any]:
        stamp = now()
        with self.engine.begin() as conn:
            result = conn.execute(
                workflows.insert().values(
                    name=name,
                    description=description,
                    nodes=nodes,
                    owner_token_id=owner_token_id,
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
            (wid,) = result.inserted_primary_key or (0,)
            row = conn.execute(sa.select(workflows).where(workflows.c.id == wid)).mappings().one()
        return _plain(row)

    def update_workflow(
        self, workflow_id: int, *, name: str, description: str, nodes: list[Any]
    ) -> dict[str, Any] | None:
        with self.engine.begin() as conn:
            conn.execute(
                workflows.update()
                .where(workflows.c.id == workflow_id)
                .values(name=name, description=description, nodes=nodes, updated_at=now())
            )
            row = conn.execute(sa.select(workflows).where(workflows.c.id == workflow_id)).mappings().first()
        return _plain(row) if row is not None else None

    def delete_workflow(self, workflow_id: int) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(workflows.delete().where(workflows.c.id == workflow_id))
        return bool(result.rowcount)

    # -- executions -------------------------------------------------------------------------------------

    def create_execution(
        self,
        *,
        workflow_id: int,
        token_id: int | None,
        inputs: dict[str, Any],
        graph: dict[str, Any],
        lease_owner: str | None = None,
        lease: float = 30.0,
    ) -> dict[str, Any]:
        """A queued execution, already leased to `lease_owner` (the instance that submits it now)."""
        stamp = now()
        with self.engine.begin() as conn:
            result = conn.execute(
                executions.insert().values(
                    workflow_id=workflow_id,
                    token_id=token_id,
                    status="queued",
                    progress=0,
                    inputs=inputs,
                    graph=graph,
                    submitted=False,
                    created_at=stamp,
                    updated_at=stamp,
                    lease_owner=lease_owner,
                    lease_until=self._epoch() + lease if lease_owner else None,
                    seq=1,
                )
            )
            (eid,) = result.inserted_primary_key or (0,)
            row = conn.execute(sa.select(executions).where(executions.c.id == eid)).mappings().one()
            self._notify(conn, EXECUTIONS_CHANNEL, f"{eid}:1")
        return _plain(row)

    def get_execution(self, execution_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(executions).where(executions.c.id == execution_id)).mappings().first()
            )
        return _plain(row) if row is not None else None

    def execution_with_images(self, execution_id: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """An execution's row and its images, on one connection (`GET /executions/{id}` under load)."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(executions).where(executions.c.id == execution_id)).mappings().first()
            )
            if row is None:
                return None, []
            rows = (
                conn.execute(
                    sa.select(images).where(images.c.execution_id == execution_id).order_by(images.c.id)
                )
                .mappings()
                .all()
            )
        return _plain(row), [_plain(r) for r in rows]

    def update_execution(self, execution_id: int, **values: Any) -> dict[str, Any] | None:
        """Change columns of an execution; a finished one keeps its status (first end wins)."""
        values.setdefault("updated_at", now())
        with self.engine.begin() as conn:
            stmt = executions.update().where(executions.c.id == execution_id)
            if "status" in values:
                stmt = stmt.where(executions.c.status.in_(UNFINISHED))
            stmt = stmt.values(seq=executions.c.seq + 1, **values).returning(*executions.c)
            row = conn.execute(stmt).mappings().first()
            if row is not None:
                self._notify(conn, EXECUTIONS_CHANNEL, f"{execution_id}:{row['seq']}")
            else:  # unknown, or finished already (its status stays): the row as it is
                row = (
                    conn.execute(sa.select(executions).where(executions.c.id == execution_id))
                    .mappings()
                    .first()
                )
        return _plain(row) if row is not None else None

    def get_executions(self, execution_ids: Sequence[int]) -> list[dict[str, Any]]:
        if not execution_ids:
            return []
        with self.engine.connect() as conn:
            rows = (
                conn.execute(sa.select(executions).where(executions.c.id.in_(list(execution_ids))))
                .mappings()
                .all()
            )
        return [_plain(r) for r in rows]

    # -- the queue: leases ------------------------------------------------------------------------------

    def claim_executions(
        self, owner: str, *, lease: float, limit: int = 50, own_too: bool = False
    ) -> list[dict[str, Any]]:
        """Unfinished executions nobody follows (no lease, or an expired one), now leased to `owner`.

        `SELECT ... FOR UPDATE SKIP LOCKED`: instances claiming at once each get different rows, and a
        row's lease is re-checked after its lock is taken, so a run is never claimed twice. `own_too`
        (at start-up) also takes back rows still leased to `owner` by an earlier life of this instance.
        SQLite has no row locks (and ignores the clause): there, one instance writes at a time anyway."""
        epoch = self._epoch()
        free = sa.or_(executions.c.lease_until.is_(None), executions.c.lease_until < epoch)
        if own_too:
            free = sa.or_(free, executions.c.lease_owner == owner)
        with self.engine.begin() as conn:
            ids = (
                conn.execute(
                    sa.select(executions.c.id)
                    .where(executions.c.status.in_(UNFINISHED), free)
                    .order_by(executions.c.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            conn.execute(
                executions.update()
                .where(executions.c.id.in_(ids))
                .values(lease_owner=owner, lease_until=epoch + lease)
            )
            rows = (
                conn.execute(sa.select(executions).where(executions.c.id.in_(ids)).order_by(executions.c.id))
                .mappings()
                .all()
            )
        return [_plain(r) for r in rows]

    def renew_leases(self, owner: str, execution_ids: Sequence[int], *, lease: float) -> set[int]:
        """Extend `owner`'s leases on these runs; returns the ids it still holds (a run that ended, or
        that another instance took over while this one stalled, is not among them)."""
        if not execution_ids:
            return set()
        held = sa.and_(
            executions.c.id.in_(list(execution_ids)),
            executions.c.lease_owner == owner,
            executions.c.status.in_(UNFINISHED),
        )
        with self.engine.begin() as conn:
            conn.execute(executions.update().where(held).values(lease_until=self._epoch() + lease))
            ids = conn.execute(sa.select(executions.c.id).where(held)).scalars().all()
        return {int(i) for i in ids}

    def release_leases(self, owner: str) -> int:
        """Give up every lease of `owner` (a graceful shutdown): other instances may claim the runs now."""
        with self.engine.begin() as conn:
            count = conn.execute(
                executions.update()
                .where(executions.c.lease_owner == owner, executions.c.status.in_(UNFINISHED))
                .values(lease_owner=None, lease_until=None)
            ).rowcount
            if count:
                self._notify(conn, WORK_CHANNEL, "")
        return int(count)

    def active_by_machine(self) -> dict[str, int]:
        """Unfinished runs per ComfyUI machine, whichever instance follows them (least-loaded dispatch)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(executions.c.backend_url, sa.func.count())
                .where(executions.c.status.in_(UNFINISHED), executions.c.backend_url.is_not(None))
                .group_by(executions.c.backend_url)
            ).all()
        return {str(url): int(count) for url, count in rows}

    # -- rate limits ------------------------------------------------------------------------------------

    def rate_hit(self, key: str, window: int, period: int) -> tuple[int, int]:
        """Count one request of `key` in the window starting at `window` (epoch s); returns the counts of
        this window and of the one before it."""
        if self.postgres:  # one statement, one round trip: this runs for every request
            with self.engine.begin() as conn:
                values = {"key": key, "window": window, "previous": window - period}
                current, previous = conn.execute(_RATE_HIT_PG, values).one()
            return int(current), int(previous)
        from sqlalchemy.dialects.sqlite import insert

        upsert = insert(rate_counters).values(key=key, window=window, count=1)
        stmt = upsert.on_conflict_do_update(
            index_elements=[rate_counters.c.key, rate_counters.c.window],
            set_={"count": rate_counters.c.count + 1},
        ).returning(rate_counters.c.count)
        with self.engine.begin() as conn:
            current = int(conn.execute(stmt).scalar_one())
            previous = conn.execute(
                sa.select(rate_counters.c.count).where(
                    rate_counters.c.key == key, rate_counters.c.window == window - period
                )
            ).scalar()
        return current, int(previous or 0)

    def prune_rate_counters(self, before: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(rate_counters.delete().where(rate_counters.c.window < before))

    def list_executions(
        self,
        *,
        token_id: int | None,
        workflow_id: int | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Newest first; `token_id=None` lists everyone's (an admin's view)."""
        where = []
        if token_id is not None:
            where.append(executions.c.token_id == token_id)
        if workflow_id is not None:
            where.append(executions.c.workflow_id == workflow_id)
        if status is not None:
            where.append(executions.c.status == status)
        with self.engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(executions).where(*where)
            ).scalar_one()
            rows = (
                conn.execute(
                    sa.select(executions)
                    .where(*where)
                    .order_by(executions.c.id.desc())
                    .limit(limit)
                    .offset(offset)
                )
                .mappings()
                .all()
            )
        return [_plain(r) for r in rows], int(total)

    def unfinished_executions(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(executions).where(executions.c.status.in_(UNFINISHED)).order_by(executions.c.id)
                )
                .mappings()
                .all()
            )
        return [_plain(r) for r in rows]

    # -- images -----------------------------------------------------------------------------------------

    def add_image(
        self,
        *,
        execution_id: int,
        token_id: int | None,
        node_id: str,
        source: str,
        ext: str,
        mime: str,
        width: int,
        height: int,
        size: int,
        ttl: float,
        commit: Callable[[int, str], None],
    ) -> dict[str, Any] | None:
        """Record an output image; `commit(id, file_name)` puts the file in place inside the transaction,
        so a row never points at a missing file. None when this source is stored for the run already."""
        stamp = now()
        with self.engine.begin() as conn:
            dup = conn.execute(
                sa.select(images.c.id).where(images.c.execution_id == execution_id, images.c.source == source)
            ).first()
            if dup is not None:
                return None
            result = conn.execute(
                images.insert().values(
                    execution_id=execution_id,
                    token_id=token_id,
                    node_id=node_id,
                    source=source,
                    file_name="",
                    mime=mime,
                    width=width,
                    height=height,
                    size=size,
                    created_at=stamp,
                    expires_at=stamp + timedelta(seconds=ttl),
                    deleted=False,
                )
            )
            (image_id,) = result.inserted_primary_key or (0,)
            file_name = f"{image_id}.{ext}"
            conn.execute(images.update().where(images.c.id == image_id).values(file_name=file_name))
            commit(int(image_id), file_name)
            row = conn.execute(sa.select(images).where(images.c.id == image_id)).mappings().one()
        return _plain(row)

    def get_image(self, image_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(images).where(images.c.id == image_id)).mappings().first()
        return _plain(row) if row is not None else None

    def images_of(self, execution_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = {i: [] for i in execution_ids}
        if not execution_ids:
            return out
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(images)
                    .where(images.c.execution_id.in_(list(execution_ids)))
                    .order_by(images.c.id)
                )
                .mappings()
                .all()
            )
        for r in rows:
            out[r["execution_id"]].append(_plain(r))
        return out

    def expired_images(self, at: datetime) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(sa.select(images).where(images.c.expires_at <= at, images.c.deleted.is_(False)))
                .mappings()
                .all()
            )
        return [_plain(r) for r in rows]

    def mark_images_deleted(self, image_ids: Sequence[int]) -> None:
        if image_ids:
            with self.engine.begin() as conn:
                conn.execute(images.update().where(images.c.id.in_(list(image_ids))).values(deleted=True))


_RATE_HIT_PG = sa.text(
    """
    WITH hit AS (
        INSERT INTO rate_counters (key, "window", count) VALUES (:key, :window, 1)
        ON CONFLICT (key, "window") DO UPDATE SET count = rate_counters.count + 1
        RETURNING count
    )
    SELECT (SELECT count FROM hit),
           COALESCE((SELECT count FROM rate_counters WHERE key = :key AND "window" = :previous), 0)
    """
)


def _plain(row: RowMapping) -> dict[str, Any]:
    out = dict(row)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = utc(value)
    return out


class AsyncStore:
    """`GatewayStore` for the event loop: reads on a small pool, writes on writer threads, each in call
    order. SQLite has one writer (it allows one at a time anyway). PostgreSQL has several: the writes about
    one execution (`write_for(execution_id, ...)`) always go to the same one, so they keep their order,
    while different runs are written side by side."""

    def __init__(
        self, store: GatewayStore, *, readers: int | None = None, writers: int | None = None
    ) -> None:
        self.sync = store
        readers = readers or (8 if store.postgres else 4)
        writers = writers or (4 if store.postgres else 1)
        self._reads = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="gateway-db-read")
        self._writers = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gateway-db-write-{i}")
            for i in range(writers)
        ]

    async def read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reads, partial(fn, *args, **kwargs))

    async def write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writers[0], partial(fn, *args, **kwargs))

    async def write_for(self, key: int, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A write about `key` (an execution id), in order with the other writes about it."""
        loop = asyncio.get_running_loop()
        writer = self._writers[key % len(self._writers)]
        return await loop.run_in_executor(writer, partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._reads.shutdown(wait=True)
        for writer in self._writers:
            writer.shutdown(wait=True)
