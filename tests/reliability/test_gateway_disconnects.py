"""Disconnects at every point, through the gateway (issue 14): the gateway's own `/events` WebSocket cut after
its k-th message (a TCP proxy that counts WebSocket messages, `wsproxy.py`), and the gateway's link to
ComfyUI cut after its k-th message (the fake ComfyUI's `drop_websocket_after`), for every k of a run. Each
time the run must end exactly once, completed with its one image, stored once in the client's journal; on
the link side ComfyUI must have been sent the prompt once and asked for the image once. Then: a run posted
while the gateway's only machine is away is held and runs when it is back, or fails in words after the
grace; and a reconnect attempt of the gateway backend that fails drops its socket rather than closing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfydesk.backends.base import ConnectionState
from comfydesk.backends.reconnect import ReconnectPolicy
from comfydesk.backends.v1 import V1Backend
from comfydesk.backends.v1_errors import BackendUnavailable
from comfydesk.core.events import Completed, Failed, Interrupted
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


# -- a run posted while the gateway's only machine is away ----------------------------------------------


class AwayMachine:
    """One demo machine in front of which a test gateway runs: `stop()` takes it away (its port refuses
    connections from then on), `start()` brings a fresh one back on the same port."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = demo_config(tmp_path / "machine")
        self.config.step_delay = 0.01
        self.current: RunningFake | None = start_fake_comfyui(self.config)
        self.url = self.current.url

    async def stop(self) -> None:
        if self.current is not None:
            await asyncio.to_thread(self.current.stop)
            self.current = None

    async def start(self) -> RunningFake:
        port = int(self.url.rsplit(":", 1)[1])
        self.current = await asyncio.to_thread(start_fake_comfyui, self.config, port=port)
        return self.current


@contextlib.asynccontextmanager
async def held_setup(
    tmp_path: Path, journal: Journal, *, grace: float
) -> AsyncIterator[tuple[RunningGateway, AwayMachine, JournalSink, str]]:
    """A gateway (`reconnect_grace=grace`) in front of a machine of its own, a connected client following
    runs into `journal`, and a workflow of that client (its id)."""
    machine = AwayMachine(tmp_path)
    (tmp_path / "gateway").mkdir()
    gateway = start_gateway(comfyui_urls=[machine.url], data_dir=tmp_path / "gateway", reconnect_grace=grace)
    backend = V1Backend(gateway.url, token=gateway.admin_token, reconnect=FAST, timeout=10)
    sink = JournalSink(backend, journal)
    try:
        await backend.connect()
        workflow = await backend.create_workflow("Held pattern", "", pattern())
        yield gateway, machine, sink, str(workflow["id"])
    finally:
        await backend.close()
        await sink.stop()
        gateway.stop()
        await machine.stop()


