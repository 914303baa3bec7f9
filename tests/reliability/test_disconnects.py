"""Disconnects at every point (issue 14): for each recorded transcript of a real ComfyUI 0.8.0 run, the fake
ComfyUI replays that run over a real WebSocket and drops the socket (no close frame) right after message k,
for every k from the first message to the last. The backend reconnects and reconciles; the run must end
exactly once (one terminal event, the transcript's outcome), every output announced once and downloaded
once (the fake counts `/view` downloads), and the journal (a real SQLite file and blob store, written as
the run controller writes it) must hold one row with the right status and one stored output per output.

The soak part cuts at random points of long runs (a 40-step run with previews, cut several times).
The gateway's own socket and the gateway's link to ComfyUI are in `test_gateway_disconnects.py`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from comfydesk.backends.base import ConnectionState
from comfydesk.backends.comfyui import ComfyUIBackend
from comfydesk.backends.reconnect import ReconnectPolicy
from comfydesk.core.errors import ServerUnreachable
from comfydesk.core.events import (
    TERMINAL_EVENTS,
    Completed,
    Failed,
    Interrupted,
    NodeOutput,
    Progress,
    Started,
)
from comfydesk.core.graph import ApiGraph
from comfydesk.store.journal import Journal
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from tests.conftest import FIXTURES
from tests.reliability.runs import JournalSink, assert_ended_once, assert_journal_matches, kinds

FAST = ReconnectPolicy(initial=0.02, factor=2, max_delay=0.2, jitter=0.1)

#: Every single-run transcript the fake can replay (txt2img_* need a real model; queue_* are several runs
#: driven by HTTP calls in between).
TRANSCRIPTS = [
    "empty_blur_save",
    "empty_blur_save_cached",
    "batch4_save",
    "two_outputs",
    "empty_preview",
    "text_output",
    "fail",
    "load_invert_scale_save",
    "slow_steps",
    "slow_steps_preview_metadata",
]
_fresh = itertools.count(1)


def transcript_length(run: str) -> int:
    """How many messages the server sent on the socket in the capture (what the fake sends too)."""
    lines = (FIXTURES / "transcripts" / f"{run}.jsonl").read_text().splitlines()
    return sum(json.loads(line)["kind"] in ("text", "binary") for line in lines)


def captured_outputs(run: str) -> list[tuple[str, str, str]]:
    """(node, kind, type) of every output the captured run's history lists."""
    (entry,) = json.loads((FIXTURES / "history" / f"{run}.json").read_text()).values()
    out = []
    for node, ui in entry["outputs"].items():
        for kind, items in ui.items():
            for item in items:
                out.append((node, kind, item["type"] if isinstance(item, dict) else "output"))
    return sorted(out)


def captured_graph(run: str, fake: RunningFake) -> ApiGraph:
    """The captured request, made fresh for the fake's cache: a new colour, or a new copy of the image."""
    prompt = json.loads((FIXTURES / "prompts" / f"{run}.request.json").read_text())["prompt"]
    n = next(_fresh)
    for node in prompt.values():
        if node["class_type"] == "EmptyImage":
            node["inputs"]["color"] = (0x123456 + 7919 * n) & 0xFFFFFF
        elif node["class_type"] == "LoadImage":
            name = f"fixture_gradient_{n}.png"
            shutil.copy(FIXTURES / "misc" / "upload_source.png", fake.data_dir / "input" / name)
            node["inputs"]["image"] = name
    return ApiGraph.from_prompt(prompt)


CASES = [(run, k) for run in TRANSCRIPTS for k in range(1, transcript_length(run) + 1)]


@pytest.fixture(scope="module")
def shared_fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFake]:
    """One fake for every cut (each test makes its run fresh, so the fake's cache never answers)."""
    running = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path_factory.mktemp("fake"))
    )
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


async def warm_cache(fake: RunningFake, graph: ApiGraph) -> None:
    """Run `graph` once as another client, so the next run of it is the cached re-run of the capture."""
    async with httpx.AsyncClient(base_url=fake.url) as client:
        resp = await client.post("/prompt", json={"prompt": graph.to_prompt(), "client_id": "warm-up"})
        resp.raise_for_status()
    assert await asyncio.to_thread(fake.state.wait_idle, 20)


