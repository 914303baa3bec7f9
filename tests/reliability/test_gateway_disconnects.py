"""Disconnects at every point, through the gateway (issue 14): the gateway's own `/events` WebSocket cut after
its k-th message (a TCP proxy that counts WebSocket messages, `wsproxy.py`), and the gateway's link to
ComfyUI cut after its k-th message (the fake ComfyUI's `drop_websocket_after`), for every k of a run. Each
time the run must end exactly once, completed with its one image, stored once in the client's journal; on
the link side ComfyUI must have been sent the prompt once and asked for the image once.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from comfydesk.backends.base import ConnectionState
from comfydesk.backends.reconnect import ReconnectPolicy
from comfydesk.backends.v1 import V1Backend
from comfydesk.core.events import Completed
from comfydesk.gateway.testing import RunningGateway, start_gateway
from comfydesk.store.journal import Journal
from comfydesk.testing import RunningFake, start_fake_comfyui
from comfydesk.testing.demo import demo_config
from tests.reliability.runs import JournalSink, assert_ended_once, assert_journal_matches, kinds
from tests.reliability.wsproxy import WsCutProxy, ws_cut_proxy

FAST = ReconnectPolicy(initial=0.02, factor=2, max_delay=0.2, jitter=0.1)
STEPS = 3
#: Messages the gateway's `/events` socket carries for one run of `pattern(STEPS)`, first to terminal
#: (checked by `test_the_cut_points_cover_a_whole_run`).
GATEWAY_MESSAGES = 11
#: Messages ComfyUI sends on the gateway's (idle) socket from the run's POST to its last one (same check).
LINK_MESSAGES = 23
_seeds = itertools.count(1)


def pattern(steps: int = STEPS) -> list[dict[str, Any]]:
    """The demo engine's pattern node (`steps` steps, a preview each), then SaveImage; `{seed}` varies."""
    return [
        {
            "id": "1",
            "type": "DemoPattern",
            "inputs": {
                "pattern": "rings",
                "seed": "{seed}",
                "width": 64,
                "height": 64,
                "steps": steps,
                "color_a": 0,
                "color_b": 16777215,
            },
        },
        {"id": "2", "type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "cut"}},
    ]


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFake]:
    config = demo_config(tmp_path_factory.mktemp("machine"))
    config.step_delay = 0.01
    running = start_fake_comfyui(config)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def gateway(machine: RunningFake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(comfyui_urls=[machine.url], data_dir=tmp_path_factory.mktemp("gateway"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def proxy(gateway: RunningGateway) -> Iterator[WsCutProxy]:
    with ws_cut_proxy(int(gateway.url.rsplit(":", 1)[1])) as running:
        yield running


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    opened = Journal(tmp_path / "journal.sqlite", tmp_path / "blobs")
    try:
        yield opened
    finally:
        opened.close()


async def wait_for(check: Any, timeout: float = 20.0) -> None:
    """Wait for a condition on a server's side (polled: it lives on another thread)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)  # polling interval of a condition wait, not a fixed wait


async def one_run(
    url: str, token: str, journal: Journal, before_submit: Any = None, *, steps: int = STEPS
) -> tuple[JournalSink, int, str]:
    backend = V1Backend(url, token=token, reconnect=FAST, timeout=10)
    sink = JournalSink(backend, journal)
    try:
        await backend.connect()
        workflow = await backend.create_workflow("Cut pattern", "", pattern(steps))
        if before_submit is not None:
            await before_submit()
        run_id, execution = await sink.submit(
            workflow_id=str(workflow["id"]), inputs={"seed": next(_seeds)}, own_id=False
        )
        await sink.end_of(execution.id)
    except BaseException:
        await backend.close()
        await sink.stop()
        raise
    return sink, run_id, execution.id


async def check_completed_once(sink: JournalSink, run_id: int, eid: str, blobs: Path) -> None:
    try:
        end = assert_ended_once(sink, eid)
        assert isinstance(end, Completed), kinds(sink.of(eid))
        assert [(r.kind, r.filename.endswith(".png")) for r in end.outputs] == [("images", True)]
        assert_journal_matches(sink, run_id, end, blobs)
        [output] = sink.outputs(run_id)
        assert output.path is not None and output.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        await sink.backend.close()
        await sink.stop()


async def test_the_cut_points_cover_a_whole_run(
    gateway: RunningGateway, proxy: WsCutProxy, machine: RunningFake, journal: Journal, tmp_path: Path
) -> None:
    """An uncut run carries exactly GATEWAY_MESSAGES on the client's socket and LINK_MESSAGES on the
    gateway's link, so the cuts below fall on every message of a run."""
    hub = machine.server.hub
    sent = [0]

    async def count_from_now() -> None:
        sent[0] = hub.sent

    sink, run_id, eid = await one_run(proxy.url, gateway.admin_token, journal, count_from_now)
    await check_completed_once(sink, run_id, eid, tmp_path / "blobs")
    assert (proxy.messages[-1], hub.sent - sent[0]) == (GATEWAY_MESSAGES, LINK_MESSAGES)


@pytest.mark.parametrize("k", range(1, GATEWAY_MESSAGES + 1))
async def test_gateway_socket_cut_after_message_k(
    gateway: RunningGateway, proxy: WsCutProxy, journal: Journal, tmp_path: Path, k: int
) -> None:
    cuts = proxy.cuts
    proxy.cut_next_after(k)
    sink, run_id, eid = await one_run(proxy.url, gateway.admin_token, journal)
    await sink.connected_times(2)
    assert proxy.cuts == cuts + 1
    assert ConnectionState.RECONNECTING in sink.states()
    await check_completed_once(sink, run_id, eid, tmp_path / "blobs")


@pytest.mark.parametrize("k", range(1, LINK_MESSAGES + 1))
async def test_gateway_link_to_comfyui_cut_after_message_k(
    gateway: RunningGateway, machine: RunningFake, journal: Journal, tmp_path: Path, k: int
) -> None:
    hub = machine.server.hub
    posted, views = machine.state.prompts_posted, machine.state.views
    before = hub.connections

    async def arm() -> None:
        hub.drop_connected_after(k)  # the gateway's socket (the only one) dies after the run's k-th message

    sink, run_id, eid = await one_run(gateway.url, gateway.admin_token, journal, arm)
    await wait_for(lambda: hub.connections > before)  # the cut happened and the gateway is back
    assert machine.state.prompts_posted == posted + 1  # never submitted twice
    await wait_for(lambda: machine.state.views >= views + 1)
    assert machine.state.views == views + 1  # the image fetched from ComfyUI once
    await check_completed_once(sink, run_id, eid, tmp_path / "blobs")


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(20))
async def test_long_gateway_runs_cut_at_random_points(
    gateway: RunningGateway,
    proxy: WsCutProxy,
    machine: RunningFake,
    journal: Journal,
    tmp_path: Path,
    seed: int,
) -> None:
    """A 20-step run through the gateway with both its socket and its link to ComfyUI cut at a random
    message (drawn from the counts of the same run made uncut first); it ends once with its image, posted
    to ComfyUI once."""
    rng = random.Random(seed)
    steps = 20
    hub = machine.server.hub
    sent = [0]

    async def count_from_now() -> None:
        sent[0] = hub.sent

    sink, run_id, eid = await one_run(proxy.url, gateway.admin_token, journal, count_from_now, steps=steps)
    await check_completed_once(sink, run_id, eid, tmp_path / "blobs")
    on_socket, on_link = proxy.messages[-1], hub.sent - sent[0]

    cuts, posted, before = proxy.cuts, machine.state.prompts_posted, hub.connections
    k = rng.randint(1, on_socket)
    proxy.cut_next_after(k)

    async def arm_link() -> None:
        hub.drop_connected_after(rng.randint(1, on_link))

    sink, run_id, eid = await one_run(proxy.url, gateway.admin_token, journal, arm_link, steps=steps)
    try:
        await wait_for(lambda: hub.connections > before)  # the link was cut, and is back
        if proxy.cuts == cuts:  # the link's cut cost the socket messages: it ended before message k
            assert proxy.messages[-1] < k
            proxy.cut_next_after(None)
        else:
            await sink.connected_times(2)
        assert machine.state.prompts_posted == posted + 1
    finally:
        await check_completed_once(sink, run_id, eid, tmp_path / "blobs")
