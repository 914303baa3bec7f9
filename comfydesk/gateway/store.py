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
from comfydesk.gateway.db import executions, images, meta, now, tokens, utc, workflows

__all__ = ["AsyncStore", "GatewayStore", "TokenInfo", "hash_token", "new_token_secret"]

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
        self, *, workflow_id: int, token_id: int | None, inputs: dict[str, Any], graph: dict[str, Any]
    ) -> dict[str, Any]:
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
                )
            )
            (eid,) = result.inserted_primary_key or (0,)
            row = conn.execute(sa.select(executions).where(executions.c.id == eid)).mappings().one()
        return _plain(row)

    def get_execution(self, execution_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(executions).where(executions.c.id == execution_id)).mappings().first()
            )
        return _plain(row) if row is not None else None

    def update_execution(self, execution_id: int, **values: Any) -> dict[str, Any] | None:
        """Change columns of an execution; a finished one keeps its status (first end wins)."""
        values.setdefault("updated_at", now())
        with self.engine.begin() as conn:
            stmt = executions.update().where(executions.c.id == execution_id)
            if "status" in values:
                stmt = stmt.where(executions.c.status.in_(UNFINISHED))
            conn.execute(stmt.values(**values))
            row = (
                conn.execute(sa.select(executions).where(executions.c.id == execution_id)).mappings().first()
            )
        return _plain(row) if row is not None else None

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


def _plain(row: RowMapping) -> dict[str, Any]:
    out = dict(row)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = utc(value)
    return out


class AsyncStore:
    """`GatewayStore` for the event loop: reads on a small pool, writes on one thread, in call order."""

    def __init__(self, store: GatewayStore, *, readers: int = 4) -> None:
        self.sync = store
        self._reads = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="gateway-db-read")
        self._writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-db-write")

    async def read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reads, partial(fn, *args, **kwargs))

    async def write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writes, partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._reads.shutdown(wait=True)
        self._writes.shutdown(wait=True)