async def cut_run(
    fake: RunningFake,
    journal: Journal,
    run: str,
    k: int,
    *,
    again: list[int] | None = None,
    graph: ApiGraph | None = None,
) -> tuple[JournalSink, int, str]:
    """Run `run` with the socket dropped after its `k`-th message, then each socket that replaces it
    dropped after `again[i]` messages (1 or 2: a new socket always gets its status and feature flags);
    returns once the run ended and the backend is connected again after the last cut."""
    graph = graph or captured_graph(run, fake)
    again = again or []
    if run.endswith("_cached"):
        await warm_cache(fake, graph)
    backend = ComfyUIBackend(
        fake.url, reconnect=FAST, timeout=5, preview_metadata=run.endswith("_preview_metadata")
    )
    sink = JournalSink(backend, journal)
    connections = fake.server.hub.connections
    try:
        fake.faults.drop_websockets_after([k, *again])  # each socket that connects takes the next cut
        try:
            await backend.connect()
        except ServerUnreachable as exc:
            # Cut after the first status, while the backend sends its feature flags: the first connect
            # fails (the window then connects again, as here); the run then goes on uncut.
            assert k == 1 and str(exc).endswith("the WebSocket closed during the handshake"), exc
            await backend.connect()
        run_id, execution = await sink.submit(graph)
        await sink.end_of(execution.id)
        # Every cut happened (a socket cut during the reconnect's handshake never says CONNECTED, so the
        # fake counts them), then the backend is connected on the socket that stays.
        await wait_for(lambda: fake.server.hub.connections >= connections + len(again) + 2)
        await sink.wait(lambda _e: sink.states()[-1] is ConnectionState.CONNECTED)
        assert fake.server.hub.connections == connections + len(again) + 2
    except BaseException:
        await backend.close()
        await sink.stop()
        raise
    finally:
        fake.faults.clear()
    return sink, run_id, execution.id


async def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for a condition on the fake's side (polled: it lives on another thread)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)  # polling interval of a condition wait, not a fixed wait


async def check_run(
    fake: RunningFake, sink: JournalSink, run: str, run_id: int, pid: str, views_before: int, blobs: Path
) -> None:
    try:
        end = assert_ended_once(sink, pid)
        if run == "fail":
            assert isinstance(end, Failed), kinds(sink.of(pid))
            assert (end.error.node_id, end.error.node_type) == ("3", "TestFail")
            assert "deliberate failure" in end.error.message
        else:
            assert isinstance(end, Completed), kinds(sink.of(pid))
            assert sorted((r.node_id, r.kind, r.type) for r in end.outputs) == captured_outputs(run)
            announced = [r for e in sink.of(pid) if isinstance(e, NodeOutput) for r in e.outputs]
            assert sorted(announced, key=repr) == sorted(end.outputs, key=repr)
        assert_journal_matches(sink, run_id, end, blobs)
        files = sum(1 for r in getattr(end, "outputs", ()) if r.is_file)
        assert fake.state.views - views_before == files  # each file downloaded exactly once
        if ConnectionState.RECONNECTING not in sink.states():  # the cut fell in the first handshake
            assert sink.states().count(ConnectionState.CONNECTING) == 2
        assert sink.states()[-1] is ConnectionState.CONNECTED
    finally:
        await sink.backend.close()
        await sink.stop()


@pytest.mark.parametrize(("run", "k"), CASES, ids=[f"{run}-k{k}" for run, k in CASES])
async def test_comfyui_socket_cut_after_message_k(
    shared_fake: RunningFake, journal: Journal, tmp_path: Path, run: str, k: int
) -> None:
    views = shared_fake.state.views
    sink, run_id, pid = await cut_run(shared_fake, journal, run, k)
    await check_run(shared_fake, sink, run, run_id, pid, views, tmp_path / "blobs")


def test_every_transcript_is_cut_at_every_message() -> None:
    """The parametrisation above covers each message of each transcript, first to last."""
    for run in TRANSCRIPTS:
        ks = [k for r, k in CASES if r == run]
        assert ks == list(range(1, transcript_length(run) + 1)) and len(ks) >= 10


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(30))
async def test_long_runs_cut_at_random_points(
    shared_fake: RunningFake, journal: Journal, tmp_path: Path, seed: int
) -> None:
    """A 40-step run with type-4 previews (about 90 messages) cut at a random message, then up to three
    more times right after each reconnect; it ends once with its one image."""
    rng = random.Random(seed)
    run = "slow_steps_preview_metadata"
    prompt = captured_graph(run, shared_fake).to_prompt()
    for node in prompt.values():
        if node["class_type"] == "TestSlowSteps":
            node["inputs"]["steps"] = 40
    graph = ApiGraph.from_prompt(prompt)
    k = rng.randint(1, 2 * 40 + 8)
    again = [rng.randint(1, 2) for _ in range(rng.randint(0, 3))]
    views = shared_fake.state.views
    sink, run_id, pid = await cut_run(shared_fake, journal, run, k, again=again, graph=graph)
    await check_run(shared_fake, sink, run, run_id, pid, views, tmp_path / "blobs")


# -- several runs, with a delete, a clear and an interrupt between them --------------------------------------

