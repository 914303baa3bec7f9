"""V1Backend against the real gateway (`comfydesk serve` on a thread, in front of the demo engine), over
real sockets: publishing, running, events, images, cancelling, errors, rate limits, reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from comfydesk.backends.base import BackendEvent, ConnectionChanged, ConnectionState, Throttled
from comfydesk.backends.reconnect import ReconnectPolicy
from comfydesk.backends.v1 import GATEWAY_KIND, V1Backend
from comfydesk.backends.v1_errors import (
    BackendUnavailable,
    GatewayError,
    GatewayExecutionError,
    TokenRejected,
)
from comfydesk.core.errors import AuthenticationError, OutputUnavailable, ValidationError
from comfydesk.core.events import (
    TERMINAL_EVENTS,
    Completed,
    ExecutionEvent,
    Failed,
    Interrupted,
    NodeStarted,
    Preview,
    Progress,
    Queued,
    Started,
)
from comfydesk.core.workflow import load_workflow
from comfydesk.gateway.testing import RunningGateway, start_gateway

FAST = ReconnectPolicy(initial=0.02, factor=2, max_delay=0.2, jitter=0.1)
TIMEOUT = 20.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BLOG_POST_NODES = [
    {
        "id": "text_to_image",
        "type": "text_to_image",
        "inputs": {"prompt": "{prompt}", "negative_prompt": "{negative_prompt}"},
    }
]
INPUTS = {"prompt": "A beautiful landscape", "negative_prompt": "ugly, blurry"}


class Recorder:
    """Collects a backend's event stream; tests await conditions with a timeout, never sleep."""

    def __init__(self, backend: V1Backend) -> None:
        self.events: list[BackendEvent] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._pump(backend))

    async def _pump(self, backend: V1Backend) -> None:
        async for event in backend.events():
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait(self, pred: Callable[[BackendEvent], bool], timeout: float = TIMEOUT) -> BackendEvent:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: any(pred(e) for e in self.events))

        await asyncio.wait_for(until(), timeout)
        return next(e for e in self.events if pred(e))

    async def end_of(self, eid: str, timeout: float = TIMEOUT) -> ExecutionEvent:
        event = await self.wait(lambda e: isinstance(e, TERMINAL_EVENTS) and e.execution_id == eid, timeout)
        assert isinstance(event, TERMINAL_EVENTS)
        return event

    def of(self, eid: str) -> list[ExecutionEvent]:
        return [e for e in self.events if getattr(e, "execution_id", None) == eid]  # type: ignore[misc]

    def states(self) -> list[ConnectionState]:
        return [e.status.state for e in self.events if isinstance(e, ConnectionChanged)]

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def kinds(events: list[ExecutionEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def assert_exactly_once(rec: Recorder, eid: str) -> None:
    events = rec.of(eid)
    assert sum(isinstance(e, Queued) for e in events) == 1, kinds(events)
    assert sum(isinstance(e, TERMINAL_EVENTS) for e in events) == 1, kinds(events)
    assert isinstance(events[-1], TERMINAL_EVENTS), kinds(events)
    assert sum(isinstance(e, Started) for e in events) <= 1, kinds(events)


async def _until(check: Callable[[], bool], timeout: float = TIMEOUT, what: str = "") -> None:
    """Wait for a condition outside the event stream (the server's own state), polling briefly."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)  # polling interval of a condition wait, not a fixed wait


def _server_status(gw: RunningGateway, token: str, eid: str) -> str:
    resp = httpx.get(
        f"{gw.url}/api/v1/comfyui/executions/{eid}", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    return str(resp.json()["data"]["execution"]["status"])


@pytest.fixture
def slow_gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway whose demo engine takes ~0.25 s per step (8 steps a run): time to cancel or cut."""
    running = start_gateway(data_dir=tmp_path / "slow-gateway", demo_step_delay=0.25)
    try:
        yield running
    finally:
        running.stop()


async def _publish(backend: V1Backend, name: str = "Blog Post Image") -> str:
    wf = await backend.create_workflow(name, "Generate blog post header image", BLOG_POST_NODES)
    return str(wf["id"])


# ------------------------------------------------------------------------------------------------ a run


async def test_publish_run_and_fetch_the_image(gateway: RunningGateway) -> None:
    backend = V1Backend(gateway.url, token=gateway.create_token("artist"), reconnect=FAST)
    rec = Recorder(backend)
    try:
        await backend.connect()
        info = await backend.server_info()
        assert info.kind == GATEWAY_KIND and info.url == gateway.url
        catalog = await backend.node_catalog()
        assert "text_to_image" in catalog
        assert catalog["text_to_image"].input("prompt") is not None

        wid = await _publish(backend)
        summaries = await backend.list_workflows()
        assert [(s.id, s.name, s.source) for s in summaries] == [(wid, "Blog Post Image", "v1")]
        workflow = load_workflow(await backend.get_workflow(wid), catalog=catalog)
        assert (workflow.format, workflow.workflow_id, workflow.name) == ("v1", wid, "Blog Post Image")

        execution = await backend.submit(workflow_id=wid, inputs=INPUTS)
        assert execution.workflow_id == wid and execution.id.isdigit()
        done = await rec.end_of(execution.id)
        events = rec.of(execution.id)
        assert_exactly_once(rec, execution.id)
        order = kinds(events)
        assert order[0] == "Queued" and order[1] == "Started" and order[-1] == "Completed", order
        steps = [e for e in events if isinstance(e, Progress)]
        assert steps and steps[-1].value == steps[-1].max == 8
        assert [e.node_id for e in events if isinstance(e, NodeStarted)] == ["text_to_image"]
        assert any(isinstance(e, Preview) and e.image for e in events)

        assert isinstance(done, Completed)
        (ref,) = done.outputs
        assert (ref.kind, ref.width, ref.height) == ("images", 1024, 768)
        assert ref.url.startswith(gateway.url + "/api/v1/images/generated/") and ref.filename.endswith(".png")
        data = await backend.fetch_output(ref)  # the copy taken at completion
        assert data.startswith(PNG_MAGIC)
        with Image.open(io.BytesIO(data)) as img:
            assert img.size == (1024, 768)
        assert await backend.fetch_output(ref) == data  # handed over once; then asked of the server

        (entry,) = await backend.history(execution.id)
        assert (entry.status, entry.completed, entry.outputs[0].url) == ("success", True, ref.url)
        assert await backend.queue() == []
    finally:
        await backend.close()
        await rec.stop()


async def test_runs_of_other_clients_are_not_ours(gateway: RunningGateway) -> None:
    token = gateway.create_token("shared")
    mine, theirs = V1Backend(gateway.url, token=token), V1Backend(gateway.url, token=token)
    rec = Recorder(mine)
    try:
        await mine.connect()
        wid = await _publish(theirs)
        other = await theirs.submit(workflow_id=wid, inputs=INPUTS)
        own = await mine.submit(workflow_id=wid, inputs={**INPUTS, "prompt": "a lighthouse"})
        await rec.end_of(own.id)
        assert _server_status(gateway, token, other.id) in ("queued", "running", "completed")
        assert rec.of(other.id) == []
    finally:
        await mine.close()
        await theirs.close()
        await rec.stop()


async def test_the_image_is_kept_after_the_gateway_forgets_it(tmp_path: Path) -> None:
    gw = start_gateway(data_dir=tmp_path / "gw", image_ttl=0.5)
    backend = V1Backend(gw.url, token=gw.admin_token)
    rec = Recorder(backend)
    try:
        await backend.connect()
        wid = await _publish(backend)
        execution = await backend.submit(workflow_id=wid, inputs=INPUTS)
        done = await rec.end_of(execution.id)
        assert isinstance(done, Completed)
        (ref,) = done.outputs
        headers = {"Authorization": f"Bearer {gw.admin_token}"}
        await _until(
            lambda: httpx.get(ref.url, headers=headers, timeout=5).status_code == 404,
            what="the gateway to expire the image",
        )
        assert (await backend.fetch_output(ref)).startswith(PNG_MAGIC)
        with pytest.raises(OutputUnavailable, match="no longer has the image"):
            await backend.fetch_output(ref)
    finally:
        await backend.close()
        await rec.stop()
        gw.stop()


# ------------------------------------------------------------------------------------------------ cancel


async def test_cancel_a_running_execution(slow_gateway: RunningGateway) -> None:
    backend = V1Backend(slow_gateway.url, token=slow_gateway.admin_token)
    rec = Recorder(backend)
    try:
        await backend.connect()
        wid = await _publish(backend)
        execution = await backend.submit(workflow_id=wid, inputs=INPUTS)
        await rec.wait(lambda e: isinstance(e, Progress) and e.execution_id == execution.id)
        assert [q.execution_id for q in await backend.queue()] == [execution.id]
        await backend.cancel(execution.id)
        end = await rec.end_of(execution.id)
        assert end == Interrupted(execution.id, None, reason="cancelled")
        assert_exactly_once(rec, execution.id)
        await _until(
            lambda: _server_status(slow_gateway, slow_gateway.admin_token, execution.id) == "cancelled",
            what="the server to record the cancel",
        )
        assert await backend.queue() == []
        await backend.cancel(execution.id)  # cancelling a finished execution changes nothing
        assert_exactly_once(rec, execution.id)
    finally:
        await backend.close()
        await rec.stop()


async def test_interrupt_and_clear_queue_stop_only_our_runs(slow_gateway: RunningGateway) -> None:
    backend = V1Backend(slow_gateway.url, token=slow_gateway.admin_token)
    rec = Recorder(backend)
    try:
        await backend.connect()
        wid = await _publish(backend)
        first = await backend.submit(workflow_id=wid, inputs=INPUTS)
        await rec.wait(lambda e: isinstance(e, Progress) and e.execution_id == first.id)
        second = await backend.submit(workflow_id=wid, inputs={**INPUTS, "prompt": "second"})
        await backend.clear_queue()
        await backend.interrupt()
        for eid in (first.id, second.id):
            assert isinstance(await rec.end_of(eid), Interrupted)
            assert_exactly_once(rec, eid)
        assert await backend.queue() == []
    finally:
        await backend.close()
        await rec.stop()


# ------------------------------------------------------------------------------------------------ errors


async def test_a_wrong_token_is_rejected_in_words(gateway: RunningGateway) -> None:
    for token, words in (("not-a-real-token", "token rejected"), (None, "none was given")):
        backend = V1Backend(gateway.url, token=token)
        with pytest.raises(TokenRejected) as info:
            await backend.connect()
        assert isinstance(info.value, AuthenticationError)
        assert words in info.value.user_text() and gateway.url in info.value.message
        assert "not-a-real-token" not in info.value.user_text()
        assert backend.status.state is ConnectionState.DISCONNECTED
        await backend.close()


async def test_a_revoked_token_is_rejected(gateway: RunningGateway) -> None:
    token = gateway.create_token("leaving")
    backend = V1Backend(gateway.url, token=token)
    try:
        await backend.connect()
        assert gateway.revoke_token("leaving")
        rejected: list[TokenRejected] = []

        async def ask() -> None:
            try:
                await backend.list_workflows()
            except TokenRejected as exc:
                rejected.append(exc)

        deadline = time.monotonic() + 10
        while not rejected:  # the gateway caches a token for up to 2 s: a revocation takes that long
            assert time.monotonic() < deadline, "the revoked token is still accepted"
            await ask()
            if not rejected:
                await asyncio.sleep(0.1)  # polling interval of a condition wait
        assert "token rejected" in rejected[0].message
    finally:
        await backend.close()


async def test_missing_inputs_are_one_issue_per_field(gateway: RunningGateway) -> None:
    backend = V1Backend(gateway.url, token=gateway.admin_token)
    rec = Recorder(backend)
    try:
        await backend.connect()
        wid = await _publish(backend)
        with pytest.raises(ValidationError) as info:
            await backend.submit(workflow_id=wid, inputs={"negative_prompt": 42})
        by_field = {i.field_key: i for i in info.value.issues}
        assert "prompt" in by_field, info.value.issues
        assert by_field["prompt"].input_name == "prompt" and by_field["prompt"].node_id == ""
        assert all(i.kind == "validation_error" for i in info.value.issues)
        assert not [e for e in rec.events if isinstance(e, Queued)]
    finally:
        await backend.close()
        await rec.stop()


async def test_publishing_a_bad_graph_names_node_and_input(gateway: RunningGateway) -> None:
    backend = V1Backend(gateway.url, token=gateway.admin_token)
    try:
        nodes = [
            {"id": "a", "type": "NoSuchNode", "inputs": {}},
            {"id": "t", "type": "text_to_image", "inputs": {"prompt": ["missing", 0]}},
        ]
        with pytest.raises(ValidationError) as info:
            await backend.create_workflow("Broken", "", nodes)
        issues = info.value.issues
        assert len(issues) >= 2, issues
        assert {i.node_id for i in issues} >= {"a", "t"}, issues
        t_issue = next(i for i in issues if i.node_id == "t")
        assert (t_issue.input_name, t_issue.field_key) == ("prompt", "t.prompt")
        assert "publishing 'Broken'" in info.value.message
    finally:
        await backend.close()


async def test_update_delete_and_ownership(gateway: RunningGateway) -> None:
    owner = V1Backend(gateway.url, token=gateway.create_token("owner"))
    other = V1Backend(gateway.url, token=gateway.create_token("other"))
    try:
        wid = await _publish(owner)
        changed = await owner.update_workflow(wid, "Renamed", "new words", BLOG_POST_NODES)
        assert (changed["name"], changed["description"]) == ("Renamed", "new words")
        with pytest.raises(GatewayError) as info:
            await other.update_workflow(wid, "Mine now", "", BLOG_POST_NODES)
        assert info.value.status == 403 and info.value.code == "forbidden"
        await owner.delete_workflow(wid)
        with pytest.raises(GatewayError) as info:
            await owner.get_workflow(wid)
        assert info.value.status == 404 and f"Workflow with id {wid} not found" in info.value.message
    finally:
        await owner.close()
        await other.close()


async def test_no_healthy_comfyui_is_backend_unavailable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    (tmp_path / "gw").mkdir()  # start_gateway creates it only when it starts a demo engine itself
    gw = start_gateway(comfyui_urls=[dead], data_dir=tmp_path / "gw")
    backend = V1Backend(gw.url, token=gw.admin_token)
    try:
        with pytest.raises(BackendUnavailable, match="backend_unavailable"):
            await backend.connect()
    finally:
        await backend.close()
        gw.stop()


async def test_a_graph_comfyui_refuses_is_an_execution_error(tmp_path: Path) -> None:
    from comfydesk.testing import start_fake_comfyui

    fake = start_fake_comfyui()  # the demo catalogue, with faults we can inject
    (tmp_path / "gw").mkdir()
    gw = start_gateway(comfyui_urls=[fake.url], data_dir=tmp_path / "gw")
    backend = V1Backend(gw.url, token=gw.admin_token)
    rec = Recorder(backend)
    try:
        await backend.connect()
        wid = await _publish(backend)
        fake.faults.fail_route("/prompt", status=400)
        with pytest.raises(GatewayExecutionError) as info:
            await backend.submit(workflow_id=wid, inputs=INPUTS)
        exc = info.value
        assert (exc.status, exc.code) == (422, "execution_error")
        assert "Failed to generate image" in exc.message  # the spec's words
        assert exc.errors and str(exc.errors[0]["details"]).startswith("Node error: ")
        assert exc.errors[0]["details"] in exc.details
        ok = await backend.submit(workflow_id=wid, inputs=INPUTS)  # the fault was for one request
        assert isinstance(await rec.end_of(ok.id), Completed)
        assert {getattr(e, "execution_id", ok.id) for e in rec.events} == {
            ok.id
        }  # nothing of the refused run
    finally:
        await backend.close()
        await rec.stop()
        gw.stop()
        fake.stop()


# ------------------------------------------------------------------------------------------------ 429


async def test_too_many_requests_are_waited_out(tmp_path: Path) -> None:
    gw = start_gateway(data_dir=tmp_path / "gw", rate_limit="3/second")
    backend = V1Backend(gw.url, token=gw.admin_token)
    rec = Recorder(backend)
    try:
        for _ in range(5):  # the limit is 3 a second: some of these must wait
            assert await backend.list_workflows() == []
        throttled = await rec.wait(lambda e: isinstance(e, Throttled))
        assert isinstance(throttled, Throttled)
        assert 0 < throttled.retry_after <= 2 and throttled.what == "listing the workflows"
    finally:
        await backend.close()
        await rec.stop()
        gw.stop()


# ------------------------------------------------------------------------------------------------ reconnect


class CuttableProxy:
    """A TCP proxy in front of the gateway whose connections can be cut, like a network outage."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.down = False
        self._live: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._live += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.down = True
        with self._lock:
            live, self._live = self._live, []
        for s in live:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.down = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()


async def test_a_run_that_ends_while_disconnected_is_reconciled_once(slow_gateway: RunningGateway) -> None:
    port = int(slow_gateway.url.rsplit(":", 1)[1])
    proxy = CuttableProxy(port)
    token = slow_gateway.admin_token
    backend = V1Backend(proxy.url, token=token, reconnect=FAST)
    rec = Recorder(backend)
    try:
        await backend.connect()
        wid = await _publish(backend)
        execution = await backend.submit(workflow_id=wid, inputs=INPUTS)
        await rec.wait(lambda e: isinstance(e, Progress) and e.execution_id == execution.id)
        proxy.cut()
        await rec.wait(
            lambda e: isinstance(e, ConnectionChanged) and e.status.state is ConnectionState.RECONNECTING
        )
        await _until(
            lambda: _server_status(slow_gateway, token, execution.id) == "completed",
            what="the run to finish on the server",
        )
        assert not any(isinstance(e, Completed) for e in rec.of(execution.id))
        proxy.restore()
        done = await rec.end_of(execution.id)
        assert isinstance(done, Completed), kinds(rec.of(execution.id))
        assert_exactly_once(rec, execution.id)
        states = rec.states()
        assert states[-1] is ConnectionState.CONNECTED and ConnectionState.RECONNECTING in states
        data = await backend.fetch_output(done.outputs[0])
        with Image.open(io.BytesIO(data)) as img:
            assert img.size == (1024, 768)
        # a second outage with nothing open: no event for the finished run
        proxy.cut()
        await rec.wait(
            lambda e: isinstance(e, ConnectionChanged) and rec.states()[-1] is ConnectionState.RECONNECTING
        )
        proxy.restore()
        await rec.wait(lambda e: rec.states()[-1] is ConnectionState.CONNECTED)
        assert_exactly_once(rec, execution.id)
    finally:
        await backend.close()
        await rec.stop()
        proxy.close()


async def test_giving_up_fails_open_runs_once(slow_gateway: RunningGateway) -> None:
    port = int(slow_gateway.url.rsplit(":", 1)[1])
    proxy = CuttableProxy(port)
    policy = ReconnectPolicy(initial=0.02, factor=1, max_delay=0.02, jitter=0, max_attempts=3)
    backend = V1Backend(proxy.url, token=slow_gateway.admin_token, reconnect=policy)
    rec = Recorder(backend)
    try:
        await backend.connect()
        wid = await _publish(backend)
        execution = await backend.submit(workflow_id=wid, inputs=INPUTS)
        await rec.wait(lambda e: isinstance(e, Started) and e.execution_id == execution.id)
        proxy.cut()
        end = await rec.end_of(execution.id)
        assert isinstance(end, Failed) and "could not be re-established" in end.error.message
        await rec.wait(lambda e: rec.states()[-1] is ConnectionState.DISCONNECTED)
        assert_exactly_once(rec, execution.id)
    finally:
        await backend.close()
        await rec.stop()
        proxy.close()


async def test_a_token_revoked_while_disconnected_stops_reconnecting(slow_gateway: RunningGateway) -> None:
    port = int(slow_gateway.url.rsplit(":", 1)[1])
    proxy = CuttableProxy(port)
    token = slow_gateway.create_token("leaving")
    backend = V1Backend(proxy.url, token=token, reconnect=FAST)
    rec = Recorder(backend)
    try:
        await backend.connect()
        wid = await _publish(backend)
        execution = await backend.submit(workflow_id=wid, inputs=INPUTS)
        await rec.wait(lambda e: isinstance(e, Started) and e.execution_id == execution.id)
        assert slow_gateway.revoke_token("leaving")
        headers = {"Authorization": f"Bearer {token}"}
        await _until(  # the gateway caches a token for up to 2 s
            lambda: httpx.get(f"{slow_gateway.url}/api/v1/comfyui/nodes", headers=headers).status_code == 401,
            what="the revocation to take effect",
        )
        proxy.cut()
        proxy.restore()
        end = await rec.end_of(execution.id)
        assert isinstance(end, Failed) and "token rejected" in end.error.message
        await rec.wait(lambda e: rec.states()[-1] is ConnectionState.DISCONNECTED)
        last = [e for e in rec.events if isinstance(e, ConnectionChanged)][-1]
        assert "token rejected" in last.status.reason and token not in last.status.reason
        assert_exactly_once(rec, execution.id)
    finally:
        await backend.close()
        await rec.stop()
        proxy.close()


async def test_a_gateway_restart_mid_run_ends_the_run_once(tmp_path: Path) -> None:
    """RunningGateway has no restart(): stop it and start a new one on the same port and database, in
    front of the same demo engine (which keeps running)."""
    from comfydesk.gateway.server import start_demo_engine

    engine_url, stop_engine = start_demo_engine(tmp_path / "engine", step_delay=0.25)
    (tmp_path / "gw").mkdir()  # start_gateway creates it only when it starts a demo engine itself
    gw = start_gateway(comfyui_urls=[engine_url], data_dir=tmp_path / "gw")
    port = int(gw.url.rsplit(":", 1)[1])
    backend = V1Backend(gw.url, token=gw.admin_token, reconnect=FAST)
    rec = Recorder(backend)
    try:
        await backend.connect()
        wid = await _publish(backend)
        execution = await backend.submit(workflow_id=wid, inputs=INPUTS)
        await rec.wait(lambda e: isinstance(e, Progress) and e.execution_id == execution.id)
        gw.stop()
        await rec.wait(
            lambda e: isinstance(e, ConnectionChanged) and e.status.state is ConnectionState.RECONNECTING
        )
        gw = start_gateway(comfyui_urls=[engine_url], data_dir=tmp_path / "gw", port=port)
        end = await rec.end_of(execution.id, timeout=30)
        assert isinstance(end, Completed | Failed), end
        if isinstance(end, Failed):
            assert end.error.message.strip()
        assert_exactly_once(rec, execution.id)
    finally:
        await backend.close()
        await rec.stop()
        gw.stop()
        stop_engine()
