"""Helpers for the gateway tests: an authenticated client, the spec's workflow, waiting for a run to end."""

from __future__ import annotations

import json
from typing import Any

import httpx
from websockets.asyncio.client import connect

from comfydesk.gateway.testing import RunningGateway

API = "/api/v1/comfyui"
TERMINAL = ("completed", "failed", "cancelled")

#: The spec's "Blog Post Image" workflow, exactly as the spec writes it (without the server's fields).
BLOG_POST_IMAGE: dict[str, Any] = {
    "name": "Blog Post Image",
    "description": "Generate blog post header image",
    "nodes": [
        {
            "id": "text_to_image",
            "type": "text_to_image",
            "inputs": {"prompt": "{prompt}", "negative_prompt": "{negative_prompt}"},
        }
    ],
}
SPEC_INPUTS = {"inputs": {"prompt": "A beautiful landscape", "negative_prompt": "ugly, blurry"}}


def client(gw: RunningGateway, token: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=30)


def ws_url(gw: RunningGateway, path: str) -> str:
    return "ws" + gw.url[len("http") :] + API + path


async def create_workflow(c: httpx.AsyncClient, doc: dict[str, Any] | None = None) -> int:
    resp = await c.post(f"{API}/workflows", json=doc or BLOG_POST_IMAGE)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["data"]["workflow"]["id"])


async def execute(c: httpx.AsyncClient, workflow_id: int, body: dict[str, Any] | None = None) -> int:
    resp = await c.post(f"{API}/workflows/{workflow_id}/execute", json=body or SPEC_INPUTS)
    assert resp.status_code == 202, resp.text
    return int(resp.json()["data"]["execution"]["id"])


async def follow(gw: RunningGateway, token: str, execution_id: int) -> list[dict[str, Any]]:
    """Every message of the execution's WebSocket until its terminal one (the socket then closes)."""
    messages: list[dict[str, Any]] = []
    async with connect(
        ws_url(gw, f"/executions/{execution_id}/events"),
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=10,
        max_size=16 * 1024 * 1024,
    ) as ws:
        async for frame in ws:
            message = json.loads(frame)
            messages.append(message)
            if message["type"] in TERMINAL:
                break
    return messages


async def run_to_end(gw: RunningGateway, token: str, execution_id: int) -> dict[str, Any]:
    """Wait for the end through the WebSocket, then the execution as GET shows it."""
    await follow(gw, token, execution_id)
    async with client(gw, token) as c:
        resp = await c.get(f"{API}/executions/{execution_id}")
    assert resp.status_code == 200, resp.text
    execution: dict[str, Any] = resp.json()["data"]["execution"]
    return execution
