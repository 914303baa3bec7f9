"""Every example of the product spec, reproduced field for field through `comfydesk serve` in front of the
demo engine (real sockets)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from comfydesk.gateway.testing import RunningGateway
from tests.conftest import FIXTURES
from tests.integration.gateway_helpers import (
    API,
    BLOG_POST_IMAGE,
    SPEC_INPUTS,
    client,
    create_workflow,
    follow,
    run_to_end,
)
from tests.postgres import running_gateway

SPEC = FIXTURES.parent.parent / "spec" / "comfyui-api.md"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def spec_examples() -> list[Any]:
    """The JSON blocks of the spec, in order."""
    text = Path(SPEC).read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def same_shape(got: Any, want: Any, *, ignore: tuple[str, ...] = ("created_at", "updated_at")) -> None:
    """`got` equals the spec's `want` key for key and value for value, except timestamps (then: ISO 8601
    UTC) and ids, which this server numbers itself."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), (list(got), list(want))
        for key, value in want.items():
            if key in ignore:
                assert ISO_Z.match(got[key]), got[key]
            else:
                same_shape(got[key], value, ignore=ignore)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (got, want)
        for g, w in zip(got, want, strict=True):
            same_shape(g, w, ignore=ignore)
    else:
        assert got == want, (got, want)


@pytest.fixture
def gateway(tmp_path: Path, database_url: str | None) -> Iterator[RunningGateway]:
    """The conftest's gateway, once on SQLite and once on PostgreSQL."""
    yield from running_gateway(tmp_path, database_url)


async def test_the_spec_examples_reproduce_field_for_field(gateway: RunningGateway) -> None:
    (listing, execute_body, execute_answer, status_answer, nodes_answer, not_found, _exec_error) = (
        spec_examples()
    )
    assert execute_body == SPEC_INPUTS
    async with client(gateway, gateway.admin_token) as c:
        workflow_id = await create_workflow(c, BLOG_POST_IMAGE)
        assert workflow_id == 1

        same_shape((await c.get(f"{API}/workflows")).json(), listing)

        resp = await c.post(f"{API}/workflows/{workflow_id}/execute", json=execute_body)
        assert resp.status_code == 202
        same_shape(resp.json(), execute_answer)

        execution = await run_to_end(gateway, gateway.admin_token, 1)
        same_shape({"status": "success", "data": {"execution": execution}}, status_answer)

        image = await c.get(execution["outputs"]["images"][0]["url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(image.content)) as img:
            assert img.format == "PNG" and img.size == (1024, 768)

        nodes = (await c.get(f"{API}/nodes")).json()
        assert nodes["status"] == "success"
        (entry,) = [n for n in nodes["data"]["nodes"] if n["id"] == "text_to_image"]
        (want,) = nodes_answer["data"]["nodes"]
        for key, value in want.items():  # key for key; the server adds what the definition has besides
            if isinstance(value, list):
                assert [i["name"] for i in entry[key]] == [i["name"] for i in value]
                for got_item, want_item in zip(entry[key], value, strict=True):
                    assert {k: got_item[k] for k in want_item} == want_item
                    assert got_item["comfy_type"] == want_item["type"].upper()
            else:
                assert entry[key] == value, key

        resp = await c.get(f"{API}/workflows/99")
        assert resp.status_code == 404
        missing = resp.json()
        assert missing["status"] == "error" and missing["errors"][0]["code"] == "not_found"
        resp = await c.get(f"{API}/workflows/1")
        await c.delete(f"{API}/workflows/1")
        same_shape((await c.get(f"{API}/workflows/1")).json(), not_found)


async def test_progress_is_0_to_100_over_the_whole_graph(gateway: RunningGateway) -> None:
    async with client(gateway, gateway.admin_token) as c:
        workflow_id = await create_workflow(c)
        resp = await c.post(f"{API}/workflows/{workflow_id}/execute", json=SPEC_INPUTS)
        execution_id = resp.json()["data"]["execution"]["id"]
    messages = await follow(gateway, gateway.admin_token, execution_id)
    assert messages[0]["type"] == "status"
    kinds = [m["type"] for m in messages]
    assert kinds[-1] == "completed" and kinds.count("completed") == 1
    progress = [m["execution"]["progress"] for m in messages if m["type"] == "progress"]
    assert progress == sorted(progress) and progress and max(progress) < 100
    steps = [(m["value"], m["max"]) for m in messages if m["type"] == "progress" and m.get("max")]
    assert steps[-1] == (8, 8)
    assert any(m["type"] == "preview" and m["mime"].startswith("image/") for m in messages)
    final = messages[-1]["execution"]
    assert final["progress"] == 100 and len(final["outputs"]["images"]) == 1
