"""ComfyUIBackend over real sockets against the fake ComfyUI: scenarios, reconnects and injected faults."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from comfydesk.backends.base import (
    BackendEvent,
    ConnectionChanged,
    ConnectionState,
    QueueChanged,
)
from comfydesk.backends.comfyui import ComfyUIBackend
from comfydesk.backends.comfyui_protocol import LOST_RUN_MESSAGE, lost_connection_message
from comfydesk.backends.reconnect import ReconnectPolicy
from comfydesk.core.errors import (
    OutputUnavailable,
    ServerResponseError,
    ServerUnreachable,
    ValidationError,
)
from comfydesk.core.events import (
    TERMINAL_EVENTS,
    Cached,
    Completed,
    ExecutionEvent,
    Failed,
    Interrupted,
    NodeOutput,
    NodeStarted,
    Preview,
    Progress,
    Queued,
    Started,
)
from comfydesk.core.graph import ApiGraph
from tests.conftest import load_json

FAST = ReconnectPolicy(initial=0.02, factor=2, max_delay=0.2, jitter=0.1)
TIMEOUT = 10.0
_colors = itertools.count(0x101010, 7919)


def graph(name: str, **changes: dict[str, Any]) -> ApiGraph:
    """A captured API workflow with a fresh colour (so the fake's cache starts cold) and input changes."""
    prompt = load_json(f"workflows/api/{name}.json")
    for node in prompt.values():
        if node["class_type"] == "EmptyImage":
            node["inputs"]["color"] = next(_colors) & 0xFFFFFF
    for node_id, inputs in changes.items():
        prompt[node_id]["inputs"].update(inputs)
    return ApiGraph.from_prompt(prompt)


def slow(steps: int = 6, **extra: Any) -> ApiGraph:
    return graph("slow_steps", **{"2": {"steps": steps, **extra}})


class Recorder:
    """Collects a backend's event stream; tests await conditions with a timeout, never sleep."""

    def __init__(self, backend: ComfyUIBackend) -> None:
        self.backend = backend
        self.events: list[BackendEvent] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for event in self.backend.events():
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait(self, pred: Callable[[BackendEvent], bool], timeout: float = TIMEOUT) -> BackendEvent:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: any(pred(e) for e in self.events))

        await asyncio.wait_for(until(), timeout)
        return next(e for e in self.events if pred(e))

    async def end_of(self, pid: str, timeout: float = TIMEOUT) -> ExecutionEvent:
        event = await self.wait(lambda e: isinstance(e, TERMINAL_EVENTS) and e.execution_id == pid, timeout)
        assert isinstance(event, TERMINAL_EVENTS)
        return event

    def of(self, pid: str) -> list[ExecutionEvent]:
        return [e for e in self.events if getattr(e, "execution_id", None) == pid]  # type: ignore[misc]

    def states(self) -> list[tuple[ConnectionState, int]]:
        return [(e.status.state, e.status.attempt) for e in self.events if isinstance(e, ConnectionChanged)]

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def kinds(events: list[ExecutionEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def assert_exactly_once(rec: Recorder, pid: str) -> None:
    events = rec.of(pid)
    assert sum(isinstance(e, Queued) for e in events) == 1
    assert sum(isinstance(e, TERMINAL_EVENTS) for e in events) == 1
    assert isinstance(events[-1], TERMINAL_EVENTS), kinds(events)
    started = sum(isinstance(e, Started) for e in events)
    assert started == 1 if isinstance(events[-1], Completed) else started <= 1, kinds(events)
    nodes = [e.node_id for e in events if isinstance(e, NodeOutput)]
    assert len(nodes) == len(set(nodes)), f"duplicate outputs {nodes}"


@pytest.fixture
async def connected(fake_comfyui: Any) -> AsyncIterator[tuple[ComfyUIBackend, Recorder]]:
    backend = ComfyUIBackend(fake_comfyui.url, reconnect=FAST, timeout=5)
    rec = Recorder(backend)
    await backend.connect()
    try:
        yield backend, rec
    finally:
        await backend.close()
        await rec.stop()


async def run(backend: ComfyUIBackend, rec: Recorder, g: ApiGraph) -> tuple[str, ExecutionEvent]:
    execution = await backend.submit(g)
    return execution.id, await rec.end_of(execution.id)


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


# -- connection ----------------------------------------------------------------------------------------


async def test_connect_reports_states_and_server_info(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    backend, rec = connected
    assert rec.states()[:2] == [(ConnectionState.CONNECTING, 0), (ConnectionState.CONNECTED, 0)]
    assert backend.status.state is ConnectionState.CONNECTED
    info = await backend.server_info()
    assert (info.kind, info.version) == ("comfyui", "0.8.0")
    assert info.devices and info.url == backend.url
    await rec.wait(lambda e: isinstance(e, QueueChanged))
    catalog = await backend.node_catalog()
    assert "TestSlowSteps" in catalog and await backend.node_catalog() is catalog
    assert await backend.node_catalog(refresh=True) is not catalog


async def test_wrong_port_is_unreachable_and_names_the_url_without_secrets() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = ComfyUIBackend(
        f"http://alice:pw-secret@127.0.0.1:{port}/comfy", token="tok-secret-123", timeout=2
    )
    with pytest.raises(ServerUnreachable) as info:
        await backend.connect()
    assert info.value.url == f"http://127.0.0.1:{port}/comfy"
    assert f"127.0.0.1:{port}" in str(info.value)
    assert info.value.cause == "connection refused (is ComfyUI running there?)"
    for secret in ("pw-secret", "tok-secret-123", "alice"):
        assert secret not in str(info.value) and secret not in info.value.user_text()
    assert backend.status.state is ConnectionState.DISCONNECTED
    await backend.close()


async def test_unknown_host_is_host_not_found() -> None:
    # The reserved .invalid TLD fails at name resolution, without any network traffic.
    backend = ComfyUIBackend("http://comfy-gpu.invalid:8188", token="tok-secret-123", timeout=5)
    with pytest.raises(ServerUnreachable) as info:
        await backend.connect()
    assert info.value.cause == "host not found"
    assert str(info.value) == "cannot reach http://comfy-gpu.invalid:8188: host not found"
    assert "tok-secret-123" not in info.value.user_text() and "Traceback" not in info.value.user_text()
    assert backend.status.state is ConnectionState.DISCONNECTED
    assert backend.status.reason == str(info.value)
    await backend.close()


# -- runs ----------------------------------------------------------------------------------------------


async def test_normal_run(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    backend, rec = connected
    pid, end = await run(backend, rec, graph("empty_blur_save"))
    events = rec.of(pid)
    assert kinds(events) == [
        "Queued", "Started", "Cached", "NodeStarted", "NodeStarted", "NodeStarted", "NodeOutput", "Completed"
    ]  # fmt: skip
    assert isinstance(events[0], Queued) and events[0].position == 0
    assert [e.node_id for e in events if isinstance(e, NodeStarted)] == ["1", "2", "3"]
    assert isinstance(end, Completed) and len(end.outputs) == 1
    ref = end.outputs[0]
    assert (ref.node_id, ref.kind, ref.type) == ("3", "images", "output")
    assert ref.filename.startswith("fixture_blur_")
    assert png_size(await backend.fetch_output(ref)) == (64, 64)
    (entry,) = await backend.history(pid)
    assert entry.status == "success" and entry.outputs == end.outputs
    assert any(h.execution_id == pid for h in await backend.history())


async def test_cached_rerun(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    backend, rec = connected
    g = graph("empty_blur_save")
    first, _ = await run(backend, rec, g)
    second, end = await run(backend, rec, g)
    events = rec.of(second)
    assert kinds(events) == ["Queued", "Started", "Cached", "NodeOutput", "Completed"]
    cached = events[2]
    assert isinstance(cached, Cached) and set(cached.node_ids) == {"1", "2", "3"}
    output = events[3]
    assert isinstance(output, NodeOutput) and output.cached
    assert isinstance(end, Completed) and end.outputs == output.outputs
    assert not any(isinstance(e, NodeOutput) and e.cached for e in rec.of(first))


async def test_batch_of_four(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    backend, rec = connected
    _, end = await run(backend, rec, graph("batch4_save"))
    assert isinstance(end, Completed) and len(end.outputs) == 4
    assert len({o.filename for o in end.outputs}) == 4
    for ref in end.outputs:
        assert png_size(await backend.fetch_output(ref)) == (32, 32)


async def test_two_outputs_temp_is_downloadable_at_once(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    backend, rec = connected
    pid, end = await run(backend, rec, graph("two_outputs"))
    assert isinstance(end, Completed)
    assert [(o.node_id, o.type) for o in end.outputs] == [("2", "output"), ("4", "temp")]
    assert [e.node_id for e in rec.of(pid) if isinstance(e, NodeOutput)] == ["2", "4"]
    for ref in end.outputs:
        assert png_size(await backend.fetch_output(ref)) == (40, 40)


async def test_preview_image_output_is_temp(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    backend, rec = connected
    _, end = await run(backend, rec, graph("empty_preview"))
    assert isinstance(end, Completed)
    (ref,) = end.outputs
    assert ref.type == "temp" and ref.filename.startswith("ComfyUI_temp_")
    assert png_size(await backend.fetch_output(ref)) == (48, 32)


async def test_text_output(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    backend, rec = connected
    pid, end = await run(backend, rec, graph("text_output"))
    (output,) = [e for e in rec.of(pid) if isinstance(e, NodeOutput)]
    assert [(o.kind, o.data) for o in output.outputs] == [
        ("text", "line one\nline two"),
        ("text", "line one\nline two"),
        ("text", "image batch shape: [2, 16, 16, 3]"),
    ]
    assert isinstance(end, Completed) and end.outputs == output.outputs
    with pytest.raises(OutputUnavailable):
        await backend.fetch_output(output.outputs[0])


@pytest.mark.parametrize("metadata", [True, False], ids=["type4-frames", "type1-frames"])
async def test_slow_run_with_previews(fake_comfyui: Any, metadata: bool) -> None:
    backend = ComfyUIBackend(fake_comfyui.url, reconnect=FAST, preview_metadata=metadata)
    rec = Recorder(backend)
    await backend.connect()
    try:
        pid, end = await run(backend, rec, slow(5))
        events = rec.of(pid)
        progress = [(e.node_id, e.value, e.max) for e in events if isinstance(e, Progress)]
        assert progress == [("2", i, 5) for i in range(1, 6)]
        previews = [e for e in events if isinstance(e, Preview)]
        assert len(previews) == 5
        assert all(
            p.node_id == "2" and p.mime == "image/jpeg" and p.image[:2] == b"\xff\xd8" for p in previews
        )
        assert isinstance(end, Completed) and len(end.outputs) == 1
    finally:
        await backend.close()
        await rec.stop()


async def test_failure_names_node_and_exception(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    backend, rec = connected
    _, end = await run(backend, rec, graph("fail"))
    assert isinstance(end, Failed)
    assert (end.error.node_id, end.error.node_type, end.error.exception_type) == (
        "3",
        "TestFail",
        "RuntimeError",
    )
    assert "deliberate failure" in end.error.message
    assert end.error.executed == ("1", "2") and end.error.traceback


async def test_cancel_running_interrupts(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    backend, rec = connected
    execution = await backend.submit(slow(400))
    await rec.wait(lambda e: isinstance(e, Progress) and e.execution_id == execution.id)
    await backend.cancel(execution.id)
    end = await rec.end_of(execution.id)
    assert isinstance(end, Interrupted) and end.node_id == "2" and end.reason == "interrupted"
    assert_exactly_once(rec, execution.id)


async def test_global_interrupt(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    backend, rec = connected
    execution = await backend.submit(slow(400))
    await rec.wait(lambda e: isinstance(e, Progress) and e.execution_id == execution.id)
    await backend.interrupt()
    assert isinstance(await rec.end_of(execution.id), Interrupted)


async def test_queue_delete_and_clear(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    backend, rec = connected
    a = await backend.submit(slow(400))
    await rec.wait(lambda e: isinstance(e, Started) and e.execution_id == a.id)
    b, c, d = [await backend.submit(slow(3)) for _ in range(3)]
    await rec.wait(lambda e: isinstance(e, Queued) and e.execution_id == d.id)
    queued = {e.execution_id: e.position for e in rec.events if isinstance(e, Queued)}
    assert [queued[x.id] for x in (a, b, c, d)] == [0, 1, 2, 3]
    items = await backend.queue()
    assert [(q.execution_id, q.running, q.mine) for q in items] == [
        (a.id, True, True), (b.id, False, True), (c.id, False, True), (d.id, False, True)
    ]  # fmt: skip

    await backend.cancel(c.id)  # pending: deleted, and the stream says so
    end_c = await rec.end_of(c.id)
    assert isinstance(end_c, Interrupted) and end_c.reason == "cancelled"
    assert [q.execution_id for q in await backend.queue()] == [a.id, b.id, d.id]

    await backend.clear_queue()  # only pending ones go
    for x in (b, d):
        end = await rec.end_of(x.id)
        assert isinstance(end, Interrupted) and end.reason == "cancelled"
    assert [q.execution_id for q in await backend.queue()] == [a.id]

    await backend.cancel(a.id)
    assert isinstance(await rec.end_of(a.id), Interrupted)
    for x in (a, b, c, d):
        assert_exactly_once(rec, x.id)
    for x in (b, c, d):
        assert kinds(rec.of(x.id)) == ["Queued", "Interrupted"]


async def test_upload_dedup(connected: tuple[ComfyUIBackend, Recorder], fake_comfyui: Any) -> None:
    backend, _ = connected
    data = load_bytes("misc/upload_source.png")
    before = fake_comfyui.state.uploads
    first = await backend.upload_image(data, "gradient.png")
    again = await asyncio.gather(*(backend.upload_image(data, "other-name.png") for _ in range(3)))
    assert all(x == first for x in again)
    assert fake_comfyui.state.uploads == before + 1
    assert first.name == "gradient.png" and first.type == "input" and first.input_value == "gradient.png"
    other = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(other, "PNG")
    second = await backend.upload_image(other.getvalue(), "red.png", subfolder="sub")
    assert second.input_value == "sub/red.png"
    assert fake_comfyui.state.uploads == before + 2
    _pid, end = await run(backend, _, graph("load_invert_scale_save", **{"10": {"image": first.input_value}}))
    assert isinstance(end, Completed), end


def load_bytes(rel: str) -> bytes:
    from tests.conftest import FIXTURES

    return (FIXTURES / rel).read_bytes()


async def test_userdata_workflows_and_templates(
    connected: tuple[ComfyUIBackend, Recorder], fake_comfyui: Any
) -> None:
    backend, _ = connected
    before = [w for w in await backend.list_workflows() if w.source == "userdata"]
    assert before == []  # a missing workflows dir (404) is an empty list
    doc = {"last_node_id": 3, "nodes": [], "links": [], "version": 0.4, "extra": {"note": "demo"}}
    async with httpx.AsyncClient(base_url=fake_comfyui.url) as client:
        for path in ("workflows%2Fdemo.json", "workflows%2Fsub%2Fnested.json"):
            resp = await client.post(f"/userdata/{path}", content=json.dumps(doc))
            assert resp.status_code == 200
    listed = await backend.list_workflows()
    saved = [w for w in listed if w.source == "userdata"]
    assert [(w.id, w.name) for w in saved] == [
        ("userdata:demo.json", "demo"),
        ("userdata:sub/nested.json", "sub/nested"),
    ]
    assert await backend.get_workflow("userdata:sub/nested.json") == doc
    assert await backend.get_workflow("demo.json") == doc
    with pytest.raises(ServerResponseError):
        await backend.get_workflow("userdata:missing.json")
    templates = [w for w in listed if w.source == "template"]
    assert templates and all(w.id.startswith("template:") and w.name for w in templates)


async def test_template_workflows_are_served(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    backend, _ = connected
    templates = {w.id: w for w in await backend.list_workflows() if w.source == "template"}
    assert len(templates) == 220  # every template the captured index lists
    assert templates["template:default"].category
    assert all(w.id.startswith("template:") and w.name for w in templates.values())
    assert await backend.get_workflow("template:default") == load_json("workflows/ui/default.json")
    wan = await backend.get_workflow("template:text_to_video_wan")
    assert wan == load_json("workflows/ui/text_to_video_wan.json")
    # Listed in the index but its file is not in the fake's catalogue: a 404 like any static file server.
    missing = next(t for t in templates if t not in {f"template:{n}" for n in _UI_TEMPLATES})
    for unknown in (missing, "template:no_such_template"):
        with pytest.raises(ServerResponseError) as info:
            await backend.get_workflow(unknown)
        assert info.value.status == 404 and repr(unknown) in str(info.value)


_UI_TEMPLATES = (
    "01_get_started_text_to_image",
    "default",
    "flux_fill_inpaint_example",
    "flux_schnell",
    "sd3.5_simple_example",
    "sdxl_simple_example",
    "sdxlturbo_example",
    "text_to_video_wan",
)


async def test_submit_embeds_the_ui_workflow_in_saved_images(
    connected: tuple[ComfyUIBackend, Recorder], fake_comfyui: Any
) -> None:
    backend, rec = connected
    ui = load_json("workflows/ui/default.json")
    execution = await backend.submit(graph("empty_blur_save"), ui_workflow=ui)
    end = await rec.end_of(execution.id)
    assert isinstance(end, Completed)
    extra_data = fake_comfyui.state.history[execution.id]["prompt"][3]
    assert extra_data["extra_pnginfo"] == {"workflow": ui}
    with Image.open(io.BytesIO(await backend.fetch_output(end.outputs[0]))) as img:
        assert json.loads(img.info["workflow"]) == ui  # as ComfyUI's own frontend makes it
        assert "prompt" in img.info
    # Without a UI document nothing extra is sent.
    plain = await backend.submit(graph("empty_blur_save"))
    assert isinstance(await rec.end_of(plain.id), Completed)
    assert "extra_pnginfo" not in fake_comfyui.state.history[plain.id]["prompt"][3]


# -- submit errors -------------------------------------------------------------------------------------


async def test_validation_errors_from_the_server(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    backend, rec = connected
    with pytest.raises(ValidationError) as info:
        await backend.submit(graph("empty_blur_save", **{"2": {"blur_radius": 999}}))
    (issue,) = info.value.issues
    assert (issue.node_id, issue.input_name, issue.kind) == ("2", "blur_radius", "value_bigger_than_max")
    assert issue.node_title == "Image Blur"  # the graph's _meta.title
    with pytest.raises(ValidationError) as info:
        await backend.submit(ApiGraph.from_prompt({"1": {"class_type": "EmptyImage", "inputs": {}}}))
    assert info.value.issues[0].kind in ("prompt_no_outputs", "required_input_missing")
    assert not any(isinstance(e, Queued) for e in rec.events)


async def test_5xx_on_prompt_is_a_server_error(
    connected: tuple[ComfyUIBackend, Recorder], fake_comfyui: Any
) -> None:
    backend, rec = connected
    fake_comfyui.faults.fail_route("/prompt", status=500)
    with pytest.raises(ServerResponseError) as info:
        await backend.submit(graph("empty_blur_save"))
    assert info.value.status == 500 and "HTTP 500" in str(info.value)
    _pid, end = await run(backend, rec, graph("empty_blur_save"))  # the next one goes through
    assert isinstance(end, Completed)


async def test_malformed_object_info(connected: tuple[ComfyUIBackend, Recorder], fake_comfyui: Any) -> None:
    backend, _ = connected
    fake_comfyui.faults.malformed_json("/object_info")
    with pytest.raises(ServerResponseError, match="object_info"):
        await backend.node_catalog(refresh=True)
    assert "EmptyImage" in await backend.node_catalog(refresh=True)


async def test_delayed_route_times_out_as_unreachable(fake_comfyui: Any) -> None:
    backend = ComfyUIBackend(fake_comfyui.url, timeout=0.3, reconnect=FAST)
    await backend.connect()
    try:
        fake_comfyui.faults.delay_route("/queue", 1.0)
        with pytest.raises(ServerUnreachable, match=r"no answer within 0\.3 s"):
            await backend.queue()
        fake_comfyui.faults.clear()
        assert await backend.queue() == []
    finally:
        await backend.close()


async def test_view_of_a_missing_file(connected: tuple[ComfyUIBackend, Recorder]) -> None:
    from comfydesk.core.events import OutputRef

    backend, _ = connected
    with pytest.raises(OutputUnavailable, match=r"nope\.png"):
        await backend.fetch_output(OutputRef("9", "images", "nope.png", "", "temp"))


# -- reconnects ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 5, 8, 11, 14, 18, 24])
async def test_drop_mid_run_loses_and_duplicates_nothing(fake_comfyui: Any, n: int) -> None:
    fake_comfyui.faults.drop_websocket_after(n)  # the next socket (ours) dies after n messages
    backend = ComfyUIBackend(fake_comfyui.url, reconnect=FAST)
    rec = Recorder(backend)
    await backend.connect()
    try:
        pid, end = await run(backend, rec, graph("two_outputs"))
        assert isinstance(end, Completed), end
        assert [(o.node_id, o.type) for o in end.outputs] == [("2", "output"), ("4", "temp")]
        assert_exactly_once(rec, pid)
        assert sorted(e.node_id for e in rec.of(pid) if isinstance(e, NodeOutput)) == ["2", "4"]
        slow_pid, slow_end = await run(backend, rec, slow(4))
        assert isinstance(slow_end, Completed) and len(slow_end.outputs) == 1
        assert_exactly_once(rec, slow_pid)
        assert (ConnectionState.RECONNECTING, 1) in rec.states()
    finally:
        await backend.close()
        await rec.stop()


async def test_run_finished_while_away_is_delivered_from_history(fake_comfyui: Any) -> None:
    fake_comfyui.faults.drop_websocket_after(4)  # status, feature flags, then the run's first messages
    patient = ReconnectPolicy(initial=0.6, factor=1, max_delay=0.6, jitter=0)
    backend = ComfyUIBackend(fake_comfyui.url, reconnect=patient)
    rec = Recorder(backend)
    await backend.connect()
    try:
        pid, end = await run(backend, rec, graph("batch4_save"))
        assert (ConnectionState.RECONNECTING, 1) in rec.states()
        assert isinstance(end, Completed) and len(end.outputs) == 4
        assert_exactly_once(rec, pid)
        for ref in end.outputs:
            assert png_size(await backend.fetch_output(ref)) == (32, 32)
    finally:
        await backend.close()
        await rec.stop()


async def test_refused_websockets_then_connected(fake_comfyui: Any) -> None:
    fake_comfyui.faults.drop_websocket_after(3)
    backend = ComfyUIBackend(fake_comfyui.url, reconnect=FAST)
    rec = Recorder(backend)
    await backend.connect()
    fake_comfyui.faults.refuse_websockets(2)
    try:
        pid, end = await run(backend, rec, slow(4))
        assert isinstance(end, Completed)
        assert_exactly_once(rec, pid)
        states = rec.states()
        start = states.index((ConnectionState.RECONNECTING, 1))
        assert states[start : start + 4] == [
            (ConnectionState.RECONNECTING, 1),
            (ConnectionState.RECONNECTING, 2),
            (ConnectionState.RECONNECTING, 3),
            (ConnectionState.CONNECTED, 0),
        ]
        reconnecting = [e.status for e in rec.events if isinstance(e, ConnectionChanged)][start]
        assert reconnecting.next_try_in is not None and 0 < reconnecting.next_try_in <= 0.2
    finally:
        await backend.close()
        await rec.stop()


async def test_giving_up_ends_disconnected(fake_comfyui: Any) -> None:
    fake_comfyui.faults.drop_websocket_after(2)
    backend = ComfyUIBackend(fake_comfyui.url, reconnect=ReconnectPolicy(0.01, 1, 0.01, 0, max_attempts=2))
    rec = Recorder(backend)
    await backend.connect()
    fake_comfyui.faults.refuse_websockets(5)
    try:
        await rec.wait(
            lambda e: isinstance(e, ConnectionChanged) and e.status.state is ConnectionState.DISCONNECTED
        )
        assert rec.states()[-3:] == [
            (ConnectionState.RECONNECTING, 1),
            (ConnectionState.RECONNECTING, 2),
            (ConnectionState.DISCONNECTED, 2),
        ]
        assert "gave up after 2 attempts" in backend.status.reason
    finally:
        await backend.close()
        await rec.stop()


async def test_giving_up_fails_every_open_run_once_then_disconnects(fake_comfyui: Any) -> None:
    backend = ComfyUIBackend(
        fake_comfyui.url, token="tok-secret-123", reconnect=ReconnectPolicy(0.01, 1, 0.01, 0, max_attempts=2)
    )
    rec = Recorder(backend)
    await backend.connect()
    try:
        running = await backend.submit(slow(400))
        waiting = await backend.submit(slow(3))
        await rec.wait(lambda e: isinstance(e, Progress) and e.execution_id == running.id)
        fake_comfyui.faults.refuse_websockets(50)
        fake_comfyui.server.hub.abort_all()  # the socket drops; the runs go on, out of our sight
        await rec.wait(
            lambda e: isinstance(e, ConnectionChanged) and e.status.state is ConnectionState.DISCONNECTED
        )
        disconnected = next(
            i for i, e in enumerate(rec.events)
            if isinstance(e, ConnectionChanged) and e.status.state is ConnectionState.DISCONNECTED
        )  # fmt: skip
        for x in (running, waiting):
            assert_exactly_once(rec, x.id)
            end = rec.of(x.id)[-1]
            assert isinstance(end, Failed) and end.error.node_id is None
            assert end.error.message == lost_connection_message(backend.url)
            assert backend.url in end.error.message and "unknown" in end.error.message
            assert "tok-secret-123" not in end.error.message
            assert rec.events.index(end) < disconnected  # the runs end first, then the connection
        assert rec.states()[-3:] == [
            (ConnectionState.RECONNECTING, 1),
            (ConnectionState.RECONNECTING, 2),
            (ConnectionState.DISCONNECTED, 2),
        ]
        assert "gave up after 2 attempts" in backend.status.reason
        assert "tok-secret-123" not in backend.status.reason
        assert not [e for e in rec.events[disconnected + 1 :] if not isinstance(e, QueueChanged)]
    finally:
        await backend.close()
        await rec.stop()


async def test_restart_mid_run_fails_the_run(
    connected: tuple[ComfyUIBackend, Recorder], fake_comfyui: Any
) -> None:
    backend, rec = connected
    execution = await backend.submit(slow(400))
    waiting = await backend.submit(slow(3))
    await rec.wait(lambda e: isinstance(e, Progress) and e.execution_id == execution.id)
    await asyncio.to_thread(fake_comfyui.restart)
    for x in (execution, waiting):
        end = await rec.end_of(x.id)
        assert isinstance(end, Failed) and end.error.message == LOST_RUN_MESSAGE
        assert_exactly_once(rec, x.id)
    await rec.wait(lambda e: isinstance(e, ConnectionChanged) and e.status.state is ConnectionState.CONNECTED
                   and rec.states().count((ConnectionState.CONNECTED, 0)) >= 2)  # fmt: skip
    _, end = await run(backend, rec, graph("empty_blur_save"))  # and life goes on
    assert isinstance(end, Completed)


# -- credentials and path prefixes (a tiny server that records what it was sent) -------------------------


class RecordingServer:
    """Answers `/comfy/api/system_stats` over HTTP and accepts `/comfy/api/ws`, recording every request."""

    def __init__(self, *, require: str | None = None) -> None:
        self.require = require
        self.requests: list[tuple[str, str | None]] = []
        self.first_message = asyncio.get_running_loop().create_future()

    def process_request(self, connection: Any, request: Any) -> Any:
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        auth = request.headers.get("Authorization")
        self.requests.append((request.path, auth))
        if self.require is not None and auth != self.require:
            return connection.respond(401, "unauthorized")
        if request.path.startswith("/comfy/api/ws?"):
            return None  # go on with the WebSocket handshake
        if request.path == "/comfy/api/system_stats":
            body = json.dumps(load_json("system_stats.json")).encode()
            return Response(200, "OK", Headers({"Content-Type": "application/json"}), body)
        return connection.respond(404, "")

    async def handler(self, ws: Any) -> None:
        await ws.send(
            json.dumps({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}}})
        )
        message = await ws.recv()
        if not self.first_message.done():
            self.first_message.set_result(json.loads(message))
        await ws.wait_closed()


@pytest.mark.parametrize(
    ("kwargs", "header"),
    [
        ({"token": "tok-123"}, "Bearer tok-123"),
        ({"basic_auth": ("alice", "pw")}, "Basic YWxpY2U6cHc="),
    ],
)
async def test_credentials_reach_http_and_websocket_under_a_path_prefix(kwargs: Any, header: str) -> None:
    from websockets.asyncio.server import serve

    recorder = RecordingServer(require=header)
    async with serve(recorder.handler, "127.0.0.1", 0, process_request=recorder.process_request) as server:
        port = server.sockets[0].getsockname()[1]
        backend = ComfyUIBackend(f"http://127.0.0.1:{port}/comfy/", client_id="me", **kwargs)
        try:
            await backend.connect()
            assert await asyncio.wait_for(recorder.first_message, TIMEOUT) == {
                "type": "feature_flags",
                "data": {"supports_preview_metadata": True},
            }
            assert (await backend.server_info()).version == "0.8.0"
        finally:
            await backend.close()
    assert recorder.requests[0] == ("/comfy/api/system_stats", header)
    assert ("/comfy/api/ws?clientId=me", header) in recorder.requests
    assert all(auth == header for _, auth in recorder.requests)


async def test_refused_credentials_are_an_authentication_error_without_the_secret() -> None:
    from websockets.asyncio.server import serve

    from comfydesk.core.errors import AuthenticationError

    recorder = RecordingServer(require="Bearer right")
    async with serve(recorder.handler, "127.0.0.1", 0, process_request=recorder.process_request) as server:
        port = server.sockets[0].getsockname()[1]
        backend = ComfyUIBackend(f"http://127.0.0.1:{port}/comfy", token="wrong-token-42")
        with pytest.raises(AuthenticationError) as info:
            await backend.connect()
        await backend.close()
    assert info.value.status == 401 and "wrong-token-42" not in info.value.user_text()
    assert f"127.0.0.1:{port}/comfy" in str(info.value)
