"""Runs on ComfyUI machines: pick the least-loaded healthy machine, submit through the native backend, follow
its event stream, keep the record and the subscribers up to date, copy outputs as they arrive.

Each machine is one `ComfyUIBackend` whose client id derives from the instance id. The executions table is
the truth and the queue: a run is recorded (with the prompt id we chose) and leased to the instance that
submits it before it is submitted; the instance renews the leases of the runs it follows. A run whose lease
ran out (its instance died) is claimed by another instance (`SELECT ... FOR UPDATE SKIP LOCKED`), which asks
the ComfyUI machine what became of the prompt (`/queue`, then `/history` through `ComfyUIBackend.follow`)
and finishes, follows or fails it; only a run that never reached ComfyUI is submitted again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from comfydesk.backends.base import ConnectionChanged, ConnectionState, QueueChanged
from comfydesk.backends.comfyui import ComfyUIBackend
from comfydesk.backends.comfyui_protocol import LOST_RUN_MESSAGE
from comfydesk.backends.reconnect import ReconnectPolicy
from comfydesk.core.errors import BackendError, ServerResponseError, ValidationError
from comfydesk.core.events import (
    Cached,
    Completed,
    Failed,
    Interrupted,
    NodeOutput,
    NodeStarted,
    OutputRef,
    Preview,
    Progress,
    Queued,
    Started,
)
from comfydesk.core.graph import ApiGraph
from comfydesk.core.nodes import NodeCatalog
from comfydesk.gateway.hold import DEFAULT_GRACE, Holding, unavailable_error
from comfydesk.gateway.hub import EventHub
from comfydesk.gateway.images import ImageStore
from comfydesk.gateway.outcomes import failure_error, nodes_to_run, refused_error
from comfydesk.gateway.store import AsyncStore
from comfydesk.gateway.views import execution_json

__all__ = ["Dispatcher", "ExecutionRefused", "Machine", "NoBackend"]

log = logging.getLogger(__name__)

#: A machine that stops answering is given up after about 5 s, so its runs fail instead of hanging.
MACHINE_RECONNECT = ReconnectPolicy(initial=0.25, factor=2.0, max_delay=2.0, jitter=0.1, max_attempts=4)
_QUEUED_WAIT = 5.0
_WATCH_INTERVAL = 0.25  # how often a taken-over run still in a ComfyUI queue is looked for there


class NoBackend(Exception):
    """No healthy ComfyUI machine can take the run."""


class ExecutionRefused(Exception):
    """ComfyUI refused the graph (its validation); `issues` are its node errors as readable lines."""

    def __init__(self, issues: list[str]) -> None:
        super().__init__("; ".join(issues))
        self.issues = issues


@dataclass(eq=False)
class Machine:
    url: str
    backend: ComfyUIBackend
    healthy: bool = False
    error: str = "not connected yet"
    version: str = ""
    queue: int = 0
    catalog: NodeCatalog | None = None
    submitting: int = 0
    pump: asyncio.Task[None] | None = None
    lost_at: float | None = None  # loop time its link dropped (None: connected, or never was)

    @property
    def load(self) -> int:
        return self.queue + self.submitting


@dataclass(eq=False)
class Run:
    row: dict[str, Any]
    machine: Machine
    prompt_id: str
    needed: frozenset[str]
    done: set[str] = field(default_factory=set)
    current: str | None = None
    fraction: float = 0.0
    stored: set[str] = field(default_factory=set)
    downloads: set[asyncio.Task[None]] = field(default_factory=set)
    queued: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    ending: bool = False
    adopted: bool = False  # taken over from another instance: ComfyUI sends its events to that client

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def token_id(self) -> int | None:
        value = self.row.get("token_id")
        return int(value) if value is not None else None

    def progress(self) -> int:
        total = len(self.needed) or 1
        done = len(self.done & self.needed) + (self.fraction if self.current in self.needed else 0.0)
        return max(0, min(99, int(100 * done / total)))


def _source(ref: OutputRef) -> str:
    return f"{ref.type}/{ref.subfolder}/{ref.filename}"


class Dispatcher:
    def __init__(
        self,
        urls: list[str],
        *,
        store: AsyncStore,
        images: ImageStore,
        hub: EventHub,
        instance_id: str,
        health_interval: float = 2.0,
        reconnect: ReconnectPolicy = MACHINE_RECONNECT,
        lease: float = 30.0,
        reconnect_grace: float = DEFAULT_GRACE,
    ) -> None:
        self.store = store
        self.images = images
        self.hub = hub
        self.instance_id = instance_id
        self.lease = lease
        self.health_interval = health_interval
        self.machines = [
            Machine(
                url,
                ComfyUIBackend(
                    url,
                    client_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfydesk-gateway:{instance_id}:{url}")),
                    reconnect=reconnect,
                    timeout=30.0,
                ),
            )
            for url in urls
        ]
        self.runs: dict[str, Run] = {}  # by prompt id
        self.by_execution: dict[int, Run] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._health: asyncio.Task[None] | None = None
        self._leases: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._shared: NodeCatalog | None = None
        self._work = asyncio.Event()  # another instance gave up leases: claim now, not at the next tick
        self._watched: set[Run] = set()  # taken-over runs waiting in a ComfyUI queue
        self.holding = Holding(self, reconnect_grace)  # runs accepted while every machine reconnects

    # -- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        for machine in self.machines:
            machine.pump = asyncio.create_task(self._pump(machine), name=f"gateway-pump {machine.url}")
        await asyncio.gather(*(self._bring_up(m) for m in self.machines))
        await self.claim(own_too=True)
        self._health = asyncio.create_task(self._health_loop(), name="gateway-health")
        self._leases = asyncio.create_task(self._lease_loop(), name="gateway-leases")
        self._watcher = asyncio.create_task(self._watch_loop(), name="gateway-watch")

    async def stop(self) -> None:
        """Stop following runs and give up their leases, so another instance takes them over at once."""
        tasks = [t for t in (self._health, self._leases, self._watcher, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:
            released = await self.store.write(self.store.sync.release_leases, self.instance_id)
            if released:
                log.info("gave up %d unfinished run(s) to the other instances", released)
        except Exception as exc:  # the database is gone: the leases simply run out
            log.warning("could not give up the leases: %s", exc)
        for machine in self.machines:
            await machine.backend.close()
            if machine.pump is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(machine.pump, 2)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- machines ---------------------------------------------------------------------------------------

    async def _bring_up(self, machine: Machine) -> None:
        try:
            await machine.backend.connect()
            info = await machine.backend.server_info()
            catalog = await machine.backend.node_catalog(refresh=True)
            queue = await machine.backend.queue()
        except BackendError as exc:
            machine.healthy = False
            machine.error = exc.user_text()
            log.warning("ComfyUI at %s is not available: %s", machine.url, machine.error)
            return
        machine.version = info.version
        machine.catalog = catalog
        machine.queue = len(queue)
        machine.healthy = True
        machine.error = ""
        machine.lost_at = None
        self._shared = None
        self.holding.health_changed()
        log.info("ComfyUI at %s is up (version %s, %d node types)", machine.url, info.version, len(catalog))

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            for machine in self.machines:
                state = machine.backend.status.state
                if state is ConnectionState.CONNECTED:
                    try:
                        machine.queue = len(await machine.backend.queue())
                        if not machine.healthy and machine.catalog is not None:
                            machine.healthy, machine.error = True, ""
                            self.holding.health_changed()
                    except BackendError as exc:
                        machine.healthy, machine.error = False, exc.user_text()
                elif state is ConnectionState.DISCONNECTED:
                    await self._bring_up(machine)

    def healthy(self) -> list[Machine]:
        return [m for m in self.machines if m.healthy and m.catalog is not None]

    def catalog(self) -> NodeCatalog | None:
        """The node types every healthy machine offers (the definitions of the first); None: no machine."""
        if self._shared is not None:
            return self._shared
        catalogs = [m.catalog for m in self.healthy() if m.catalog is not None]
        if not catalogs:
            catalogs = [m.catalog for m in self.machines if m.catalog is not None]
        if not catalogs:
            return None
        common = set(catalogs[0]).intersection(*map(set, catalogs[1:]))
        self._shared = NodeCatalog([n for n in catalogs[0].nodes() if n.id in common])
        return self._shared

    def backends_state(self) -> list[dict[str, Any]]:
        known = [set(m.catalog) for m in self.machines if m.catalog is not None]
        union = set().union(*known) if known else set()
        common = set(known[0]).intersection(*known[1:]) if known else set()
        out = []
        for m in self.machines:
            have = set(m.catalog) if m.catalog is not None else set()
            out.append(
                {
                    "url": m.url,
                    "healthy": m.healthy,
                    "queue": m.queue,
                    "version": m.version,
                    "error": m.error,
                    "missing_nodes": sorted(union - have) if m.catalog is not None else [],
                    "extra_nodes": sorted(have - common),
                }
            )
        return out

    async def _pick(self) -> list[Machine]:
        """Healthy machines, least loaded first. A machine's load is the larger of what the table says
        (unfinished runs of every instance assigned to it, including submissions in flight) and what
        ComfyUI said last (its queue, which also holds other clients' prompts); ties go to the machine
        with fewer of the gateway's runs."""
        active = await self.store.read(self.store.sync.active_by_machine)

        def key(m: Machine) -> tuple[int, int]:
            ours = active.get(m.url, 0)
            return max(ours, m.load), ours

        return sorted(self.healthy(), key=key)

    # -- runs -------------------------------------------------------------------------------------------

    async def submit(self, row: dict[str, Any], graph: ApiGraph, *, hold: bool = False) -> dict[str, Any]:
        """Send a recorded execution to a machine; returns its row once the machine has queued it.

        Raises NoBackend when no machine takes it (the row is then failed as backend_unavailable), and
        ExecutionRefused when ComfyUI rejects the graph (the row is failed as execution_error). With
        `hold`, a run no machine takes while one is reconnecting is held instead (`Holding`): its row is
        returned still queued, and it is dispatched when a machine is back."""
        try:
            return await self.offer(row, graph)
        except NoBackend as exc:
            if hold and self.holding.can_hold():
                return self.holding.hold(row, graph, str(exc))
            await self._write(row["id"], status="failed", error=unavailable_error(str(exc)))
            raise

    async def offer(self, row: dict[str, Any], graph: ApiGraph) -> dict[str, Any]:
        """`submit` without its ending: NoBackend leaves the row queued (the caller fails or holds it)."""
        tried: list[str] = []
        for machine in await self._pick():
            pid = str(uuid.uuid4())
            row = await self._write(row["id"], backend_url=machine.url, prompt_id=pid, submitted=False)
            run = self._track(row, machine, pid, graph)
            machine.submitting += 1
            try:
                await machine.backend.submit(graph, prompt_id=pid)
            except (ValidationError, ServerResponseError) as exc:
                refused = isinstance(exc, ValidationError) or (exc.status or 0) < 500
                if not refused:
                    self._untrack(run)
                    tried.append(f"{machine.url}: {exc.user_text()}")
                    continue
                issues = exc.lines() if isinstance(exc, ValidationError) else [exc.message]
                self._untrack(run)
                failed = await self._write(run.id, status="failed", error=refused_error(issues))
                self._publish_row(failed, "failed")
                raise ExecutionRefused(issues) from None
            except BackendError as exc:
                self._untrack(run)
                machine.healthy, machine.error = False, exc.user_text()
                if machine.lost_at is None and machine.catalog is not None:  # it dropped just now
                    machine.lost_at = asyncio.get_running_loop().time()
                tried.append(f"{machine.url}: {exc.user_text()}")
                continue
            except BaseException:
                # A bug or a cancelled request must not leave the record queued for ever.
                self._untrack(run)
                await asyncio.shield(self._fail_internal(run.id))
                raise
            finally:
                machine.submitting -= 1
            run.row = await self._write(run.id, submitted=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.queued.wait(), _QUEUED_WAIT)
            return run.row
        if not tried:  # none healthy: say what became of each
            tried = [f"{m.url}: {m.error}" for m in self.machines if m.error]
        raise NoBackend("; ".join(tried) or "no ComfyUI machine is reachable")

    def _track(self, row: dict[str, Any], machine: Machine, pid: str, graph: ApiGraph) -> Run:
        run = Run(row=row, machine=machine, prompt_id=pid, needed=nodes_to_run(graph, machine.catalog))
        self.runs[pid] = run
        self.by_execution[run.id] = run
        return run

    def _untrack(self, run: Run) -> None:
        self.runs.pop(run.prompt_id, None)
        if self.by_execution.get(run.id) is run:
            del self.by_execution[run.id]

    async def cancel(self, execution_id: int) -> None:
        """Cancel a run: removed from its machine's queue, or interrupted while it runs."""
        self.holding.drop(execution_id)  # held (no machine yet): it is simply never dispatched
        run = self.by_execution.get(execution_id)
        if run is None:
            # Followed by another instance (or by none): ask its machine to drop the prompt, then end the
            # record here; the instance following it sees the row end when it renews its lease.
            row = await self.store.read(self.store.sync.get_execution, execution_id)
            if row is not None and row["status"] in ("queued", "running"):
                machine = self._machine_of(row)
                if machine is not None and row.get("prompt_id"):
                    try:
                        await machine.backend.cancel(str(row["prompt_id"]))
                    except BackendError as exc:
                        log.warning(
                            "cancelling execution %s on %s failed: %s", execution_id, machine.url, exc
                        )
                row = await self._write(
                    execution_id, status="cancelled", error={"code": "cancelled", "message": "Cancelled"}
                )
                if row is not None:
                    self._publish_row(row, "cancelled")
            return
        try:
            await run.machine.backend.cancel(run.prompt_id)
        except BackendError as exc:
            log.warning("cancelling execution %s on %s failed: %s", execution_id, run.machine.url, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.finished.wait(), 10)

    def _machine_of(self, row: Mapping[str, Any]) -> Machine | None:
        return next((m for m in self.machines if m.url == row.get("backend_url")), None)

    async def _lease_loop(self) -> None:
        """Renew the leases of the runs followed here and claim runs nobody follows, every third of a
        lease (or at once when another instance gave some up)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work.wait(), self.lease / 3)
            self._work.clear()
            try:
                await self.renew()
                await self.claim()
            except Exception:  # a database hiccup: try again next tick (leases last three ticks)
                log.exception("renewing or claiming leases failed")

    def wake(self) -> None:
        """Leases were given up somewhere: claim without waiting for the next tick."""
        self._work.set()

    async def renew(self) -> None:
        runs = list(self.by_execution.values())
        waiting = self.holding.ids()
        if not runs and not waiting:
            return
        held = await self.store.write(
            self.store.sync.renew_leases, self.instance_id, [r.id for r in runs] + waiting, lease=self.lease
        )
        for execution_id in waiting:
            if execution_id not in held:  # cancelled through another instance
                self.holding.drop(execution_id)
        for run in runs:
            if run.id not in held and not run.ending and self.by_execution.get(run.id) is run:
                # Ended elsewhere (cancelled through another instance) or taken over after a stall.
                log.info("execution %s: no longer followed here (ended or taken over)", run.id)
                self._untrack(run)
                self._watched.discard(run)
                run.finished.set()

    async def claim(self, *, own_too: bool = False) -> None:
        """Take up every unfinished run nobody follows: at start-up those of an earlier life of this
        instance too, later those whose instance died (its lease ran out) or shut down."""
        while True:
            rows = await self.store.write(
                self.store.sync.claim_executions, self.instance_id, lease=self.lease, own_too=own_too
            )
            rows = [r for r in rows if r["id"] not in self.by_execution]
            for row in rows:
                await self._adopt(row)
            if len(rows) < 50:
                return

    async def reconcile(self) -> None:
        """Take up every run a previous process left unfinished (the start-up claim)."""
        await self.claim(own_too=True)

    async def _adopt(self, row: dict[str, Any]) -> None:
        """A claimed run: follow it where ComfyUI still has it, end it from ComfyUI's history, fail it when
        ComfyUI lost it, submit it when it never reached ComfyUI. Never submitted twice."""
        machine = self._machine_of(row)
        graph = ApiGraph.from_prompt(row["graph"])
        pid = row.get("prompt_id")
        try:
            if machine is not None and machine.healthy and pid:
                if str(pid) in {q.execution_id for q in await machine.backend.queue()}:
                    run = self._track(row, machine, str(pid), graph)
                    run.adopted = True
                    if not row["submitted"]:
                        run.row = await self._write(run.id, submitted=True)
                    self._watched.add(run)
                    log.info("execution %s: taken over, waiting in %s's queue", row["id"], machine.url)
                    return
                run = self._track(row, machine, str(pid), graph)
                run.adopted = True
                if await machine.backend.follow(str(pid)):
                    log.info("execution %s: taken over, ending it from %s's history", row["id"], machine.url)
                    return
                self._untrack(run)
                if row["submitted"]:
                    await self._fail_lost(row, LOST_RUN_MESSAGE)
                    return
            elif machine is None and row.get("submitted"):
                await self._fail_lost(row, f"its ComfyUI machine {row.get('backend_url')} is not configured")
                return
            elif row.get("submitted"):
                await self._fail_lost(
                    row, f"{row.get('backend_url')} was not reachable when it was taken over"
                )
                return
            log.info("execution %s: never reached ComfyUI; submitting it now", row["id"])
            await self.submit(row, graph, hold=True)
        except (NoBackend, ExecutionRefused) as exc:
            log.warning("execution %s could not be resumed: %s", row["id"], exc)
        except BackendError as exc:
            await self._fail_lost(row, exc.user_text())

    async def _watch_loop(self) -> None:
        """Taken-over runs waiting or running in a ComfyUI queue: ComfyUI tells their progress to the
        client that submitted them, so the queue is looked at until they leave it, and then their end
        comes from `/history` (`follow`)."""
        while True:
            await asyncio.sleep(_WATCH_INTERVAL)
            by_machine: dict[Machine, list[Run]] = {}
            for run in list(self._watched):
                by_machine.setdefault(run.machine, []).append(run)
            for machine, runs in by_machine.items():
                try:
                    queue = {q.execution_id: q for q in await machine.backend.queue()}
                    for run in runs:
                        item = queue.get(run.prompt_id)
                        if item is not None:
                            if item.running:
                                await self._set_status(run, "running")
                            continue
                        self._watched.discard(run)
                        if run.ending or self.by_execution.get(run.id) is not run:
                            continue
                        if not await machine.backend.follow(run.prompt_id):
                            self._untrack(run)
                            await self._fail_lost(run.row, LOST_RUN_MESSAGE)
                except BackendError as exc:
                    log.info("watching taken-over runs on %s: %s", machine.url, exc)
                except Exception:
                    log.exception("watching taken-over runs on %s failed", machine.url)

    async def _fail_internal(self, execution_id: int) -> None:
        row = await self.store.write_for(
            execution_id,
            self.store.sync.update_execution,
            execution_id,
            status="failed",
            error={"code": "internal_error", "message": "The gateway failed to submit the run"},
        )
        if row is not None:
            self._publish_row(row, "failed")

    async def _fail_lost(self, row: Mapping[str, Any], why: str) -> None:
        updated = await self._write(
            int(row["id"]),
            status="failed",
            error={
                "code": "backend_unavailable",
                "message": "The run was lost: the gateway or ComfyUI restarted before it finished",
                "details": why,
            },
        )
        if updated is not None:
            self._publish_row(updated, "failed")

    # -- events -----------------------------------------------------------------------------------------

    async def _pump(self, machine: Machine) -> None:
        async for event in machine.backend.events():
            try:
                await self._on_event(machine, event)
            except Exception:  # one bad event must not stop the machine's stream
                log.exception("handling %s from %s failed", type(event).__name__, machine.url)

    async def _on_event(self, machine: Machine, event: Any) -> None:
        if isinstance(event, ConnectionChanged):
            state = event.status.state
            if state is ConnectionState.CONNECTED:
                machine.healthy, machine.error = machine.catalog is not None, ""
                machine.lost_at = None
            else:
                machine.healthy = False
                machine.error = event.status.reason or (
                    f"the link dropped, reconnecting (attempt {event.status.attempt})"
                    if state is ConnectionState.RECONNECTING
                    else state.value
                )
                if machine.lost_at is None and machine.catalog is not None:
                    machine.lost_at = asyncio.get_running_loop().time()
            self._shared = None
            self.holding.health_changed()
            return
        if isinstance(event, QueueChanged):
            machine.queue = event.remaining
            return
        run = self.runs.get(getattr(event, "execution_id", ""))
        if run is None or run.ending:
            return
        if isinstance(event, Queued):
            await self._set_status(run, "running" if event.position == 0 else "queued")
            run.queued.set()
        elif isinstance(event, Started):
            await self._set_status(run, "running")
        elif isinstance(event, Cached):
            run.done.update(event.node_ids)
            await self._progress(run, None, 0, 0)
        elif isinstance(event, NodeStarted):
            if run.current is not None and run.current != event.node_id:
                run.done.add(run.current)
            run.current, run.fraction = event.node_id, 0.0
            await self._set_status(run, "running")
            await self._progress(run, event.node_id, 0, 0)
        elif isinstance(event, Progress):
            if event.max > 0:
                run.fraction = min(1.0, event.value / event.max)
            await self._progress(run, event.node_id, event.value, event.max)
        elif isinstance(event, Preview):
            self.hub.publish(
                run.id,
                run.token_id,
                {
                    "type": "preview",
                    "execution": {"id": run.id},
                    "node": event.node_id,
                    "mime": event.mime,
                    "image": base64.b64encode(event.image).decode("ascii"),
                },
            )
        elif isinstance(event, NodeOutput):
            if run.current is not None:
                run.done.add(run.current)
            self._download(run, event.outputs)
        elif isinstance(event, Completed):
            self._download(run, event.outputs)
            run.ending = True
            self._spawn(self._end(run, "completed", None))
        elif isinstance(event, Failed):
            run.ending = True
            self._spawn(self._end(run, "failed", failure_error(event, machine)))
        elif isinstance(event, Interrupted):
            run.ending = True
            message = "Cancelled" if event.reason == "cancelled" else "Interrupted on the ComfyUI machine"
            self._spawn(self._end(run, "cancelled", {"code": "cancelled", "message": message}))

    async def _set_status(self, run: Run, status: str) -> None:
        if run.row["status"] == status or (run.row["status"] == "running" and status == "queued"):
            return
        row = await self._write(run.id, status=status)
        if row is not None:
            run.row = row
            self._publish_row(row, "status")

    async def _progress(self, run: Run, node: str | None, value: int, maximum: int) -> None:
        percent = run.progress()
        if percent != run.row["progress"]:
            row = await self._write(run.id, progress=percent)
            if row is not None:
                run.row = row
        message: dict[str, Any] = {"type": "progress", "execution": execution_json(run.row)}
        if node is not None:
            message.update(node=node, value=value, max=maximum)
        self.hub.publish(run.id, run.token_id, message)

    def _download(self, run: Run, outputs: tuple[OutputRef, ...]) -> None:
        for ref in outputs:
            if not ref.is_image or _source(ref) in run.stored:
                continue
            run.stored.add(_source(ref))
            task = self._spawn(self._store_output(run, ref))
            run.downloads.add(task)
            task.add_done_callback(run.downloads.discard)

    async def _store_output(self, run: Run, ref: OutputRef) -> None:
        try:
            data = await run.machine.backend.fetch_output(ref)
            await self.images.add(
                execution_id=run.id,
                token_id=run.token_id,
                node_id=ref.node_id,
                source=_source(ref),
                data=data,
            )
        except (BackendError, ValueError) as exc:
            log.warning("execution %s: output %s not kept: %s", run.id, ref.filename, exc)

    async def _end(self, run: Run, status: str, error: dict[str, Any] | None) -> None:
        try:
            if run.downloads:
                await asyncio.gather(*list(run.downloads), return_exceptions=True)
            values: dict[str, Any] = {"status": status, "error": error}
            if status == "completed":
                values["progress"] = 100
            row = await self._write(run.id, **values)
            if row is not None:
                run.row = row
                self._publish_row(row, status)
        finally:
            self._untrack(run)
            run.finished.set()

    def _publish_row(self, row: dict[str, Any], kind: str) -> None:
        self._spawn(self._publish_with_images(row, kind))

    async def _publish_with_images(self, row: dict[str, Any], kind: str) -> None:
        images = (await self.store.read(self.store.sync.images_of, [row["id"]]))[row["id"]]
        token = row.get("token_id")
        message = {"type": kind, "execution": execution_json(row, images)}
        self.hub.publish(row["id"], token, message, seq=int(row.get("seq") or 0))

    async def _write(self, execution_id: int, **values: Any) -> dict[str, Any]:
        row = await self.store.write_for(
            execution_id, self.store.sync.update_execution, execution_id, **values
        )
        if row is None:
            raise LookupError(f"execution {execution_id} vanished from the database")
        # This instance publishes this change itself: the notification of it must not publish it again.
        self.hub.note(execution_id, int(row.get("seq") or 0), str(row["status"]))
        return row
