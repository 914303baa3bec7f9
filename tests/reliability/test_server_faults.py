"""Server faults (issue 14), over real sockets against the fake ComfyUI: a restart mid-run (in-process, and
a real stop and start on the same port), connections refused for a while, HTTP 500/502/503 with a text
body, an HTML body and no body, a request hung past the timeout, truncated JSON and HTML instead of JSON,
on each route a run goes through (submit, the reconcile after a reconnect, the download). Each case ends
in the state and message the product documents, once, in the journal too; and each time the same backend,
with no restart, then runs a workflow to completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfydesk.backends.base import ConnectionState
from comfydesk.backends.comfyui import ComfyUIBackend
from comfydesk.backends.comfyui_http import RequestUnanswered
from comfydesk.backends.comfyui_protocol import LOST_RUN_MESSAGE
from comfydesk.backends.reconnect import ReconnectPolicy
from comfydesk.core.errors import ServerResponseError, ServerUnreachable
from comfydesk.core.events import Completed, Failed, Progress
from comfydesk.core.graph import ApiGraph
from comfydesk.store.journal import Journal
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.testing.faults import HTML_ERROR_PAGE
from tests.conftest import FIXTURES
from tests.reliability.runs import JournalSink, assert_ended_once, assert_journal_matches, kinds

FAST = ReconnectPolicy(initial=0.02, factor=2, max_delay=0.2, jitter=0.1)
TIMEOUT = 0.5  # the backends' request timeout here: a hung request is given up after it
_colors = itertools.count(0x202020, 7919)

#: (id, body, content type, what the message quotes of it)
BODIES = [
    ("text", b"upstream went away", "text/plain", "upstream went away"),
    ("empty", b"", "text/plain", "no body"),
    ("html", HTML_ERROR_PAGE, "text/html", "502 Bad Gateway (an HTML page)"),  # by its title
]


def slow_graph(steps: int = 3) -> ApiGraph:
    """The captured slow_steps request (EmptyImage -> TestSlowSteps -> SaveImage), fresh for the cache."""
    prompt = json.loads((FIXTURES / "prompts" / "slow_steps.request.json").read_text())["prompt"]
    for node in prompt.values():
        if node["class_type"] == "EmptyImage":
            node["inputs"]["color"] = next(_colors) & 0xFFFFFF
        elif node["class_type"] == "TestSlowSteps":
            node["inputs"]["steps"] = steps
    return ApiGraph.from_prompt(prompt)


def fake_config(data_dir: Path) -> FakeConfig:
    return FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=data_dir)


@pytest.fixture(scope="module")
def shared_fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFake]:
    running = start_fake_comfyui(fake_config(tmp_path_factory.mktemp("fake")))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    opened = Journal(tmp_path / "journal.sqlite", tmp_path / "blobs")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
async def sink(shared_fake: RunningFake, journal: Journal) -> AsyncIterator[JournalSink]:
    """A connected backend on the shared fake, following runs into the journal."""
    async with following(shared_fake.url, journal) as connected:
        yield connected
    shared_fake.faults.clear()


@contextlib.asynccontextmanager
async def following(url: str, journal: Journal) -> AsyncIterator[JournalSink]:
    """A connected backend on `url` whose runs go into `journal`; closed at the end."""
    backend = ComfyUIBackend(url, reconnect=FAST, timeout=TIMEOUT)
    sink = JournalSink(backend, journal)
    try:
        await backend.connect()
        yield sink
    finally:
        await backend.close()
        await sink.stop()


async def wait_for(check: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)  # polling interval of a condition wait, not a fixed wait


async def assert_recovers(sink: JournalSink, blobs: Path) -> None:
    """The same backend, not restarted, runs a workflow to completion with its image in the journal."""
    run_id, execution = await sink.submit(slow_graph())
    end = await sink.end_of(execution.id)
    assert isinstance(end, Completed), kinds(sink.of(execution.id))
    assert_ended_once(sink, execution.id)
    assert_journal_matches(sink, run_id, end, blobs)
    assert len(sink.outputs(run_id)) == 1


# -- restarts and refused connections ------------------------------------------------------------------


@pytest.mark.parametrize(
    "how",
    [
        "in-process",
        "stop-and-start",
        "refused-for-a-while",
        pytest.param("refused-for-30-s", marks=pytest.mark.soak),  # the 30 s, in the long run
    ],
)
async def test_a_restart_mid_run_fails_the_run_once_and_the_app_goes_on(
    tmp_path: Path, journal: Journal, how: str
) -> None:
    fake = start_fake_comfyui(fake_config(tmp_path / "fake"))
    port = int(fake.url.rsplit(":", 1)[1])
    try:
        async with following(fake.url, journal) as sink:
            run_id, running = await sink.submit(slow_graph(steps=1000))
            waiting_id, waiting = await sink.submit(slow_graph())
            await sink.wait(lambda e: isinstance(e, Progress) and e.execution_id == running.id)
            if how == "in-process":
                await asyncio.to_thread(fake.restart)
            else:
                await asyncio.to_thread(fake.stop)  # the port now refuses connections
                if how.startswith("refused-for"):
                    await sink.wait(lambda e: sink.statuses()[-1].status.attempt >= 4)
                    if how == "refused-for-30-s":
                        loop = asyncio.get_running_loop()
                        stopped = loop.time()
                        await wait_for(lambda: loop.time() - stopped >= 30, timeout=40)
                    assert sink.backend.status.state is ConnectionState.RECONNECTING
                    with pytest.raises(ServerUnreachable) as refused:  # a run submitted meanwhile
                        await sink.submit(slow_graph())
                    assert refused.value.cause == "connection refused (is ComfyUI running there?)"
                fake = await asyncio.to_thread(start_fake_comfyui, fake_config(tmp_path / "fake"), port=port)
            for pid, rid in ((running.id, run_id), (waiting.id, waiting_id)):
                end = await sink.end_of(pid)
                assert isinstance(end, Failed) and end.error.message == LOST_RUN_MESSAGE
                assert_ended_once(sink, pid)
                assert_journal_matches(sink, rid, end, tmp_path / "blobs")
            await sink.connected_times(2)
            await assert_recovers(sink, tmp_path / "blobs")
            if how.startswith("refused-for"):
                failed = [r for r in journal_runs(journal) if r.error and "connection refused" in r.error]
                assert len(failed) == 1 and failed[0].status == "failed"
    finally:
        fake.stop()


def journal_runs(journal: Journal) -> list[Any]:
    out = []
    run_id = 1
    while (run := journal.run(run_id)) is not None:
        out.append(run)
        run_id += 1
    return out


# -- HTTP errors on submit -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize(("body", "data", "ctype", "quoted"), BODIES, ids=[b[0] for b in BODIES])
async def test_an_http_error_on_submit_fails_that_run_in_words(
    shared_fake: RunningFake,
    sink: JournalSink,
    tmp_path: Path,
    status: int,
    body: str,
    data: bytes,
    ctype: str,
    quoted: str,
) -> None:
    posted = shared_fake.state.prompts_posted
    shared_fake.faults.fail_route("/prompt", status, body=data, content_type=ctype)
    with pytest.raises(ServerResponseError) as info:
        await sink.submit(slow_graph())
    message = str(info.value)
    assert message.startswith(
        f"the server failed to handle the workflow (POST /prompt answered HTTP {status}: "
    )
    assert message.endswith(f": {quoted})") and "\n" not in message and "<" not in message
    [run] = journal_runs(sink.journal)
    assert (run.status, run.error) == ("failed", message)
    assert shared_fake.state.prompts_posted == posted  # nothing reached the queue
    await assert_recovers(sink, tmp_path / "blobs")


@pytest.mark.parametrize("fault", ["truncated-json", "html"])
async def test_a_200_that_is_not_json_on_submit_is_a_server_error(
    shared_fake: RunningFake, sink: JournalSink, tmp_path: Path, fault: str
) -> None:
    if fault == "html":
        shared_fake.faults.answer_html("/prompt")
    else:
        shared_fake.faults.malformed_json("/prompt")
    with pytest.raises(ServerResponseError) as info:
        await sink.submit(slow_graph())
    assert str(info.value) == "POST /prompt did not answer JSON (HTTP 200)"
    [run] = journal_runs(sink.journal)
    assert (run.status, run.error) == ("failed", str(info.value))
    await assert_recovers(sink, tmp_path / "blobs")


async def test_a_submit_hung_past_the_timeout_is_unreachable_in_words(
    shared_fake: RunningFake, sink: JournalSink, tmp_path: Path
) -> None:
    """The POST is answered too late and the server never queues it: after asking `/queue` and
    `/history` (which answer, without the prompt) the run fails as unreachable."""
    posted = shared_fake.state.prompts_posted
    shared_fake.faults.malformed_json("/prompt")  # the hung request, when finally handled, queues nothing
    shared_fake.faults.delay_route("/prompt", TIMEOUT * 4)
    with pytest.raises(ServerUnreachable) as info:
        await sink.submit(slow_graph())
    assert type(info.value) is RequestUnanswered
    assert info.value.cause == f"no answer within {TIMEOUT:g} s (POST /api/prompt)"
    [run] = journal_runs(sink.journal)
    assert (run.status, run.error) == ("failed", str(info.value))
    assert shared_fake.state.prompts_posted == posted
    shared_fake.faults.clear()
    await assert_recovers(sink, tmp_path / "blobs")


async def test_a_submit_answered_too_late_but_taken_is_followed_to_its_end(
    shared_fake: RunningFake, sink: JournalSink, tmp_path: Path
) -> None:
    """The POST's answer comes after the timeout, but the server did take the prompt (late): the backend
    finds it in `/queue` or `/history` under the prompt id it chose and follows the run as usual, to one
    terminal event with its output, journalled as completed."""
    posted = shared_fake.state.prompts_posted
    shared_fake.faults.delay_route("/prompt", TIMEOUT * 1.5)  # handled after the client gave up on it
    run_id, execution = await sink.submit(slow_graph())
    end = await sink.end_of(execution.id)
    assert isinstance(end, Completed), kinds(sink.of(execution.id))
    assert shared_fake.state.prompts_posted == posted + 1  # posted once: the late request itself
    assert_ended_once(sink, execution.id)
    assert_journal_matches(sink, run_id, end, tmp_path / "blobs")
    assert len(sink.outputs(run_id)) == 1
    shared_fake.faults.clear()
    await assert_recovers(sink, tmp_path / "blobs")


async def test_a_submit_hung_when_the_server_cannot_be_asked_is_an_unknown_outcome(
    shared_fake: RunningFake, sink: JournalSink, tmp_path: Path
) -> None:
    """The POST goes unanswered and so do `/queue` and `/history`: the run fails, saying that its
    outcome is unknown (it may still run on the server)."""
    shared_fake.faults.malformed_json("/prompt")  # when finally handled, it queues nothing
    for route in ("/prompt", "/queue", "/history/*"):
        shared_fake.faults.delay_route(route, TIMEOUT * 8)
    with pytest.raises(ServerUnreachable) as info:
        await sink.submit(slow_graph())
    assert info.value.cause == (
        f"no answer within {TIMEOUT:g} s (POST /api/prompt); the server could not be asked whether it "
        "took the run, so the outcome is unknown (it may still run there)"
    )
    [run] = journal_runs(sink.journal)
    assert (run.status, run.error) == ("failed", str(info.value))
    shared_fake.faults.clear()
    await assert_recovers(sink, tmp_path / "blobs")


# -- faults while reconnecting (the reconcile asks /queue and /history) --------------------------------


RECONCILE_FAULTS = [
    *((f"queue-{s}-{b[0]}", "/queue", s, b) for s in (500, 502, 503) for b in BODIES),
    ("queue-truncated-json", "/queue", 0, None),
    ("queue-html", "/queue", 200, BODIES[2]),
    ("queue-hung", "/queue", -1, None),
]


@pytest.mark.parametrize(
    ("route", "status", "body"), [f[1:] for f in RECONCILE_FAULTS], ids=[f[0] for f in RECONCILE_FAULTS]
)
async def test_faults_while_reconnecting_are_retried_and_the_run_ends_once(
    shared_fake: RunningFake,
    journal: Journal,
    tmp_path: Path,
    route: str,
    status: int,
    body: tuple[str, bytes, str, str] | None,
) -> None:
    """The socket drops mid-run; the first reconnect attempts meet the fault on the route the reconcile
    asks; they are retried (RECONNECTING 1, 2, 3...) and the run completes once, with its image."""
    faults = shared_fake.faults
    faults.drop_websocket_after(8)  # mid-run: after the run's first progress
    async with following(shared_fake.url, journal) as sink:
        try:
            # The fault stays until a second attempt has met it: other requests to the route (a queue
            # refresh, the run's own check when the socket drops while its POST is answered) must not use
            # it up before the reconnect asks, as a fixed number of faulty answers could be on a busy machine.
            if status == 0:
                faults.malformed_json(route, times=1_000)
            elif status == -1:
                faults.delay_route(route, TIMEOUT * 3)
            elif body is not None:
                faults.fail_route(route, status, times=1_000, body=body[1], content_type=body[2])
            run_id, execution = await sink.submit(slow_graph(steps=6))
            # The waits stay well inside the 10 s a closing handshake on the abandoned socket of a failed
            # attempt once took (its unread messages had paused reading): the attempt drops it instead.
            await sink.wait(lambda e: sink.statuses()[-1].status.attempt >= 2, timeout=8.0)
            faults.clear()
            end = await sink.end_of(execution.id, timeout=8.0)
        finally:
            faults.clear()
        assert isinstance(end, Completed), kinds(sink.of(execution.id))
        assert [(r.node_id, r.type) for r in end.outputs] == [("3", "output")]  # the image is not lost
        assert_ended_once(sink, execution.id)
        assert_journal_matches(sink, run_id, end, tmp_path / "blobs")
        assert len(sink.outputs(run_id)) == 1
        attempts = [
            c.status.attempt for c in sink.statuses() if c.status.state is ConnectionState.RECONNECTING
        ]
        assert max(attempts) >= 2  # the faulted attempts failed and were retried
        await assert_recovers(sink, tmp_path / "blobs")


# -- faults on the download ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("times", [1, 2])
async def test_a_failed_download_is_tried_again_then_reported_on_the_run(
    shared_fake: RunningFake, sink: JournalSink, tmp_path: Path, status: int, times: int
) -> None:
    """Outputs are fetched when announced and again at the end: one failure is absorbed; two leave the run
    completed with the documented error, and the file can still be fetched afterwards."""
    shared_fake.faults.fail_route("/view", status, times=times, body=b"")
    run_id, execution = await sink.submit(slow_graph())
    end = await sink.end_of(execution.id)
    assert isinstance(end, Completed)
    assert_ended_once(sink, execution.id)
    run = sink.run(run_id)
    if times == 1:
        assert (run.status, run.error) == ("completed", None) and len(sink.outputs(run_id)) == 1
    else:
        assert run.status == "completed" and not sink.outputs(run_id)
        [ref] = end.outputs
        assert run.error == (
            f"1 output(s) could not be downloaded: {ref.filename}: GET /api/view answered HTTP {status}"
        )
        assert (await sink.backend.fetch_output(ref))[:8] == b"\x89PNG\r\n\x1a\n"
    await assert_recovers(sink, tmp_path / "blobs")


# -- faults on the top-up from /history after a gap ----------------------------------------------------


def two_saves(steps: int) -> ApiGraph:
    """EmptyImage -> SaveImage "2" (early), and -> TestSlowSteps(steps) -> SaveImage "4" (late)."""
    color = next(_colors) & 0xFFFFFF
    return ApiGraph.from_prompt(
        {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": color},
            },
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "early"}},
            "3": {
                "class_type": "TestSlowSteps",
                "inputs": {"image": ["1", 0], "steps": steps, "delay": 1.0, "preview": False},
            },
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "late"}},
        }
    )


async def messages_before_first_output(fake: RunningFake, graph: ApiGraph) -> int:
    """How many messages a client (sending the feature flags, as the backend does) gets before the run's
    first `executed`: the run is made once on a plain WebSocket to count them."""
    from websockets.asyncio.client import connect

    async with connect(f"{fake.ws_url}?clientId=counting") as ws:
        await ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        async with httpx.AsyncClient(base_url=fake.url) as client:
            resp = await client.post("/prompt", json={"prompt": graph.to_prompt(), "client_id": "counting"})
            resp.raise_for_status()
        n = 0
        async for frame in ws:
            n += 1
            if isinstance(frame, str) and json.loads(frame)["type"] == "executed":
                return n - 1
    raise AssertionError("the socket closed before the run's first output")


HISTORY_FAULTS = [(500, BODIES[0]), (502, BODIES[2]), (503, BODIES[1]), (0, None)]


@pytest.mark.parametrize(
    ("status", "body"),
    HISTORY_FAULTS,
    ids=[f"{s}-{b[0]}" if b else "truncated-json" for s, b in HISTORY_FAULTS],
)
async def test_a_history_fault_after_a_gap_loses_no_output(
    shared_fake: RunningFake,
    journal: Journal,
    tmp_path: Path,
    status: int,
    body: tuple[str, bytes, str, str] | None,
) -> None:
    """The socket drops just before the first output's `executed`; the backend is back while the run goes
    on, so the run ends on the new socket and that output is known only from /history, which fails twice
    first. The top-up must try again: the run completes once with both images."""
    k = await messages_before_first_output(shared_fake, two_saves(20))
    faults = shared_fake.faults
    faults.drop_websocket_after(k)
    async with following(shared_fake.url, journal) as sink:
        try:
            run_id, execution = await sink.submit(two_saves(20))
            await sink.connected_times(2)  # back while the slow node runs
            if body is None:
                faults.malformed_json("/history/*", times=2)
            else:
                faults.fail_route("/history/*", status, times=2, body=body[1], content_type=body[2])
            end = await sink.end_of(execution.id)
        finally:
            faults.clear()
        assert isinstance(end, Completed), kinds(sink.of(execution.id))
        assert sorted(r.node_id for r in end.outputs) == ["2", "4"]
        assert_ended_once(sink, execution.id)
        assert_journal_matches(sink, run_id, end, tmp_path / "blobs")
        assert sorted(o.node_id for o in sink.outputs(run_id)) == ["2", "4"]
        await assert_recovers(sink, tmp_path / "blobs")
