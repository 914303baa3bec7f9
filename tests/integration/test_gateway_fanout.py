"""Progress fan-out over real sockets: a subscriber that stops reading holds up no one else, loses only
superseded progress and previews, and still gets every status change and the end, in order. (The fan-out
is the same whatever the database: SQLite only.)"""

from __future__ import annotations

import json
import socket
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from comfydesk.gateway.testing import RunningGateway
from tests.integration.gateway_helpers import TERMINAL, client, create_workflow, execute, ws_url

STEPS = 100  # a step each: the most DemoPattern takes


def noisy_workflow() -> dict[str, Any]:
    """Two DemoPattern nodes of noise at 512 px, one after the other: 2 x STEPS previews of some 30 KB,
    more than a socket that is not read can hold in its buffers."""

    def pattern(node_id: str, seed: int) -> dict[str, Any]:
        inputs = {"pattern": "noise", "seed": seed, "width": 512, "height": 512, "steps": STEPS}
        return {"id": node_id, "type": "DemoPattern", "inputs": {**inputs, "color_a": 0, "color_b": 0xFFFFFF}}

    def save(node_id: str, source: str) -> dict[str, Any]:
        return {"id": node_id, "type": "SaveImage", "inputs": {"images": [source, 0], "filename_prefix": "n"}}

    nodes = [pattern("1", 1), save("2", "1"), pattern("3", 2), save("4", "3")]
    return {"name": "Noisy previews", "description": "", "nodes": nodes}


def tiny_receive_buffer(gw: RunningGateway) -> socket.socket:
    """A connection to the gateway whose receive buffer is 4 KB (set before connecting, so it holds)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = gw.url.removeprefix("http://").rsplit(":", 1)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


async def until_the_end(ws: ClientConnection, execution_id: int) -> list[dict[str, Any]]:
    """The `/events` messages about one execution, up to and with its terminal one."""
    got: list[dict[str, Any]] = []
    async for frame in ws:
        message = json.loads(frame)
        if message["execution"]["id"] != execution_id:
            continue
        got.append(message)
        if message["type"] in TERMINAL:
            return got
    raise AssertionError(f"the socket closed before the end: {[m['type'] for m in got]}")


def in_order(messages: list[dict[str, Any]]) -> None:
    """Percentages never go back, step values of the node never go back, the end is last."""
    percents = [m["execution"]["progress"] for m in messages if "progress" in m["execution"]]
    assert percents == sorted(percents)
    for node in ("1", "3"):
        steps = [m["value"] for m in messages if m["type"] == "progress" and m.get("node") == node]
        assert steps == sorted(steps)
    assert [m["type"] for m in messages].count("completed") == 1 and messages[-1]["type"] == "completed"


async def test_a_subscriber_that_stops_reading_holds_up_no_one_and_still_gets_the_end(
    gateway: RunningGateway,
) -> None:
    token = gateway.admin_token
    url = ws_url(gateway, "/events") + f"?token={token}"
    async with client(gateway, token) as c:
        workflow_id = await create_workflow(c, noisy_workflow())
        # The slow one reads nothing until the fast one has seen the end: its frames pile up in a 4 KB
        # receive buffer and a queue of one frame (`max_queue`), then at the gateway.
        async with (
            connect(url, sock=tiny_receive_buffer(gateway), max_size=None, max_queue=1) as slow,
            connect(url, max_size=None) as fast,
        ):
            execution_id = await execute(c, workflow_id, {"inputs": {}})
            fast_got = await until_the_end(fast, execution_id)
            slow_got = await until_the_end(slow, execution_id)
    in_order(fast_got)
    in_order(slow_got)
    fast_kinds = [m["type"] for m in fast_got]
    slow_kinds = [m["type"] for m in slow_got]
    assert fast_kinds.count("preview") == 2 * STEPS  # a reader that keeps up misses nothing
    # The one that did not read lost previews (newer ones superseded them) but no status change.
    assert 0 < slow_kinds.count("preview") < 2 * STEPS
    assert [m["execution"]["status"] for m in slow_got if m["type"] == "status"] == [
        m["execution"]["status"] for m in fast_got if m["type"] == "status"
    ]
    assert slow_got[-1] == fast_got[-1]
