"""Workflows and executions through the gateway: validation on save and on execute, ComfyUI refusing a
graph, cancel, listing, late WebSocket subscribers, the all-executions stream, image expiry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from comfydesk.gateway.testing import RunningGateway, start_gateway
from tests.integration.gateway_helpers import (
    API,
    BLOG_POST_IMAGE,
    SPEC_INPUTS,
    client,
    create_workflow,
    execute,
    follow,
    run_to_end,
    ws_url,
)
from tests.postgres import running_gateway


@pytest.fixture
def gateway(tmp_path: Path, database_url: str | None) -> Iterator[RunningGateway]:
    """The conftest's gateway, once on SQLite and once on PostgreSQL."""
    yield from running_gateway(tmp_path, database_url)


def pattern_workflow(steps: int = 8, *, seed: Any = "{seed}") -> dict[str, Any]:
    return {
        "name": "Slow pattern",
        "description": "",
        "nodes": [
            {
                "id": "1",
                "type": "DemoPattern",
                "inputs": {
                    "pattern": "rings",
                    "seed": seed,
                    "width": 64,
                    "height": 64,
                    "steps": steps,
                    "color_a": 0,
                    "color_b": 16777215,
                },
            },
            {"id": "2", "type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "slow"}},
        ],
    }


async def test_saving_names_every_problem_of_the_graph(gateway: RunningGateway) -> None:
    bad = {
        "name": "Broken",
        "nodes": [
            {"id": "1", "type": "NoSuchNode", "inputs": {}},
            {"id": "2", "type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "x"}},
            {
                "id": "3",
                "type": "DemoPattern",
                "inputs": {
                    "pattern": "stars",
                    "seed": 1,
                    "width": 99999,
                    "height": "tall {h}",
                    "steps": 3,
                    "color_a": 0,
                    "color_b": 0,
                },
            },
        ],
    }
    async with client(gateway, gateway.admin_token) as c:
        resp = await c.post(f"{API}/workflows", json=bad)
        assert resp.status_code == 422
        body = resp.json()
        assert body["status"] == "error" and body["message"] == "Workflow validation failed"
        errors = {e["details"]: e["message"] for e in body["errors"]}
        assert all(e["code"] == "validation_error" for e in body["errors"])
        assert "NoSuchNode" in errors["node '1'"]
        assert "node '2' input 'images'" in errors  # a link to a node that is not there
        assert "stars" in errors["node '3' input 'pattern'"]
        assert "99999" in errors["node '3' input 'width'"]
        assert (
            "{h}" in errors["node '3' input 'height'"] and "whole value" in errors["node '3' input 'height'"]
        )
        assert (await c.get(f"{API}/workflows")).json()["data"]["workflows"] == []

        dup = dict(BLOG_POST_IMAGE, nodes=BLOG_POST_IMAGE["nodes"] * 2)
        resp = await c.post(f"{API}/workflows", json=dup)
        assert resp.status_code == 422 and "more than once" in resp.json()["errors"][0]["message"]

        resp = await c.post(f"{API}/workflows", json={"name": "", "nodes": "nope"})
        assert resp.status_code == 422
        assert {e["details"] for e in resp.json()["errors"]} == {"name", "nodes"}


async def test_update_and_delete_a_workflow(gateway: RunningGateway) -> None:
    async with client(gateway, gateway.admin_token) as c:
        workflow_id = await create_workflow(c)
        changed = dict(BLOG_POST_IMAGE, name="Header image", description="wide")
        resp = await c.put(f"{API}/workflows/{workflow_id}", json=changed)
        assert resp.status_code == 200
        workflow = resp.json()["data"]["workflow"]
        assert workflow["name"] == "Header image" and workflow["id"] == workflow_id
        assert (await c.get(f"{API}/workflows/{workflow_id}")).json()["data"]["workflow"] == workflow
        bad = dict(BLOG_POST_IMAGE, nodes=[{"id": "x", "type": "Nope", "inputs": {}}])
        assert (await c.put(f"{API}/workflows/{workflow_id}", json=bad)).status_code == 422
        assert (await c.delete(f"{API}/workflows/{workflow_id}")).json() == {
            "status": "success",
            "data": {"deleted": workflow_id},
        }
        assert (await c.put(f"{API}/workflows/{workflow_id}", json=changed)).status_code == 404
        assert (await c.delete(f"{API}/workflows/{workflow_id}")).status_code == 404
        assert (await c.post(f"{API}/workflows/{workflow_id}/execute", json=SPEC_INPUTS)).status_code == 404


async def test_execute_types_each_placeholder_by_its_input(gateway: RunningGateway) -> None:
    async with client(gateway, gateway.admin_token) as c:
        workflow_id = await create_workflow(c, pattern_workflow())
        resp = await c.post(f"{API}/workflows/{workflow_id}/execute", json={"inputs": {"seed": "twelve"}})
        assert resp.status_code == 422
        (error,) = resp.json()["errors"]
        assert error == {
            "code": "validation_error",
            "message": "Seed must be a whole number, got the text 'twelve'.",
            "details": "input 'seed'",
        }
        resp = await c.post(f"{API}/workflows/{workflow_id}/execute", json={"inputs": {"sed": 3}})
        assert resp.status_code == 422
        assert [e["details"] for e in resp.json()["errors"]] == ["input 'sed'", "input 'seed'"]
        assert (await c.get(f"{API}/executions")).json()["data"]["total"] == 0

        blog = await create_workflow(c)
        resp = await c.post(f"{API}/workflows/{blog}/execute", json={"inputs": {"negative_prompt": 5}})
        assert resp.status_code == 422
        assert [e["details"] for e in resp.json()["errors"]] == ["input 'prompt'", "input 'negative_prompt'"]

        execution = await execute(c, workflow_id, {"inputs": {"seed": 2**64 - 1}})
        done = await run_to_end(gateway, gateway.admin_token, execution)
        assert done["status"] == "completed" and done["outputs"]["images"][0]["width"] == 64


async def test_a_graph_comfyui_refuses_is_an_execution_error(gateway: RunningGateway) -> None:
    """The image a workflow loads was removed from the ComfyUI machine after the workflow was saved."""
    photo = {
        "name": "Invert a photo",
        "nodes": [
            {"id": "1", "type": "LoadImage", "inputs": {"image": "example.png"}},
            {"id": "2", "type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            {"id": "3", "type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}},
        ],
    }
    async with client(gateway, gateway.admin_token) as c:
        workflow_id = await create_workflow(c, photo)
        (Path(gateway.config.data_dir) / "demo-engine" / "input" / "example.png").unlink()
        resp = await c.post(f"{API}/workflows/{workflow_id}/execute", json={"inputs": {}})
        assert resp.status_code == 422
        body = resp.json()
        assert body["message"] == "Workflow execution failed"
        (error,) = body["errors"]
        assert error["code"] == "execution_error" and error["message"] == "Failed to generate image"
        assert error["details"].startswith("Node error: node 1") and "example.png" in error["details"]
        (recorded,) = (await c.get(f"{API}/executions")).json()["data"]["executions"]
        assert recorded["status"] == "failed" and recorded["error"]["code"] == "execution_error"


async def test_cancel_a_running_execution(tmp_path: Path, database_url: str | None) -> None:
    gw = start_gateway(data_dir=tmp_path / "gw", demo_step_delay=0.05, database_url=database_url)
    try:
        async with client(gw, gw.admin_token) as c:
            execution = await execute(
                c, await create_workflow(c, pattern_workflow(100)), {"inputs": {"seed": 1}}
            )
            async with connect(
                ws_url(gw, f"/executions/{execution}/events"),
                additional_headers={"Authorization": f"Bearer {gw.admin_token}"},
            ) as ws:
                async for frame in ws:
                    if json.loads(frame)["type"] == "progress":
                        break
                resp = await c.post(f"{API}/executions/{execution}/cancel")
                assert resp.status_code == 200
                assert resp.json()["data"]["execution"]["status"] == "cancelled"
                rest = [json.loads(f) for f in [frame async for frame in ws]]
            assert rest[-1]["type"] == "cancelled"
            got = (await c.get(f"{API}/executions/{execution}")).json()["data"]["execution"]
            assert got["status"] == "cancelled" and got["error"]["code"] == "cancelled"
            assert got["progress"] < 100
            # Cancelling what has ended changes nothing.
            again = (await c.post(f"{API}/executions/{execution}/cancel")).json()["data"]["execution"]
            assert again == got
    finally:
        gw.stop()


async def test_list_filters_and_pages(gateway: RunningGateway) -> None:
    async with client(gateway, gateway.admin_token) as c:
        blog = await create_workflow(c)
        pattern = await create_workflow(c, pattern_workflow(2))
        ids = [
            await execute(c, blog),
            await execute(c, pattern, {"inputs": {"seed": 3}}),
            await execute(c, blog),
        ]
        for execution in ids:
            await run_to_end(gateway, gateway.admin_token, execution)
        page = (await c.get(f"{API}/executions", params={"limit": 2})).json()["data"]
        assert [e["id"] for e in page["executions"]] == ids[::-1][:2] and page["total"] == 3
        page = (await c.get(f"{API}/executions", params={"limit": 2, "offset": 2})).json()["data"]
        assert [e["id"] for e in page["executions"]] == [ids[0]]
        by_workflow = (await c.get(f"{API}/executions", params={"workflow_id": blog})).json()["data"]
        assert [e["id"] for e in by_workflow["executions"]] == [ids[2], ids[0]]
        done = (await c.get(f"{API}/executions", params={"status": "completed"})).json()["data"]
        assert done["total"] == 3
        assert (await c.get(f"{API}/executions", params={"status": "failed"})).json()["data"]["total"] == 0
        resp = await c.get(f"{API}/executions", params={"status": "sleeping"})
        assert resp.status_code == 422 and resp.json()["errors"][0]["code"] == "validation_error"


async def test_a_late_subscriber_first_gets_the_current_state(gateway: RunningGateway) -> None:
    async with client(gateway, gateway.admin_token) as c:
        execution = await execute(c, await create_workflow(c))
        finished = await run_to_end(gateway, gateway.admin_token, execution)
    messages = await follow(gateway, gateway.admin_token, execution)
    assert [m["type"] for m in messages] == ["status", "completed"]
    assert messages[0]["execution"] == finished == messages[1]["execution"]


async def test_the_all_executions_stream(gateway: RunningGateway) -> None:
    alice = gateway.create_token("alice")
    async with client(gateway, gateway.admin_token) as admin, client(gateway, alice) as a:
        workflow_id = await create_workflow(admin)
        async with connect(
            ws_url(gateway, "/events"), additional_headers={"Authorization": f"Bearer {alice}"}
        ) as ws:
            await execute(admin, workflow_id)  # not alice's: she must not hear of it
            mine = await execute(a, workflow_id)
            seen: list[dict[str, Any]] = []
            async for frame in ws:
                seen.append(json.loads(frame))
                if seen[-1]["type"] == "completed":
                    break
    assert {m["execution"]["id"] for m in seen} == {mine}
    assert seen[-1]["execution"]["outputs"]["images"][0]["width"] == 1024


async def test_images_expire_after_their_ttl(tmp_path: Path, database_url: str | None) -> None:
    # 2 s: the timestamps have whole seconds, and the run itself takes most of one.
    gw = start_gateway(data_dir=tmp_path / "gw", image_ttl=2.0, database_url=database_url)
    try:
        async with client(gw, gw.admin_token) as c:
            done = await run_to_end(gw, gw.admin_token, await execute(c, await create_workflow(c)))
            url = done["outputs"]["images"][0]["url"]
            assert (await c.get(url)).status_code == 200
            stored = tmp_path / "gw" / "images" / url.rsplit("/", 1)[1]
            assert stored.is_file()
            for _ in range(400):  # the sweeper runs every 0.25 s with this TTL
                if not stored.exists():
                    break
                await asyncio.sleep(0.02)
            assert not stored.exists()
            resp = await c.get(url)
            assert resp.status_code == 404
            assert resp.json()["errors"][0] == {
                "code": "not_found",
                "message": f"Image with id {url.rsplit('/', 1)[1].split('.')[0]} not found",
            }
            # The record keeps what the run made.
            again = (await c.get(f"{API}/executions/{done['id']}")).json()["data"]["execution"]
            assert again["outputs"] == done["outputs"]
    finally:
        gw.stop()


@pytest.mark.parametrize("name", ["../gateway.db", "1.png/../../x", "01.exe", "%2e%2e%2fgateway.db"])
async def test_image_names_are_not_paths(gateway: RunningGateway, name: str) -> None:
    async with client(gateway, gateway.admin_token) as c:
        resp = await c.get(f"/api/v1/images/generated/{name}")
    assert resp.status_code == 404


async def test_unreadable_bodies_are_named_plainly(gateway: RunningGateway) -> None:
    headers = {"Content-Type": "application/json"}
    async with client(gateway, gateway.admin_token) as c:
        resp = await c.post(f"{API}/workflows", content=b'{"name": "x", "nodes": [', headers=headers)
        assert resp.status_code == 422
        (error,) = resp.json()["errors"]
        assert error["code"] == "validation_error" and "not valid JSON" in error["message"]
        assert error["details"].startswith("body, character ")
        resp = await c.post(f"{API}/workflows", content=b'{"name": "\xff"}', headers=headers)
        assert resp.status_code == 400
        assert resp.json()["errors"][0]["code"] == "validation_error"