async def admin_get(gateway: RunningGateway, route: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        resp = await client.get(
            f"/api/v1/comfyui{route}", headers={"Authorization": f"Bearer {gateway.admin_token}"}
        )
    data: dict[str, Any] = resp.json()["data"]
    return data


async def machine_down(gateway: RunningGateway) -> bool:
    """The gateway has seen its (only) machine's link drop (`/backends`)."""
    [backend] = (await admin_get(gateway, "/backends"))["backends"]
    return not backend["healthy"]


async def machine_up(gateway: RunningGateway) -> bool:
    return not await machine_down(gateway)


async def wait_until(check: Any, gateway: RunningGateway, timeout: float = 20.0) -> None:
    """Wait for a condition the gateway answers (polled over HTTP)."""
    async with asyncio.timeout(timeout):
        while not await check(gateway):
            await asyncio.sleep(0.02)  # polling interval of a condition wait, not a fixed wait


async def test_a_run_posted_while_the_link_reconnects_is_held_and_completes_once(
    tmp_path: Path, journal: Journal
) -> None:
    """The machine goes away (the gateway's link drops and it reconnects); a run posted meanwhile is
    accepted and held as `queued`, not refused with 503, and runs once the machine is back: completed
    once with its image, posted to ComfyUI once, its image fetched once."""
    async with held_setup(tmp_path, journal, grace=30.0) as (gateway, machine, sink, workflow_id):
        await machine.stop()
        await wait_until(machine_down, gateway)
        run_id, execution = await sink.submit(
            workflow_id=workflow_id, inputs={"seed": next(_seeds)}, own_id=False
        )
        held = (await admin_get(gateway, f"/executions/{execution.id}"))["execution"]
        assert (held["status"], held["progress"]) == ("queued", 0)
        back = await machine.start()
        end = await sink.end_of(execution.id)
        assert isinstance(end, Completed), kinds(sink.of(execution.id))
        assert back.state.prompts_posted == 1  # sent to ComfyUI once, when it was back
        await wait_for(lambda: back.state.views >= 1)
        assert back.state.views == 1
        await check_completed_once(sink, run_id, execution.id, tmp_path / "blobs")


async def test_a_run_held_past_the_grace_fails_in_words_and_the_gateway_goes_on(
    tmp_path: Path, journal: Journal
) -> None:
    """The machine stays away past the grace (1 s here): the held run fails once, `backend_unavailable`
    in words, journalled so; when the machine is back, the next run completes."""
    async with held_setup(tmp_path, journal, grace=1.0) as (gateway, machine, sink, workflow_id):
        await machine.stop()
        await wait_until(machine_down, gateway)
        run_id, execution = await sink.submit(
            workflow_id=workflow_id, inputs={"seed": next(_seeds)}, own_id=False
        )
        end = await sink.end_of(execution.id)
        assert isinstance(end, Failed), kinds(sink.of(execution.id))
        message = end.error.message
        assert message.startswith(
            "No ComfyUI machine could take the run: no ComfyUI machine came back within 1 s ("
        ), message
        assert f"({machine.url}: " in message, message  # what became of the machine
        assert_ended_once(sink, execution.id)
        assert (sink.run(run_id).status, sink.run(run_id).error) == ("failed", message)
        row = (await admin_get(gateway, f"/executions/{execution.id}"))["execution"]
        assert (row["status"], row["error"]["code"]) == ("failed", "backend_unavailable")

        back = await machine.start()
        await wait_until(machine_up, gateway)
        run_id, execution = await sink.submit(
            workflow_id=workflow_id, inputs={"seed": next(_seeds)}, own_id=False
        )
        assert isinstance(await sink.end_of(execution.id), Completed), kinds(sink.of(execution.id))
        assert back.state.prompts_posted == 1  # the failed run was never sent
        await check_completed_once(sink, run_id, execution.id, tmp_path / "blobs")


async def test_a_held_run_cancelled_is_never_sent(tmp_path: Path, journal: Journal) -> None:
    """Cancelling a held run ends it at once, cancelled; when the machine is back it is not sent, and
    the next run completes."""
    async with held_setup(tmp_path, journal, grace=30.0) as (gateway, machine, sink, workflow_id):
        await machine.stop()
        await wait_until(machine_down, gateway)
        run_id, execution = await sink.submit(
            workflow_id=workflow_id, inputs={"seed": next(_seeds)}, own_id=False
        )
        await sink.backend.cancel(execution.id)
        end = await sink.end_of(execution.id)
        assert isinstance(end, Interrupted) and end.reason == "cancelled", kinds(sink.of(execution.id))
        assert_ended_once(sink, execution.id)
        assert sink.run(run_id).status == "cancelled"
        back = await machine.start()
        await wait_until(machine_up, gateway)
        run_id, execution = await sink.submit(
            workflow_id=workflow_id, inputs={"seed": next(_seeds)}, own_id=False
        )
        assert isinstance(await sink.end_of(execution.id), Completed), kinds(sink.of(execution.id))
        assert back.state.prompts_posted == 1  # only the second run
        await check_completed_once(sink, run_id, execution.id, tmp_path / "blobs")


async def test_with_no_grace_a_run_posted_while_the_link_reconnects_is_refused_at_once(
    tmp_path: Path, journal: Journal
) -> None:
    """`reconnect_grace=0` (`comfydesk serve --reconnect-grace 0`) keeps the immediate 503."""
    async with held_setup(tmp_path, journal, grace=0.0) as (gateway, machine, sink, workflow_id):
        await machine.stop()
        await wait_until(machine_down, gateway)
        with pytest.raises(BackendUnavailable) as refused:
            await sink.submit(workflow_id=workflow_id, inputs={"seed": 1}, own_id=False)
        assert "No ComfyUI machine is reachable now" in str(refused.value)


async def test_a_failed_reconnect_attempt_drops_its_socket_instead_of_closing_it(
    gateway: RunningGateway, proxy: WsCutProxy, journal: Journal, tmp_path: Path
) -> None:
    """The V1 backend's socket is cut in a busy run (a progress and a preview message per step), and the
    first reconnect attempt's check of the run (`GET /executions/{id}`) goes unanswered past the timeout.
    Meanwhile the attempt's new socket received more messages than it reads ahead (16), so reading is
    paused: a closing handshake on it would wait out websockets' 10 s close timeout. The attempt drops the
    connection instead, the next one reconnects, and the run completes once (the waits end at 8 s)."""
    backend = V1Backend(proxy.url, token=gateway.admin_token, reconnect=FAST, timeout=1.0)
    sink = JournalSink(backend, journal)
    hung = proxy.hung
    try:
        proxy.cut_next_after(40)  # claimed by the socket that connects now; the run cuts it in its 20 steps
        await backend.connect()
        workflow = await backend.create_workflow("Busy pattern", "", pattern(100))
        run_id, execution = await sink.submit(
            workflow_id=str(workflow["id"]), inputs={"seed": next(_seeds)}, own_id=False
        )
        proxy.hang_next_request(f"/api/v1/comfyui/executions/{execution.id}")
        await sink.connected_times(2, timeout=8.0)
        assert proxy.hung == hung + 1  # the first attempt met the unanswered check
        attempts = [
            c.status.attempt for c in sink.statuses() if c.status.state is ConnectionState.RECONNECTING
        ]
        assert max(attempts) >= 2
        end = await sink.end_of(execution.id)
    except BaseException:
        await backend.close()
        await sink.stop()
        raise
    assert isinstance(end, Completed), kinds(sink.of(execution.id))
    await check_completed_once(sink, run_id, execution.id, tmp_path / "blobs")