#: The queue transcripts: three prompts posted at once, then (`queue_interrupt_delete`) the last pending one
#: deleted and the running one interrupted, the middle one completing; or (`queue_clear`) the pending ones
#: cleared and the running one interrupted. How each prompt ends, by its captured request.
QUEUE_TRANSCRIPTS = {
    "queue_interrupt_delete": {"queue_a_slow": "interrupted", "queue_b": "completed", "queue_c": "deleted"},
    "queue_clear": {"queue_a_slow": "interrupted", "queue_b": "deleted", "queue_c": "deleted"},
}
QUEUE_CASES = [(run, k) for run in QUEUE_TRANSCRIPTS for k in range(1, transcript_length(run) + 1)]


def queue_graph(run: str, fake: RunningFake, steps: int) -> ApiGraph:
    prompt = captured_graph(run, fake).to_prompt()
    for node in prompt.values():
        if node["class_type"] == "TestSlowSteps":
            node["inputs"]["steps"] = steps
    return ApiGraph.from_prompt(prompt)


async def progress_of(sink: JournalSink, pid: str, at_least: int) -> None:
    """Wait until the run has reported step `at_least` (or is over), whatever the cut lost before it."""
    await sink.wait(
        lambda e: (
            getattr(e, "execution_id", None) == pid
            and ((isinstance(e, Progress) and e.value >= at_least) or isinstance(e, TERMINAL_EVENTS))
        )
    )


@pytest.mark.parametrize(("transcript", "k"), QUEUE_CASES, ids=[f"{run}-k{k}" for run, k in QUEUE_CASES])
async def test_queue_runs_end_once_in_their_recorded_state_whatever_the_cut(
    shared_fake: RunningFake, journal: Journal, tmp_path: Path, transcript: str, k: int
) -> None:
    """The socket is dropped after its k-th message while three runs are queued and one is deleted (or the
    queue cleared) and the running one interrupted, as in the capture. Each run ends exactly once, in the
    state the capture recorded: the running one interrupted (journal: cancelled), the deleted ones
    cancelled without running, the one left completed with its image, downloaded once."""
    fake = shared_fake
    outcomes = QUEUE_TRANSCRIPTS[transcript]
    # The running run is long (it is interrupted long before its end); the one that completes is long
    # enough that the socket carries more messages than the capture, so every k is a cut point.
    graphs = {
        "queue_a_slow": queue_graph("queue_a_slow", fake, 400),
        "queue_b": queue_graph("queue_b", fake, 16),
        "queue_c": queue_graph("queue_c", fake, 4),
    }
    views = fake.state.views
    connections = fake.server.hub.connections
    backend = ComfyUIBackend(fake.url, reconnect=FAST, timeout=5)
    sink = JournalSink(backend, journal)
    try:
        fake.faults.drop_websocket_after(k)
        try:
            await backend.connect()
        except ServerUnreachable as exc:  # cut during the handshake: connect again, as the window does
            assert k == 1 and str(exc).endswith("the WebSocket closed during the handshake"), exc
            await backend.connect()
        runs = {name: await sink.submit(graph) for name, graph in graphs.items()}
        pids = {name: execution.id for name, (_run_id, execution) in runs.items()}
        await progress_of(sink, pids["queue_a_slow"], 1)
        if transcript == "queue_clear":
            await backend.clear_queue()
        else:
            await backend.cancel(pids["queue_c"])  # pending: deleted from the queue
            await progress_of(sink, pids["queue_a_slow"], 5)
        await backend.cancel(pids["queue_a_slow"])  # running: interrupted
        for pid in pids.values():
            await sink.end_of(pid)
        await wait_for(lambda: fake.server.hub.connections >= connections + 2)  # the cut happened
        await sink.wait(lambda _e: sink.states()[-1] is ConnectionState.CONNECTED)
        assert fake.server.hub.connections == connections + 2
        assert await asyncio.to_thread(fake.state.wait_idle, 20)

        files = 0
        for name, outcome in outcomes.items():
            run_id, pid = runs[name][0], pids[name]
            end = assert_ended_once(sink, pid)
            if outcome == "completed":
                assert isinstance(end, Completed), (name, kinds(sink.of(pid)))
                assert sorted((r.node_id, r.kind, r.type) for r in end.outputs) == captured_outputs(name)
                files += sum(1 for r in end.outputs if r.is_file)
            else:
                assert isinstance(end, Interrupted), (name, kinds(sink.of(pid)))
                ran = any(isinstance(e, Started | Progress) for e in sink.of(pid))
                if outcome == "deleted":
                    assert end.reason == "cancelled" and not ran, (name, kinds(sink.of(pid)))
                else:
                    assert end.reason != "cancelled", (name, end)
            assert_journal_matches(sink, run_id, end, tmp_path / "blobs")
        assert fake.state.views - views == files  # the completed run's image, downloaded once
    finally:
        fake.faults.clear()
        await backend.close()
        await sink.stop()


def test_every_queue_transcript_is_cut_at_every_message() -> None:
    for run in QUEUE_TRANSCRIPTS:
        ks = [k for r, k in QUEUE_CASES if r == run]
        assert ks == list(range(1, transcript_length(run) + 1)) and len(ks) >= 10
