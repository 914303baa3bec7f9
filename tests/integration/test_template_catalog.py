"""The template catalogue and thumbnails through ComfyUIBackend, against the fake serving the captures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from comfydesk.backends.comfyui import ComfyUIBackend
from comfydesk.backends.comfyui_templates import template_requirements
from tests.conftest import FIXTURES, load_json


@pytest.fixture
async def backend(fake_comfyui: Any) -> AsyncIterator[ComfyUIBackend]:
    client = ComfyUIBackend(fake_comfyui.url, timeout=5)
    try:
        yield client
    finally:
        await client.close()


async def test_catalog_is_parsed_with_categories_and_details(backend: ComfyUIBackend) -> None:
    categories = await backend.template_catalog()
    titles = [c.title for c in categories]
    assert titles == ["Use cases", "Image", "Video", "Audio", "3D Model", "LLM", "Getting Started"]
    everything = {t.name: t for c in categories for t in c.templates}
    assert len(everything) == 220  # as many as list_workflows offers
    flux = everything["flux_schnell"]
    raw = next(
        t for c in load_json("templates_index.json") for t in c["templates"] if t["name"] == "flux_schnell"
    )
    assert flux.title == raw["title"] and flux.description == raw["description"]
    assert flux.tags == tuple(raw["tags"]) and flux.models == tuple(raw["models"])
    assert flux.size == raw["size"] and flux.media_type == "image" and flux.thumbnail_ext == "webp"
    assert {c.media_type for c in categories} == {"image", "video", "audio", "3d"}
    assert everything["text_to_video_wan"].media_type == "video"  # its own mediaType is its thumbnail's
    audio = next(c for c in categories if c.media_type == "audio").templates[0]
    assert (audio.media_type, audio.thumbnail_media, audio.thumbnail_ext) == ("audio", "audio", "mp3")


async def test_thumbnails_are_served_and_missing_ones_are_none(backend: ComfyUIBackend) -> None:
    data = await backend.fetch_template_thumbnail("default")
    assert data == (FIXTURES / "templates" / "default-1.webp").read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert await backend.fetch_template_thumbnail("no_such_template") is None
    assert await backend.fetch_template_thumbnail("../object_info") is None


def test_requirements_skip_subgraph_instances_and_notes() -> None:
    needs = template_requirements(load_json("workflows/ui/video_ltx2_pose_to_video.json"))
    assert "DWPreprocessor" in needs.node_types  # the custom node the server lacks
    assert not any(len(t) == 36 and t.count("-") == 4 for t in needs.node_types)  # no subgraph uuids
    assert ("checkpoints", "ltx-2-19b-dev-fp8.safetensors") in needs.models
    default = template_requirements(load_json("workflows/ui/default.json"))
    assert default.models == {("checkpoints", "v1-5-pruned-emaonly-fp16.safetensors")}
