"""The `/api/v1/comfyui` backend: a `comfydesk serve` gateway over HTTP (httpx) and one WebSocket.

The contract is `docs/api.md`. What this client adds to it:

- Execution ids are the server's, so the socket may speak of a run before its `POST .../execute` answer
  arrives; while a submit is in flight, messages about unknown executions are held and replayed once the
  answer names the id.
- Only this client's executions are turned into events (the socket carries every run of the token).
- The gateway keeps images only for a while, so on `completed` every image is downloaded at once, before
  `Completed` is emitted; `fetch_output` hands those bytes over (once) and only then asks the server.
- After a dropped socket, each unfinished run is asked for with `GET /executions/{id}`; the missed
  terminal event is emitted exactly once.
- 429 answers are waited out as `Retry-After` says (announced as a `Throttled` event), a few times at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from comfydesk.backends.base import (
    ConnectionState,
    ConnectionStatus,
    Execution,
    HistoryEntry,
    QueueChanged,
    QueueItem,
    ServerInfo,
    Throttled,
    UploadedImage,
    WorkflowSummary,
)
from comfydesk.backends.comfyui_protocol import lost_connection_message
from comfydesk.backends.reconnect import ReconnectPolicy, retry_with_backoff
from comfydesk.backends.stream import EventStream
from comfydesk.backends.v1_documents import (
    V1Run,
    catalog_from_bytes,
    events_from_execution,
    events_from_message,
    execution_number,
    history_entry_from_execution,
    message_execution_id,
    workflow_of,
    workflow_summaries,
)
from comfydesk.backends.v1_errors import data_of, execution_of
from comfydesk.backends.v1_http import THROTTLE_RETRIES, GatewayTransport, probe_gateway
from comfydesk.core.errors import (
    AuthenticationError,
    BackendError,
    OutputUnavailable,
    ServerResponseError,
)
from comfydesk.core.events import Completed, ExecutionEvent, Failed, FailureInfo, OutputRef
from comfydesk.core.graph import ApiGraph
from comfydesk.core.nodes import NodeCatalog

__all__ = ["GATEWAY_KIND", "GONE_MESSAGE", "THROTTLE_RETRIES", "V1Backend", "probe_gateway"]

log = logging.getLogger(__name__)

GATEWAY_KIND = "comfydesk-gateway"
_EARLY_LIMIT = 500  # messages about not-yet-known executions kept while a submit is in flight
GONE_MESSAGE = "the gateway no longer knows this run (it may have been restarted without its database)"


class _TokenGone(Exception):
    """Raised through the reconnect loop (which retries every BackendError) when the token is refused."""

    def __init__(self, error: AuthenticationError) -> None:
        super().__init__(error.message)
        self.error = error


class V1Backend(EventStream):
    """A connection to one `comfydesk serve` gateway (`Backend` protocol); `url` is the gateway's root."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        ca_file: str | None = None,
        verify_tls: bool = True,
        timeout: float = 30.0,
        reconnect: ReconnectPolicy | None = None,
    ) -> None:
        super().__init__()
        self._transport = GatewayTransport(
            url,
            token=token,
            ca_file=ca_file,
            verify_tls=verify_tls,
            timeout=timeout,
            on_throttled=self._throttled,
        )
        self.url = self._transport.url
        self._policy = reconnect or ReconnectPolicy()
        self._generation = 0
        self._runs: dict[str, V1Run] = {}
        self._submitting = 0
        self._early: dict[str, list[dict[str, Any]]] = {}
        self._early_count = 0
        self._images: dict[str, bytes] = {}
        self._catalog: NodeCatalog | None = None
        self._unfinished_count = 0

    # -- lifecycle ------------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Read the node list (which proves the token), open the event socket and start listening."""
        await self._open_stream(self._check_and_open, self._listen)

    async def _check_and_open(self) -> ClientConnection:
        await self.node_catalog(refresh=True)
        return await self._open_socket()

    async def close(self) -> None:
        await self._stop_stream()
        await self._transport.aclose()
        self._images.clear()
        self._end_stream()

    # -- HTTP -----------------------------------------------------------------------------------------

    def _throttled(self, event: Throttled) -> None:
        self._queue.put_nowait(event)

    async def _open_socket(self) -> ClientConnection:
        ws = await self._transport.open_socket("/events")
        self._generation += 1
        return ws

    async def _listen(self) -> None:
        try:
            while not self._closing:
                ws = self._ws
                if ws is None:
                    return
                try:
                    async for frame in ws:
                        if isinstance(frame, str):
                            self._dispatch(frame)
                except ConnectionClosed:
                    pass
                if self._closing or not await self._reconnect():
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave the app believing it is connected
            log.exception("the event stream of %s stopped", self.url)
            reason = self._transport.scrub(f"event stream stopped: {type(exc).__name__}: {exc}")
            self._set_status(ConnectionStatus(ConnectionState.DISCONNECTED, reason=reason))

    def _dispatch(self, frame: str) -> None:
        try:
            msg = json.loads(frame)
        except ValueError:
            log.warning("ignoring a progress message that is not JSON from %s", self.url)
            return
        eid = message_execution_id(msg)
        if eid is None:
            return
        run = self._runs.get(eid)
        if run is None:
            # Possibly the run a pending submit is about to name: keep it until the POST answers.
            if self._submitting and self._early_count < _EARLY_LIMIT:
                self._early.setdefault(eid, []).append(msg)
                self._early_count += 1
            return
        self._deliver(events_from_message(run, msg, self.url, log_bad=log.warning))

    def _deliver(self, events: Sequence[ExecutionEvent]) -> None:
        for event in events:
            if isinstance(event, Completed) and event.outputs:
                self._spawn(self._complete(event))
            else:
                self._queue.put_nowait(event)
        self._publish_queue()

    def _publish_queue(self) -> None:
        remaining = sum(1 for r in self._runs.values() if not r.terminal)
        if remaining != self._unfinished_count:
            self._unfinished_count = remaining
            self._queue.put_nowait(QueueChanged(remaining))

    async def _complete(self, event: Completed) -> None:
        """Download every image of a finished run before announcing it: the server's copies expire."""
        await asyncio.gather(*(self._download(ref) for ref in event.outputs if ref.url))
        self._queue.put_nowait(event)

    async def _download(self, ref: OutputRef) -> None:
        try:
            self._images[ref.url] = await self._transport.image(ref)
        except BackendError as exc:  # fetch_output will ask again, and say why when it cannot
            log.warning("could not keep %s from %s: %s", ref.filename, self.url, exc)

    async def _reconnect(self) -> bool:
        """Retry the socket per the policy; on success reconcile every unfinished run. False: gave up."""
        self._ws = None

        async def attempt() -> ClientConnection:
            try:
                ws = await self._open_socket()
            except AuthenticationError as exc:
                raise _TokenGone(exc) from None
            try:
                await self._reconcile()
            except BaseException as exc:
                # Dropped, not closed (as ComfyUIBackend._reconnect does, finding D2): messages that came
                # while we reconciled may have paused reading, and a closing handshake would then wait
                # out websockets' close timeout (10 s) before the next attempt.
                ws.transport.abort()
                await ws.close()
                if isinstance(exc, AuthenticationError):
                    raise _TokenGone(exc) from None
                raise
            return ws

        try:
            ws = await retry_with_backoff(
                self._policy,
                attempt,
                self._set_status,
                closing=lambda: self._closing,
                what=self.url,
                giving_up=self._fail_unfinished,
            )
        except _TokenGone as gone:
            # Retrying cannot help once the token is refused (revoked meanwhile): say so and stop.
            reason = gone.error.message
            self._fail_unfinished(reason, message=f"{reason}; the outcome of this run is unknown")
            self._set_status(ConnectionStatus(ConnectionState.DISCONNECTED, reason=reason))
            return False
        if ws is None:
            return False
        self._ws = ws
        return True

    def _fail_unfinished(self, reason: str, *, message: str | None = None) -> None:
        """Giving up the connection: every run still open ends once, as failed with an unknown outcome."""
        unfinished = [r for r in self._runs.values() if not r.terminal]
        log.warning("giving up on %s (%s); %d run(s) left open", self.url, reason, len(unfinished))
        text = message or lost_connection_message(self.url)
        for run in unfinished:
            run.terminal = True
            self._queue.put_nowait(Failed(run.execution_id, FailureInfo(text)))
        self._publish_queue()

    async def _reconcile(self, runs: Sequence[V1Run] | None = None) -> None:
        """Ask the server what became of runs whose messages we may have missed."""
        todo = [r for r in (self._runs.values() if runs is None else runs) if not r.terminal]
        for run in list(todo):
            eid = run.execution_id
            resp = await self._transport.call(
                "GET", f"/executions/{quote(eid, safe='')}", what=f"checking run {eid}", ok=(200, 404)
            )
            if run.terminal:  # the socket told us while we were asking
                continue
            if resp.status_code == 404:
                run.terminal = True
                self._deliver([Failed(eid, FailureInfo(GONE_MESSAGE))])
                continue
            execution = execution_of(data_of(resp.content, f"checking run {eid}"), f"checking run {eid}")
            self._deliver(events_from_execution(run, execution, self.url))

    async def _reconcile_quietly(self, runs: Sequence[V1Run]) -> None:
        try:
            await self._reconcile(runs)
        except BackendError as exc:
            log.info("checking runs after submit failed: %s", exc)

    # -- server facts ---------------------------------------------------------------------------------

    async def server_info(self) -> ServerInfo:
        """Kind `comfydesk-gateway`; the version is the one its OpenAPI document states, if it has one."""
        version, title = "", ""
        with contextlib.suppress(BackendError, ValueError):
            resp = await self._transport.call(
                "GET", "/api/v1/openapi.json", what="reading the API description", ok=(200, 404), api=False
            )
            if resp.status_code == 200:
                info = json.loads(resp.content).get("info")
                if isinstance(info, dict):
                    version = str(info.get("version") or "")
                    title = str(info.get("title") or "")
        return ServerInfo(
            kind=GATEWAY_KIND,
            version=version,
            url=self.url,
            name=self.url.split("://", 1)[-1],
            raw={"title": title} if title else {},
        )

    async def node_catalog(self, *, refresh: bool = False) -> NodeCatalog:
        """Every node type of the gateway's ComfyUI machines, parsed off the event loop; cached."""
        if self._catalog is None or refresh:
            resp = await self._transport.call("GET", "/nodes", what="reading the node list")
            self._catalog = await asyncio.to_thread(catalog_from_bytes, resp.content)
        return self._catalog

    # -- workflows ------------------------------------------------------------------------------------

    async def list_workflows(self) -> list[WorkflowSummary]:
        return workflow_summaries(
            await self._transport.data("GET", "/workflows", what="listing the workflows")
        )

    async def get_workflow(self, workflow_id: str) -> Any:
        """The `/api/v1` workflow document `{id, name, description, nodes, ...}`."""
        what = f"reading workflow {workflow_id}"
        data = await self._transport.data("GET", f"/workflows/{quote(str(workflow_id), safe='')}", what=what)
        workflow = data.get("workflow")
        if not isinstance(workflow, dict):
            raise ServerResponseError(f"{what}: the answer carries no workflow", body=str(data)[:2000])
        return workflow

    async def create_workflow(
        self, name: str, description: str, nodes: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Publish a new workflow; returns it as stored (with its `id`). 422 -> ValidationError."""
        body = {"name": name, "description": description, "nodes": [dict(n) for n in nodes]}
        data = await self._transport.data(
            "POST", "/workflows", what=f"publishing '{name}'", json=body, ok=(200, 201)
        )
        return workflow_of(data, f"publishing '{name}'")

    async def update_workflow(
        self, workflow_id: str, name: str, description: str, nodes: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Replace a stored workflow (name, description and nodes); returns it as stored."""
        body = {"name": name, "description": description, "nodes": [dict(n) for n in nodes]}
        what = f"updating workflow {workflow_id}"
        data = await self._transport.data(
            "PUT", f"/workflows/{quote(str(workflow_id), safe='')}", what=what, json=body
        )
        return workflow_of(data, what)

    async def delete_workflow(self, workflow_id: str) -> None:
        what = f"deleting workflow {workflow_id}"
        await self._transport.call("DELETE", f"/workflows/{quote(str(workflow_id), safe='')}", what=what)

    # -- runs -----------------------------------------------------------------------------------------

    async def submit(
        self,
        graph: ApiGraph | None = None,
        *,
        workflow_id: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        front: bool = False,
        ui_workflow: Mapping[str, Any] | None = None,
        prompt_id: str | None = None,
    ) -> Execution:
        """Execute stored workflow `workflow_id` with placeholder `inputs`; its events follow `Queued`.

        A gateway runs only the workflows stored on it and chooses its own execution ids: `graph`, `front`,
        `ui_workflow` and `prompt_id` are not sent."""
        if workflow_id is None:
            raise ValueError(
                "a comfydesk gateway runs only the workflows stored on it: pass workflow_id "
                "(publish the graph first with create_workflow)"
            )
        what = f"starting workflow {workflow_id}"
        generation = self._generation
        self._submitting += 1
        try:
            data = await self._transport.data(
                "POST",
                f"/workflows/{quote(str(workflow_id), safe='')}/execute",
                what=what,
                json={"inputs": dict(inputs or {})},
                ok=(200, 201, 202),
            )
            execution = execution_of(data, what)
        except BaseException:
            self._end_submit(None)
            raise
        eid = str(execution["id"])
        early = self._end_submit(eid)
        run = self._runs.get(eid) or V1Run(eid, str(workflow_id))
        self._runs[eid] = run
        self._deliver(events_from_execution(run, execution, self.url))
        for msg in early:
            self._deliver(events_from_message(run, msg, self.url, log_bad=log.warning))
        if not run.terminal and (
            generation != self._generation or self._status.state is not ConnectionState.CONNECTED
        ):
            # The socket was down or replaced while we were posting: messages may be lost.
            self._spawn(self._reconcile_quietly([run]))
        return Execution(eid, None, graph, str(workflow_id))

    def _end_submit(self, eid: str | None) -> list[dict[str, Any]]:
        """A submit is over: the messages held for its run; once none is in flight, drop the rest (they
        were other clients' runs, or a refused one)."""
        self._submitting -= 1
        early = self._early.pop(eid, []) if eid is not None else []
        if not self._submitting:
            self._early.clear()
            self._early_count = 0
        return early

    async def cancel(self, execution_id: str) -> None:
        """Cancel a queued or running execution (a finished one stays as it is)."""
        what = f"cancelling run {execution_id}"
        data = await self._transport.data(
            "POST", f"/executions/{quote(execution_id, safe='')}/cancel", what=what
        )
        run = self._runs.get(execution_id)
        if run is not None:
            self._deliver(events_from_execution(run, execution_of(data, what), self.url))

    async def interrupt(self) -> None:
        """Cancel this client's running executions (other people's runs are not ours to stop)."""
        for run in [r for r in self._runs.values() if not r.terminal and r.started]:
            await self.cancel(run.execution_id)

    async def clear_queue(self) -> None:
        """Cancel this client's executions that have not started yet; running ones go on."""
        for run in [r for r in self._runs.values() if not r.terminal and not r.started]:
            await self.cancel(run.execution_id)

    async def queue(self) -> list[QueueItem]:
        """This client's unfinished executions: running first, then waiting, each by id."""
        open_runs = [r for r in self._runs.values() if not r.terminal]
        ordered = sorted(open_runs, key=lambda r: (not r.started, execution_number(r.execution_id)))
        return [
            QueueItem(r.execution_id, execution_number(r.execution_id), r.started, True, i)
            for i, r in enumerate(ordered)
        ]

    async def history(self, execution_id: str | None = None) -> list[HistoryEntry]:
        """One execution (`GET /executions/{id}`) or the token's latest 50, newest first."""
        if execution_id is not None:
            what = f"reading run {execution_id}"
            data = await self._transport.data("GET", f"/executions/{quote(execution_id, safe='')}", what=what)
            return [history_entry_from_execution(execution_of(data, what), self.url)]
        data = await self._transport.data("GET", "/executions", what="listing runs", params={"limit": 50})
        items = data.get("executions")
        return [
            history_entry_from_execution(e, self.url)
            for e in (items if isinstance(items, list) else ())
            if isinstance(e, dict) and "id" in e
        ]

    async def list_executions(
        self, *, status: str | None = None, workflow_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The token's executions as the server describes them (newest first)."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if workflow_id:
            params["workflow_id"] = workflow_id
        data = await self._transport.data("GET", "/executions", what="listing runs", params=params)
        items = data.get("executions")
        return [e for e in (items if isinstance(items, list) else ()) if isinstance(e, dict)]

    # -- files ----------------------------------------------------------------------------------------

    async def fetch_output(self, ref: OutputRef) -> bytes:
        """The image's bytes: the copy taken when the run completed (handed over once), else downloaded."""
        if not ref.url:
            raise OutputUnavailable(f"output {ref.filename or ref.kind!r} has no address on the gateway")
        data = self._images.pop(ref.url, None)
        return data if data is not None else await self._transport.image(ref)

    async def upload_image(
        self, data: bytes, filename: str, *, subfolder: str = "", overwrite: bool = False
    ) -> UploadedImage:
        raise BackendError(
            "this gateway does not accept uploads: its workflows take text and number inputs only",
            hint="Use a workflow without an image input, or connect to the ComfyUI server directly.",
        )
