"""The native ComfyUI backend: HTTP for requests, one WebSocket for events, reconnect with reconciliation.

Facts about the protocol come from the captures in `fixtures/comfyui/README.md` (ComfyUI 0.8.0). In short:
we choose each prompt id ourselves (so events that race the POST answer are still ours), negotiate type-4
preview frames, treat `execution_success/_error/_interrupted` as the end of a run, and after a dropped
socket ask `/queue` and `/history/{id}` what happened meanwhile, delivering every output exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from comfydesk.backends.base import (
    BackendEvent,
    ConnectionState,
    ConnectionStatus,
    Execution,
    HistoryEntry,
    QueueItem,
    ServerInfo,
    UploadedImage,
    WorkflowSummary,
)
from comfydesk.backends.comfyui_documents import (
    catalog_from_bytes,
    prompt_error,
    queue_items_from_json,
    server_info_from_stats,
    templates_from_index,
    userdata_workflows,
)
from comfydesk.backends.comfyui_files import ServerFiles
from comfydesk.backends.comfyui_history import HistoryReconciler
from comfydesk.backends.comfyui_http import (
    RequestUnanswered,
    ServerAddress,
    TransportConfig,
    auth_headers,
    json_body,
    make_ssl_context,
)
from comfydesk.backends.comfyui_protocol import (
    FEATURE_FLAGS_MESSAGE,
    ProtocolMapper,
    RunState,
    history_entry_from_json,
    history_shows_finished,
    lost_connection_message,
    safe_output_name,
)
from comfydesk.backends.comfyui_templates import TemplateCategory, catalog_from_index
from comfydesk.backends.reconnect import ReconnectPolicy, retry_with_backoff
from comfydesk.backends.stream import EventStream
from comfydesk.core.errors import (
    AuthenticationError,
    BackendError,
    ServerResponseError,
    ServerUnreachable,
)
from comfydesk.core.events import (
    TERMINAL_EVENTS,
    Failed,
    FailureInfo,
    Interrupted,
    OutputRef,
    Queued,
)
from comfydesk.core.graph import ApiGraph
from comfydesk.core.limits import printable
from comfydesk.core.nodes import NodeCatalog

__all__ = ["ComfyUIBackend", "ReconnectPolicy", "safe_output_name"]

log = logging.getLogger(__name__)

_MAX_FRAME = 64 * 1024 * 1024  # previews of big images are large; ComfyUI itself has no cap
_FRAMES_PER_TURN = 256  # frames mapped in a row before the listener lets the event loop run
#: After an unanswered `POST /prompt`, how often the server is asked whether it holds the prompt.
_LATE_CHECK_INTERVAL = 0.2


class ComfyUIBackend(EventStream):
    """A connection to one ComfyUI server (`Backend` protocol)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        ca_file: str | None = None,
        verify_tls: bool = True,
        timeout: float = 30.0,
        client_id: str | None = None,
        reconnect: ReconnectPolicy | None = None,
        preview_metadata: bool = True,
    ) -> None:
        super().__init__()
        address = ServerAddress.parse(url)
        basic = basic_auth or address.userinfo
        secrets = tuple(s for s in (token, *(basic or ())) if s)
        self.url = address.display
        self.client_id = client_id or str(uuid.uuid4())
        self._address = address
        self._transport = TransportConfig(
            address=address,
            headers=auth_headers(token, basic),
            ssl_context=make_ssl_context(ca_file=ca_file, verify_tls=verify_tls, secure=address.secure),
            timeout=timeout,
            secrets=secrets,
        )
        self._policy = reconnect or ReconnectPolicy()
        # How long to look for a prompt whose POST went unanswered: twice the timeout, 2 s to 10 s.
        self._late_check_budget = min(max(2 * timeout, 2.0), 10.0)
        # False keeps ComfyUI's legacy type-1 preview frames (attributed to the executing node).
        self._preview_metadata = preview_metadata
        self._http: httpx.AsyncClient | None = None
        self._prefix: str | None = None
        self._mapper = ProtocolMapper()
        self._generation = 0
        self._held: dict[str, list[BackendEvent]] = {}  # events waiting for their run's Queued
        self._submitting: set[str] = set()
        self._deleting: set[str] = set()  # pending runs we are deleting: `_mark_cancelled` settles them
        self._history = HistoryReconciler(
            self._get_json, self._queued_ids, self._emit, self._submitting, self._deleting
        )
        self._catalog: NodeCatalog | None = None
        self._files = ServerFiles(self._request)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Probe the server, open the WebSocket and start listening; raises ServerUnreachable."""
        await self._open_stream(self._probe_and_open, self._listen)

    async def _probe_and_open(self) -> ClientConnection:
        await self._ensure_prefix()
        return await self._open_socket()

    async def close(self) -> None:
        await self._stop_stream()  # from here on no request starts (`_client`)
        await self._transport.in_flight.end_all()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._end_stream()

    # -- HTTP -----------------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._closing:
            # A request still pending when the backend was closed must not open a new client that no one
            # will ever close, nor a new connection on the one being closed (it would leak its sockets).
            raise ServerUnreachable(self.url, "the connection was closed")
        if self._http is None:
            self._http = self._transport.client()
        return self._http

    async def _ensure_prefix(self) -> str:
        """`/api` when the server mirrors its routes there (ComfyUI does), else the bare routes."""
        if self._prefix is None:
            resp = await self._transport.request(self._client(), "GET", "/api/system_stats", ok=())
            ok = resp.status_code == 200
            if ok:
                try:
                    ok = isinstance(json.loads(resp.content), dict)
                except (ValueError, RecursionError):
                    ok = False
            self._prefix = "/api" if ok else ""
        return self._prefix

    async def _request(
        self, method: str, route: str, *, ok: tuple[int, ...] = (200,), api: bool = True, **kwargs: Any
    ) -> httpx.Response:
        prefix = await self._ensure_prefix() if api else ""
        return await self._transport.request(self._client(), method, prefix + route, ok=ok, **kwargs)

    async def _get_json(self, route: str, *, api: bool = True, **kwargs: Any) -> Any:
        resp = await self._request("GET", route, api=api, **kwargs)
        return json_body(resp, f"GET {route.split('?')[0]}")

    # -- WebSocket ------------------------------------------------------------------------------------

    async def _open_socket(self) -> ClientConnection:
        prefix = await self._ensure_prefix()
        route = f"{prefix}/ws".lstrip("/")
        ws_url = f"{self._address.ws_base}{route}?clientId={quote(self.client_id, safe='')}"
        try:
            ws = await connect(
                ws_url,
                additional_headers=self._transport.headers,
                ssl=self._transport.ssl_context if ws_url.startswith("wss:") else None,
                open_timeout=self._transport.connect_timeout,
                max_size=_MAX_FRAME,
                # No permessage-deflate: previews are JPEG or PNG already, and deflating every progress
                # message cost the server and this client more CPU than the bytes saved are worth.
                compression=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise AuthenticationError(self.url, status) from None
            raise ServerUnreachable(self.url, f"the WebSocket handshake was answered HTTP {status}") from None
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise self._transport.unreachable(exc, "WebSocket", connecting=True) from None
        if self._preview_metadata:
            try:
                await ws.send(json.dumps(FEATURE_FLAGS_MESSAGE))
            except ConnectionClosed as exc:
                raise ServerUnreachable(self.url, "the WebSocket closed during the handshake") from exc
        self._mapper.reset_connection()
        self._generation += 1
        return ws

    async def _listen(self) -> None:
        try:
            await self._listen_and_reconnect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave the app believing it is connected
            log.exception("the event stream of %s stopped", self.url)
            reason = self._transport.scrub(f"event stream stopped: {type(exc).__name__}: {exc}")
            self._set_status(ConnectionStatus(ConnectionState.DISCONNECTED, reason=reason))

    async def _listen_and_reconnect(self) -> None:
        while not self._closing:
            ws = self._ws
            if ws is None:
                return
            try:
                in_a_row = 0
                async for frame in ws:
                    self._dispatch(frame)
                    in_a_row += 1
                    if in_a_row >= _FRAMES_PER_TURN:
                        # Frames already received come without a pause: under a flood, let the loop (the
                        # UI, the consumer of these events) run between slices of the backlog.
                        in_a_row = 0
                        await asyncio.sleep(0)
            except ConnectionClosed:
                pass
            if self._closing or not await self._reconnect():
                return

    def _dispatch(self, frame: str | bytes) -> None:
        """Map one frame to events; a message we cannot make sense of is logged and skipped, never fatal."""
        try:
            if isinstance(frame, str):
                events = self._mapper.feed_text(frame)
            else:
                events = self._mapper.feed_binary(frame)
        except Exception as exc:  # RecursionError and MemoryError-free bugs alike: one bad message only
            head = printable(frame[:120] if isinstance(frame, str) else repr(frame[:32]))
            log.warning(
                "skipped a WebSocket message from %s that could not be read (%s): %s",
                self.url,
                type(exc).__name__,
                head,
            )
            return
        for event in events:
            self._emit(event)

    def _emit(self, event: BackendEvent) -> None:
        pid = getattr(event, "execution_id", None)
        if pid is not None and pid in self._held:
            self._held[pid].append(event)
            return
        if isinstance(event, TERMINAL_EVENTS):
            run = self._mapper.runs.get(event.execution_id)
            if run is not None and run.gap:
                # Messages may have been lost while the socket was down; fill in from /history first.
                self._spawn(self._history.finish_after_gap(run, event))
                return
        self._queue.put_nowait(event)

    async def _reconnect(self) -> bool:
        """Retry the socket per the policy; on success reconcile every unfinished run. False: gave up."""
        for run in self._mapper.unfinished():
            run.gap = True
        self._ws = None

        async def attempt() -> ClientConnection:
            ws = await self._open_socket()
            try:
                await self._reconcile()
            except BaseException:
                # Dropped, not closed: while we reconciled, a busy run's messages filled the socket's
                # buffer and reading paused, so a closing handshake would wait out its 10 s timeout.
                ws.transport.abort()
                await ws.close()
                raise
            return ws

        ws = await retry_with_backoff(
            self._policy,
            attempt,
            self._set_status,
            closing=lambda: self._closing,
            what=self.url,
            giving_up=self._fail_unfinished,
        )
        if ws is None:
            return False
        self._ws = ws
        return True

    def _fail_unfinished(self, reason: str) -> None:
        """Giving up the connection: every run still open ends once, as failed with an unknown outcome."""
        log.warning(
            "giving up on %s (%s); %d run(s) left open", self.url, reason, len(self._mapper.unfinished())
        )
        for run in self._mapper.unfinished():
            run.terminal = True
            run.gap = False  # no history top-up: the server cannot be reached
            self._emit(Failed(run.prompt_id, FailureInfo(lost_connection_message(self.url))))

    async def _reconcile(self, runs: list[RunState] | None = None) -> None:
        """Ask the server what became of runs whose messages we may have missed."""
        await self._history.reconcile(runs or self._mapper.unfinished())

    async def _queued_ids(self) -> set[str]:
        return {q.execution_id for q in await self.queue()}

    # -- server facts ---------------------------------------------------------------------------------

    async def server_info(self) -> ServerInfo:
        doc = await self._get_json("/system_stats")
        return server_info_from_stats(doc, url=self.url, name=self.url.split("://", 1)[-1])

    def adopt_catalog(self, catalog: NodeCatalog) -> None:
        """Take `catalog` as this server's, read moments ago (`comfydesk.backends.prefetch`): `node_catalog`
        answers it instead of asking again (until `refresh`)."""
        if self._catalog is None:
            self._catalog = catalog

    async def node_catalog(self, *, refresh: bool = False) -> NodeCatalog:
        """Every node definition of the server, parsed off the event loop; cached until `refresh`."""
        if self._catalog is None or refresh:
            resp = await self._request("GET", "/object_info")
            self._catalog = await asyncio.to_thread(catalog_from_bytes, resp.content)
        return self._catalog

    # -- workflows ------------------------------------------------------------------------------------

    async def list_workflows(self) -> list[WorkflowSummary]:
        """Saved workflows (`userdata:<path>`) then templates (`template:<name>`)."""
        out: list[WorkflowSummary] = []
        resp = await self._request(
            "GET",
            "/userdata",
            ok=(200, 404),
            params={"dir": "workflows", "recurse": "true", "split": "false"},
        )
        if resp.status_code == 200:
            out += userdata_workflows(json_body(resp, "GET /userdata"))
        resp = await self._request("GET", "/templates/index.json", ok=(200, 404), api=False)
        if resp.status_code == 200:
            out += templates_from_index(json_body(resp, "GET /templates/index.json"))
        return out

    async def get_workflow(self, workflow_id: str) -> Any:
        kind, _, name = workflow_id.partition(":")
        if not _:
            kind, name = "userdata", workflow_id
        if kind == "template":
            route, api = f"/templates/{quote(name, safe='')}.json", False
        elif kind == "userdata":
            route, api = f"/userdata/{quote('workflows/' + name, safe='')}", True
        else:
            raise ValueError(f"unknown workflow id {workflow_id!r}")
        resp = await self._request("GET", route, ok=(200, 404), api=api)
        if resp.status_code == 404:
            raise ServerResponseError(f"the server has no workflow {workflow_id!r}", status=404)
        return json_body(resp, f"GET workflow {workflow_id}")

    async def template_catalog(self) -> list[TemplateCategory]:
        """The template catalogue (`/templates/index.json`); empty when the server ships none."""
        resp = await self._request("GET", "/templates/index.json", ok=(200, 404), api=False)
        if resp.status_code == 404:
            return []
        return catalog_from_index(json_body(resp, "GET /templates/index.json"))

    async def fetch_template_thumbnail(self, name: str, *, ext: str = "webp") -> bytes | None:
        """A template's first thumbnail (`/templates/<name>-1.<ext>`), None when the server has none."""
        route = f"/templates/{quote(name, safe='')}-1.{quote(ext, safe='')}"
        resp = await self._request("GET", route, ok=(200, 404), api=False)
        return resp.content if resp.status_code == 200 else None

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
        """POST the graph with our own prompt id; its events follow `Queued` on the event stream.

        With `ui_workflow` (the UI-format document the graph was converted from) the request carries
        `extra_data.extra_pnginfo.workflow`, so images the server saves embed the workflow, as they do when
        ComfyUI's own frontend queues them. `prompt_id` lets a caller record the id before posting (the
        gateway does, so that a restart can find the run on the server and never submit it twice).
        """
        if graph is None:
            raise ValueError("the ComfyUI backend runs API graphs: pass `graph` (resolve workflows first)")
        pid = prompt_id or str(uuid.uuid4())
        run = self._mapper.track(pid)
        self._held[pid] = []
        self._submitting.add(pid)
        generation = self._generation
        body: dict[str, Any] = {"prompt": graph.to_prompt(), "client_id": self.client_id, "prompt_id": pid}
        if front:
            body["front"] = True
        if ui_workflow is not None:
            body["extra_data"] = {"extra_pnginfo": {"workflow": dict(ui_workflow)}}
        try:
            try:
                resp = await self._request("POST", "/prompt", json=body, ok=())
            except RequestUnanswered as exc:
                # The POST may have reached the server: ask before calling the run failed.
                await self._confirm_submitted(pid, exc)
                doc: Any = None  # it did take it (late); its events were held meanwhile
            else:
                if resp.status_code != 200:
                    raise prompt_error(resp.status_code, self._transport.scrub(resp.text), graph)
                doc = json_body(resp, "POST /prompt")
        except BaseException:
            self._mapper.forget(pid)
            self._held.pop(pid, None)
            self._submitting.discard(pid)
            raise
        self._submitting.discard(pid)
        number = doc.get("number") if isinstance(doc, dict) else None
        try:
            position = await self._position_of(pid)
        except BackendError:
            position = None
        held = self._held.pop(pid, [])
        self._queue.put_nowait(Queued(pid, position))
        for event in held:
            self._emit(event)
        if generation != self._generation and not run.terminal:
            # The socket was replaced while we were posting: messages may be lost.
            run.gap = True
            self._spawn(self._reconcile_quietly([run]))
        return Execution(pid, number if isinstance(number, int) else None, graph, workflow_id)

    async def _confirm_submitted(self, pid: str, unanswered: RequestUnanswered) -> None:
        """After `POST /prompt` went unanswered: return when the server holds `pid` (queued, running or in
        its history), asking `/queue` and `/history/{pid}` for up to `_late_check_budget` seconds (a late
        request may still be on its way in). Raises `unanswered` when the server answered and has no
        such prompt, and a ServerUnreachable saying the outcome is unknown when it could not be asked."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._late_check_budget
        answered = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                while True:
                    try:
                        if pid in await self._queued_ids():
                            break
                        if await self._history.history_entry(pid) is not None:
                            break
                        answered = True
                    except BackendError as exc:
                        log.info("asking %s whether it took prompt %s: %s", self.url, pid, exc)
                    await asyncio.sleep(_LATE_CHECK_INTERVAL)
                log.info("%s took prompt %s after its POST went unanswered; following it", self.url, pid)
                return
        if answered:
            raise unanswered
        raise ServerUnreachable(
            self.url,
            f"{unanswered.cause}; the server could not be asked whether it took the run, so the outcome "
            "is unknown (it may still run there)",
        ) from None

    async def follow(self, prompt_id: str) -> bool:
        """Take up a run submitted earlier with this client id (before a restart of ours): its events follow
        on the stream, or come from `/history` when it ended meanwhile. False when the server has no trace
        of it (never submitted, or lost in a restart of the server); then nothing is tracked."""
        run = self._mapper.runs.get(prompt_id)
        if run is not None:
            return True
        if prompt_id not in await self._queued_ids():
            entry = await self._history.history_entry(prompt_id)
            if entry is None or not history_shows_finished(entry):
                return False
        run = self._mapper.track(prompt_id)
        run.gap = True
        await self._reconcile([run])
        return True

    async def _reconcile_quietly(self, runs: list[RunState]) -> None:
        try:
            await self._reconcile(runs)
        except BackendError as exc:
            log.info("reconciling after submit failed: %s", exc)

    async def _position_of(self, pid: str) -> int:
        for item in await self.queue():
            if item.execution_id == pid:
                return item.position
        return 0  # already running or done

    async def cancel(self, execution_id: str) -> None:
        """Delete a pending run from the queue, or interrupt it when it is running."""
        item = _find(await self.queue(), execution_id)
        if item is None:
            return
        if item.running:
            await self._request("POST", "/interrupt", json={"prompt_id": execution_id})
            return
        self._deleting.add(execution_id)
        try:
            await self._request("POST", "/queue", json={"delete": [execution_id]})
            after = _find(await self.queue(), execution_id)
            if after is not None and after.running:
                await self._request("POST", "/interrupt", json={"prompt_id": execution_id})
            elif after is None:
                await self._mark_cancelled(execution_id)
        finally:
            self._deleting.discard(execution_id)

    async def interrupt(self) -> None:
        """Interrupt whatever the server is running now (anyone's run)."""
        await self._request("POST", "/interrupt")

    async def clear_queue(self) -> None:
        """Remove every pending run (anyone's); the running one goes on."""
        before = await self.queue()
        pending = {item.execution_id for item in before if not item.running}
        self._deleting.update(pending)
        try:
            await self._request("POST", "/queue", json={"clear": True})
            remaining = {q.execution_id for q in await self.queue()}
            for pid in pending - remaining:
                await self._mark_cancelled(pid)
        finally:
            self._deleting.difference_update(pending)

    async def _mark_cancelled(self, pid: str) -> None:
        """A run of ours left the queue without running: the socket will never say so, we do."""
        run = self._mapper.runs.get(pid)
        if run is None or run.terminal or run.started:
            return
        doc = await self._get_json(f"/history/{quote(pid, safe='')}")
        if isinstance(doc, dict) and doc.get(pid):
            return  # it ran after all; its own messages tell the story
        if not run.terminal:
            run.terminal = True
            run.gap = False  # it never ran: no output to look for in /history (that would wait ~6 s)
            self._emit(Interrupted(pid, None, reason="cancelled"))

    async def queue(self) -> list[QueueItem]:
        return queue_items_from_json(await self._get_json("/queue"), self.client_id)

    async def history(self, execution_id: str | None = None) -> list[HistoryEntry]:
        route = "/history" if execution_id is None else f"/history/{quote(execution_id, safe='')}"
        doc = await self._get_json(route)
        if not isinstance(doc, dict):
            raise ServerResponseError(f"GET {route} did not return an object", body=str(doc)[:500])
        return [history_entry_from_json(str(pid), entry) for pid, entry in doc.items()]

    # -- files ----------------------------------------------------------------------------------------

    async def fetch_output(self, ref: OutputRef) -> bytes:
        """The bytes of an output file (`/view`); OutputUnavailable when the server no longer has it."""
        return await self._files.fetch_output(ref)

    async def upload_image(
        self, data: bytes, filename: str, *, subfolder: str = "", overwrite: bool = False
    ) -> UploadedImage:
        """Upload an input image once per content (sha256) per session; repeats return the first answer."""
        return await self._files.upload_image(data, filename, subfolder=subfolder, overwrite=overwrite)


def _find(items: list[QueueItem], pid: str) -> QueueItem | None:
    return next((q for q in items if q.execution_id == pid), None)
