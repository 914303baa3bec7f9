"""The fake ComfyUI's queue (interrupt, delete, clear, restart) and its injected faults, over real sockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from comfydesk.testing import RunningFake
from tests.conftest import FIXTURES
from tests.integration.test_fake_helpers import captured_request, open_recorder, post_prompt


def _slow(rec_client: str, steps: int, color: int) -> dict[str, Any]:
    body = captured_request("queue_a_slow")
    body["client_id"] = rec_client
    body["prompt"]["2"]["inputs"]["steps"] = steps
    body["prompt"]["1"]["inputs"]["color"] = color
    return body


async def test_interrupt_delete_then_next_runs(fake_comfyui: RunningFake) -> None:
    rec = await open_recorder(fake_comfyui)
    async with rec.ws, httpx.AsyncClient(base_url=fake_comfyui.url) as client:
        a = (await post_prompt(fake_comfyui, _slow(rec.client_id, 1000, 1))).json()["prompt_id"]
        await rec.until(lambda m: m.type == "progress")
        b = (await post_prompt(fake_comfyui, _slow(rec.client_id, 4, 2))).json()["prompt_id"]
        c = (await post_prompt(fake_comfyui, _slow(rec.client_id, 4, 3))).json()["prompt_id"]
        queue = (await client.get("/queue")).json()
        assert [i[1] for i in queue["queue_running"]] == [a]
        assert [i[1] for i in queue["queue_pending"]] == [b, c]
        assert sorted(queue["queue_pending"][0][3]) == ["client_id", "create_time"]
        assert (await client.post("/queue", json={"delete": [c]})).content == b""
        assert (await client.get("/prompt")).json() == {"exec_info": {"queue_remaining": 2}}
        response = await client.post("/interrupt", json={"prompt_id": a})
        assert response.status_code == 200 and response.content == b""
        rec.messages.clear()
        await rec.until_done(b)
        types = [
            m.type for m in rec.messages if m.kind == "text" and m.type not in ("progress", "progress_state")
        ]
        types = types[types.index("execution_interrupted") :]
        assert types[:6] == [
            "execution_interrupted",
            "status",
            "executing",
            "status",
            "execution_start",
            "execution_cached",
        ]
        interrupted = rec.messages[[m.type for m in rec.messages].index("execution_interrupted")].data
        assert (interrupted["node_id"], interrupted["node_type"], interrupted["executed"]) == (
            "2",
            "TestSlowSteps",
            ["1"],
        )
        history_a = (await client.get(f"/history/{a}")).json()[a]
        assert history_a["status"]["status_str"] == "error" and history_a["status"]["completed"] is False
        assert history_a["status"]["messages"][-1][0] == "execution_interrupted"
        assert (await client.get(f"/history/{c}")).json() == {}
        assert (await client.get("/queue")).json() == json.loads((FIXTURES / "queue_empty.json").read_text())


async def test_clear_keeps_running_then_global_interrupt(fake_comfyui: RunningFake) -> None:
    rec = await open_recorder(fake_comfyui)
    async with rec.ws, httpx.AsyncClient(base_url=fake_comfyui.url) as client:
        a = (await post_prompt(fake_comfyui, _slow(rec.client_id, 1000, 4))).json()["prompt_id"]
        await rec.until(lambda m: m.type == "progress")
        await post_prompt(fake_comfyui, _slow(rec.client_id, 4, 5))
        await client.post("/queue", json={"clear": True})
        queue = (await client.get("/queue")).json()
        assert [i[1] for i in queue["queue_running"]] == [a] and queue["queue_pending"] == []
        await client.post("/interrupt")
        await rec.until_done(a)
        assert (await client.get("/history")).json()[a]["status"]["status_str"] == "error"


async def test_front_and_client_prompt_id_and_number(fake_comfyui: RunningFake) -> None:
    body = captured_request("text_output")
    body.pop("client_id")
    first = (await post_prompt(fake_comfyui, {**body, "prompt_id": "my-own-id"})).json()
    bad = await post_prompt(fake_comfyui, {"prompt": {}})
    assert bad.status_code == 400
    second = (await post_prompt(fake_comfyui, {**body, "front": True})).json()
    assert first["prompt_id"] == "my-own-id" and first["number"] == 0
    assert second["number"] == -2  # the rejected POST used up number 1
    assert fake_comfyui.state.wait_idle(10)


async def test_unimplemented_node_fails_honestly(fake_comfyui: RunningFake) -> None:
    body = json.loads((FIXTURES / "prompts" / "txt2img_tiny_sd15.request.json").read_text())
    rec = await open_recorder(fake_comfyui)
    async with rec.ws:
        body["client_id"] = rec.client_id
        response = await post_prompt(fake_comfyui, body)
        assert response.status_code == 200, response.text
        error = await rec.until(lambda m: m.type == "execution_error")
    assert error.data["exception_type"] == "NotImplementedError"
    assert "no implementation" in error.data["exception_message"]


async def test_restart_forgets_everything_and_drops_sockets(fake_comfyui: RunningFake) -> None:
    rec = await open_recorder(fake_comfyui)
    async with rec.ws:
        a = (await post_prompt(fake_comfyui, _slow(rec.client_id, 1000, 6))).json()["prompt_id"]
        await rec.until(lambda m: m.type == "progress")
        fake_comfyui.restart()
        with pytest.raises(ConnectionClosed) as info:
            await rec.until(lambda m: False)
        assert info.value.rcvd is None  # no close frame: an abrupt drop
    assert fake_comfyui.state.wait_idle(5)
    async with httpx.AsyncClient(base_url=fake_comfyui.url) as client:
        assert (await client.get(f"/history/{a}")).json() == {}
        assert (await client.get("/history")).json() == {}
    again = await post_prompt(fake_comfyui, captured_request("text_output"))
    assert again.json()["number"] == 0


async def test_fault_drop_websocket_after(fake_comfyui: RunningFake) -> None:
    fake_comfyui.faults.drop_websocket_after(3)
    rec = await open_recorder(fake_comfyui)
    async with rec.ws:
        body = captured_request("empty_blur_save")
        body["client_id"] = rec.client_id
        await post_prompt(fake_comfyui, body)
        for _ in range(3):
            await rec.next()
        with pytest.raises(ConnectionClosed) as info:
            await rec.next()
        assert info.value.rcvd is None
    second = await open_recorder(fake_comfyui)  # only the next socket was affected
    async with second.ws:
        assert (await second.next()).type == "status"


async def test_fault_refuse_websockets(fake_comfyui: RunningFake) -> None:
    fake_comfyui.faults.refuse_websockets(2)
    for _ in range(2):
        with pytest.raises(InvalidStatus) as info:
            await connect(f"{fake_comfyui.ws_url}?clientId=x")
        assert info.value.response.status_code == 403
    async with connect(f"{fake_comfyui.ws_url}?clientId=x") as ws:
        assert json.loads(await ws.recv())["type"] == "status"


async def test_fault_http_routes(fake_comfyui: RunningFake) -> None:
    faults = fake_comfyui.faults
    async with httpx.AsyncClient(base_url=fake_comfyui.url, timeout=5) as client:
        faults.fail_route("/queue", status=503, times=2)
        assert (await client.get("/queue")).status_code == 503
        assert (await client.get("/api/queue")).status_code == 503
        assert (await client.get("/queue")).status_code == 200
        faults.malformed_json("/api/system_stats")
        broken = await client.get("/system_stats")
        assert broken.status_code == 200
        with pytest.raises(ValueError):
            broken.json()
        assert (await client.get("/system_stats")).json()["system"]["comfyui_version"] == "0.8.0"
        faults.delay_route("/features", 5.0)
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/features", timeout=0.2)
        faults.clear()
        assert (await client.get("/features")).json()["supports_preview_metadata"] is True


async def test_reconnect_gets_executing_and_status(fake_comfyui: RunningFake) -> None:
    rec = await open_recorder(fake_comfyui)
    body = _slow(rec.client_id, 1000, 7)
    async with rec.ws:
        await post_prompt(fake_comfyui, body)
        await rec.until(lambda m: m.type == "progress")
    async with connect(f"{fake_comfyui.ws_url}?clientId={rec.client_id}") as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert first["data"]["sid"] == rec.client_id
        assert first["data"]["status"]["exec_info"]["queue_remaining"] == 1
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {
            "type": "executing",
            "data": {"node": "2"},
        }
    async with httpx.AsyncClient(base_url=fake_comfyui.url) as client:
        await client.post("/interrupt")
    assert fake_comfyui.state.wait_idle(5)
