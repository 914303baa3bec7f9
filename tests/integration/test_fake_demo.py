"""The demo engine runs every sample workflow for real and serves the PNGs it made."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from comfydesk.testing import RunningFake, start_fake_comfyui
from comfydesk.testing.demo import demo_config, sample_workflows_dir
from tests.integration.test_fake_helpers import open_recorder, post_prompt

WORKFLOWS = sorted(p.name for p in sample_workflows_dir().glob("*.json"))


@pytest.fixture
def demo_engine(tmp_path: Path) -> Iterator[RunningFake]:
    config = demo_config(tmp_path / "demo")
    config.step_delay = 0.0
    fake = start_fake_comfyui(config)
    try:
        yield fake
    finally:
        fake.stop()


def _fill(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: f"a simple {m.group(1)}", value)
    return value


def test_there_are_sample_workflows() -> None:
    assert 4 <= len(WORKFLOWS) <= 6


@pytest.mark.parametrize("name", WORKFLOWS)
async def test_sample_workflow_makes_a_png(demo_engine: RunningFake, name: str) -> None:
    workflow = json.loads((sample_workflows_dir() / name).read_text())
    assert set(workflow) == {"name", "description", "nodes"} and "no AI model" in workflow["description"]
    prompt = {
        n["id"]: {"class_type": n["type"], "inputs": {k: _fill(v) for k, v in n["inputs"].items()}}
        for n in workflow["nodes"]
    }
    rec = await open_recorder(demo_engine, preview_metadata=True)
    async with rec.ws:
        response = await post_prompt(demo_engine, {"prompt": prompt, "client_id": rec.client_id})
        assert response.status_code == 200, response.text
        prompt_id = response.json()["prompt_id"]
        await rec.until_done(prompt_id)
    assert any(m.kind == "binary" and m.event_type == 4 for m in rec.messages)  # DemoPattern previews
    async with httpx.AsyncClient(base_url=demo_engine.url) as client:
        entry = (await client.get(f"/history/{prompt_id}")).json()[prompt_id]
        assert entry["status"]["status_str"] == "success"
        (images,) = [out["images"] for out in entry["outputs"].values()]
        for image in images:
            view = await client.get("/view", params=image)
            assert view.status_code == 200 and view.headers["content-type"] == "image/png"
            with Image.open(io.BytesIO(view.content)) as img:
                img.load()
                assert img.format == "PNG" and min(img.size) >= 256
                lo, hi = img.convert("L").getextrema()
                assert hi - lo > 40  # a picture, not a flat fill


async def test_demo_catalog_is_labelled(demo_engine: RunningFake) -> None:
    async with httpx.AsyncClient(base_url=demo_engine.url) as client:
        info = (await client.get("/object_info")).json()
        assert (await client.get("/templates/index.json")).json() == []
        stats = (await client.get("/system_stats")).json()
    assert {k for k, v in info.items() if v["category"] == "demo"} == {
        "DemoPattern",
        "DemoText",
        "text_to_image",
    }
    assert "no AI model" in stats["system"]["pytorch_version"]
    assert info["DemoPattern"]["input"]["required"]["seed"][1]["control_after_generate"] is True


def test_demo_server_command_is_registered() -> None:
    from comfydesk.cli import build_parser

    args = build_parser().parse_args(["demo-server", "--port", "9999", "--data-dir", "/tmp/x"])
    assert (args.host, args.port, args.demo_data_dir) == ("127.0.0.1", 9999, "/tmp/x")
    assert args.handler.__module__ == "comfydesk.commands.demo_server"


async def test_text_to_image_draws_a_1024x768_poster_and_saves_it(demo_engine: RunningFake) -> None:
    """The node of the /api/v1 spec's examples is an output node: a graph of it alone runs and saves."""
    prompt = {"t": {"class_type": "text_to_image", "inputs": {"prompt": "A beautiful landscape"}}}
    async with httpx.AsyncClient(base_url=demo_engine.url, timeout=30) as client:
        answer = (await client.post("/prompt", json={"prompt": prompt})).json()
        assert answer["node_errors"] == {}
        prompt_id = answer["prompt_id"]
        entry: dict[str, Any] = {}
        for _ in range(1500):  # the run takes 8 steps of 10 ms; 30 s at most
            if entry.get("status", {}).get("completed"):
                break
            entry = (await client.get(f"/history/{prompt_id}")).json().get(prompt_id, {})
            await asyncio.sleep(0.02)
        (image,) = entry["outputs"]["t"]["images"]
        view = await client.get("/view", params=image)
    with Image.open(io.BytesIO(view.content)) as img:
        assert img.size == (1024, 768)
        lo, hi = img.convert("L").getextrema()
        assert hi - lo > 40
