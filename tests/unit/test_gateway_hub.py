"""The gateway's progress fan-out (`comfydesk.gateway.hub`): order, what a subscriber that falls behind
loses (superseded progress and previews) and what it never loses (status changes, the end). The sockets'
side is in tests/integration/test_gateway_fanout.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

from comfydesk.gateway.hub import _BEHIND, _QUEUE_SIZE, EventHub, Subscription

EXECUTION = 7
TOKEN = 1


def message(kind: str, n: int = 0, execution_id: int = EXECUTION) -> dict[str, Any]:
    if kind == "preview":
        return {"type": "preview", "execution": {"id": execution_id}, "node": "1", "image": f"frame-{n}"}
    status = kind if kind in ("completed", "failed", "cancelled") else "running"
    return {"type": kind, "execution": {"id": execution_id, "status": status, "progress": n}}


@contextlib.contextmanager
def subscribers(
    hub: EventHub, count: int, execution_id: int | None = EXECUTION
) -> Iterator[list[Subscription]]:
    """`count` subscribers of one execution (None: of all the token's), unsubscribed on exit."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(hub.subscribe(execution_id=execution_id, token_id=TOKEN, admin=False))
            for _ in range(count)
        ]


async def drain(sub: Subscription) -> list[dict[str, Any]]:
    """What the subscriber's writer would send, up to what is waiting now."""
    out: list[dict[str, Any]] = []
    while sub.pending:
        got = await sub.next()
        assert got is not None
        out.append(json.loads(got.text))
    return out


async def settle(hub: EventHub) -> None:
    """Let a paced fan-out hand out everything published."""
    while hub._fanout is not None:
        await asyncio.sleep(0)


def labels(messages: list[dict[str, Any]]) -> list[str]:
    return [
        f"{m['type']}:{m['image'] if m['type'] == 'preview' else m['execution']['progress']}"
        for m in messages
    ]


async def test_every_subscriber_gets_every_message_in_order_slice_after_slice() -> None:
    hub = EventHub(fanout_slice=3, fanout_pause=0)
    published = [message("status"), message("progress", 10), message("preview", 1), message("status", 20)]
    published.append(message("completed", 100))
    with subscribers(hub, 10) as subs:
        for m in published:
            hub.publish(EXECUTION, TOKEN, m)
        assert hub._fanout is not None  # ten subscribers: handed out a slice at a time
        await settle(hub)
        for sub in subs:
            assert await drain(sub) == published


async def test_a_subscriber_that_joins_after_a_publish_does_not_get_it() -> None:
    hub = EventHub(fanout_slice=1, fanout_pause=0)
    with subscribers(hub, 2) as subs:
        hub.publish(EXECUTION, TOKEN, message("progress", 10))
        with hub.subscribe(execution_id=EXECUTION, token_id=TOKEN, admin=False) as late:
            hub.publish(EXECUTION, TOKEN, message("progress", 20))
            await settle(hub)
            assert labels(await drain(late)) == ["progress:20"]
        for sub in subs:
            assert labels(await drain(sub)) == ["progress:10", "progress:20"]


async def test_a_waiting_preview_gives_way_to_a_newer_one_when_the_fan_out_is_behind() -> None:
    hub = EventHub(fanout_slice=1, fanout_pause=0)
    with subscribers(hub, 3, execution_id=None) as subs:
        hub.publish(EXECUTION, TOKEN, message("preview", 1))  # being handed out: goes on
        hub.publish(EXECUTION, TOKEN, message("preview", 2))  # superseded by 4 before its turn
        hub.publish(EXECUTION, TOKEN, message("status", 5))
        hub.publish(EXECUTION + 1, TOKEN, message("preview", 3, EXECUTION + 1))  # another run's: stays
        hub.publish(EXECUTION, TOKEN, message("preview", 4))
        hub.publish(EXECUTION, TOKEN, message("completed", 100))
        await settle(hub)
        for sub in subs:
            assert labels(await drain(sub)) == [
                "preview:frame-1",
                "status:5",
                "preview:frame-3",
                "preview:frame-4",
                "completed:100",
            ]


async def test_a_subscriber_that_is_behind_keeps_the_newest_progress_and_every_status() -> None:
    hub = EventHub()
    with hub.subscribe(execution_id=EXECUTION, token_id=TOKEN, admin=False) as slow:
        for n in range(1, 41):
            hub.publish(EXECUTION, TOKEN, message("progress", n))
            hub.publish(EXECUTION, TOKEN, message("preview", n))
            if n % 10 == 0:
                hub.publish(EXECUTION, TOKEN, message("status", n))
        hub.publish(EXECUTION, TOKEN, message("completed", 100))
        got = labels(await drain(slow))
    assert got[-4:] == ["progress:40", "preview:frame-40", "status:40", "completed:100"]
    assert [g for g in got if g.startswith("status")] == ["status:10", "status:20", "status:30", "status:40"]
    assert len(got) < 40 * 2  # progress and previews were superseded ...
    assert len(got) <= _BEHIND + 4 + 1  # ... down to what a subscriber that is behind may hold
    progress = [int(g.split(":")[1]) for g in got if g.startswith("progress")]
    assert progress == sorted(progress)  # what is left is still in order


async def test_a_full_queue_never_drops_the_end() -> None:
    hub = EventHub()
    with hub.subscribe(execution_id=None, token_id=TOKEN, admin=False) as slow:
        # Status messages of many runs (a token's /events stream) fill the queue: none is superseded.
        for execution_id in range(1, _QUEUE_SIZE + 50):
            hub.publish(execution_id, TOKEN, message("status", execution_id, execution_id=execution_id))
        hub.publish(EXECUTION, TOKEN, message("progress", 99))  # no room, nothing droppable: not kept
        hub.publish(EXECUTION, TOKEN, message("completed", 100))
        assert slow.pending <= _QUEUE_SIZE
        got = await drain(slow)
    assert got[-1]["type"] == "completed"
    assert all(m["type"] == "status" for m in got[:-1])
    ids = [m["execution"]["id"] for m in got[:-1]]
    assert ids == sorted(ids) and ids[-1] == _QUEUE_SIZE + 49  # the oldest status changes went first


async def test_a_closed_subscription_answers_none_and_takes_nothing_more() -> None:
    hub = EventHub()
    with hub.subscribe(execution_id=EXECUTION, token_id=TOKEN, admin=False) as sub:
        waiting = asyncio.ensure_future(sub.next())
        await asyncio.sleep(0)
        sub.close()
        assert await waiting is None
        hub.publish(EXECUTION, TOKEN, message("completed", 100))
        assert sub.pending == 0
        assert await sub.next() is None
    assert hub.subscriber_count == 0


async def test_stopping_mid_fan_out_still_hands_out_what_was_published() -> None:
    hub = EventHub(fanout_slice=1, fanout_pause=60)
    with subscribers(hub, 3) as subs:
        hub.publish(EXECUTION, TOKEN, message("progress", 10))
        hub.publish(EXECUTION, TOKEN, message("completed", 100))
        await asyncio.sleep(0)  # the first slice is out; the next waits 60 s
        assert hub._fanout is not None
        hub._fanout.cancel()
        await settle(hub)
        for sub in subs:
            assert labels(await drain(sub)) == ["progress:10", "completed:100"]
