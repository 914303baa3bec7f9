"""The fake ComfyUI against the captures of a real ComfyUI 0.8.0: same messages in the same order and shape,
same history entries, same error answers, same upload and /view semantics."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest

from comfydesk.testing import RunningFake
from tests.conftest import FIXTURES
from tests.integration.test_fake_helpers import (
    captured_request,
    captured_transcript,
    open_recorder,
    post_prompt,
    shape,
)

SIMPLE_RUNS = [
    "empty_blur_save",
    "batch4_save",
    "two_outputs",
    "empty_preview",
    "text_output",
    "fail",
    "slow_steps",
    "slow_steps_preview_metadata",
]


def _history_shape(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "keys": sorted(entry),
        "prompt_len": len(entry["prompt"]),
        "outputs_to_execute": sorted(entry["prompt"][4]),
        "status": {k: v for k, v in entry["status"].items() if k != "messages"},
        "messages": [m[0] for m in entry["status"]["messages"]],
        "outputs": {
            node: {
                kind: [sorted(item) if isinstance(item, dict) else type(item).__name__ for item in items]
                for kind, items in out.items()
            }
            for node, out in entry["outputs"].items()
        },
        "meta": entry["meta"],
    }


def _captured_history(run: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / "history" / f"{run}.json").read_text())
    (entry,) = data.values()
    result: dict[str, Any] = entry
    return result


async def _run_captured(fake: RunningFake, run: str, *, request: str | None = None) -> tuple[list[Any], str]:
    rec = await open_recorder(fake, preview_metadata=run.endswith("_preview_metadata"))
    async with rec.ws:
        await rec.until(lambda m: m.type == "status")
        if run.endswith("_preview_metadata"):
            await rec.until(lambda m: m.type == "feature_flags")
        body = captured_request(request or run)
        body["client_id"] = rec.client_id
        response = await post_prompt(fake, body)
        assert response.status_code == 200, response.text
        prompt_id = response.json()["prompt_id"]
        rec.messages.clear()
        await rec.until_done(prompt_id)
        return rec.messages, prompt_id


def _expected(run: str) -> list[Any]:
    messages = captured_transcript(run)
    # Drop what came before our POST: the first status (and feature_flags answer).
    start = next(i for i, m in enumerate(messages) if m.type == "status" and "sid" not in m.data)
    return messages[start:]


@pytest.mark.parametrize("run", SIMPLE_RUNS)
async def test_run_matches_capture(fake_comfyui: RunningFake, run: str) -> None:
    messages, prompt_id = await _run_captured(fake_comfyui, run)
    assert shape(messages) == shape(_expected(run))
    async with httpx.AsyncClient(base_url=fake_comfyui.url) as client:
        history = (await client.get(f"/history/{prompt_id}")).json()
    assert _history_shape(history[prompt_id]) == _history_shape(_captured_history(run))


async def test_cached_rerun_matches_capture(fake_comfyui: RunningFake) -> None:
    await _run_captured(fake_comfyui, "empty_blur_save_cached")
    messages, prompt_id = await _run_captured(fake_comfyui, "empty_blur_save_cached")
    assert shape(messages) == shape(_expected("empty_blur_save_cached"))
    cached = next(m for m in messages if m.type == "execution_cached")
    assert cached.data["nodes"] == ["1", "2", "3"]
    executed = next(m for m in messages if m.type == "executed")
    assert executed.data["output"]["images"][0]["filename"] == "fixture_blur_00001_.png"
    async with httpx.AsyncClient(base_url=fake_comfyui.url) as client:
        history = (await client.get(f"/history/{prompt_id}")).json()
    expected = _captured_history("empty_blur_save_cached")
    assert _history_shape(history[prompt_id]) == _history_shape(expected)


async def test_load_invert_scale_save_after_upload(fake_comfyui: RunningFake) -> None:
    body = captured_request("load_invert_scale_save")
    name = body["prompt"]["10"]["inputs"]["image"]
    source = (FIXTURES / "misc" / "upload_source.png").read_bytes()
    async with httpx.AsyncClient(base_url=fake_comfyui.url) as client:
        up = await client.post(
            "/upload/image", files={"image": (name, source, "image/png")}, data={"type": "input"}
        )
        assert up.json() == {"name": name, "subfolder": "", "type": "input"}
    messages, prompt_id = await _run_captured(fake_comfyui, "load_invert_scale_save")
    assert shape(messages) == shape(_expected("load_invert_scale_save"))
    async with httpx.AsyncClient(base_url=fake_comfyui.url) as client:
        history = (await client.get(f"/history/{prompt_id}")).json()[prompt_id]
        assert _history_shape(history) == _history_shape(_captured_history("load_invert_scale_save"))
        image = history["outputs"]["13"]["images"][0]
        assert image == {"filename": "inverted_00001_.png", "subfolder": "fixture", "type": "output"}
        view = await client.get("/view", params=image)
    assert view.status_code == 200 and view.headers["content-type"] == "image/png"
    assert view.headers["content-disposition"] == 'filename="inverted_00001_.png"'
    from PIL import Image

    with Image.open(io.BytesIO(view.content)) as img:
        assert img.size == (128, 96)
        assert json.loads(img.info["prompt"])["13"]["class_type"] == "SaveImage"


def _mask(body: Any) -> Any:
    """Prompt ids and numbers differ between servers; everything else must not."""
    if isinstance(body, dict):
        return {k: ("<id>" if k in ("prompt_id", "number") else _mask(v)) for k, v in body.items()}
    if isinstance(body, list):
        return [_mask(v) for v in body]
    return body


ERROR_CASES = sorted(p.stem for p in (FIXTURES / "errors").glob("*.json"))


@pytest.mark.parametrize("case", ERROR_CASES)
async def test_error_case_replayed(fake_comfyui: RunningFake, case: str) -> None:
    captured = json.loads((FIXTURES / "errors" / f"{case}.json").read_text())
    req = captured["request"]
    # The reference server's input/ held the uploaded gradient when these were captured.
    source = (FIXTURES / "misc" / "upload_source.png").read_bytes()
    (fake_comfyui.data_dir / "input" / "fixture_gradient.png").write_bytes(source)
    async with httpx.AsyncClient(base_url=fake_comfyui.url) as client:
        if "raw_body" in req:
            response = await client.request(req["method"], req["path"], content=req["raw_body"])
        elif "json" in req:
            response = await client.request(req["method"], req["path"], json=req["json"])
        else:
            response = await client.request(req["method"], req["path"])
    assert response.status_code == captured["status"]
    assert response.headers.get("content-type") == captured["content_type"]
    if isinstance(captured["body"], str):
        assert response.text == captured["body"]
    else:
        assert _mask(response.json()) == _mask(captured["body"])


async def test_upload_semantics(fake_comfyui: RunningFake) -> None:
    source = (FIXTURES / "misc" / "upload_source.png").read_bytes()
    other = source[:-12] + b"\x00" * 12
    name = "fixture_gradient.png"
    async with httpx.AsyncClient(base_url=fake_comfyui.url) as client:

        async def upload(data: bytes, **fields: str) -> Any:
            response = await client.post(
                "/upload/image", files={"image": (name, data, "image/png")}, data=fields
            )
            assert response.status_code == 200
            return response.json()

        first = json.loads((FIXTURES / "upload_image_response.json").read_text())["body"]
        assert await upload(source, type="input", overwrite="true") == first
        same = json.loads((FIXTURES / "misc" / "upload_image_same_name_response.json").read_text())["body"]
        assert await upload(source) == same
        clash = json.loads((FIXTURES / "misc" / "upload_image_name_clash_response.json").read_text())["body"]
        assert await upload(other) == clash
        sub = json.loads((FIXTURES / "misc" / "upload_image_subfolder_response.json").read_text())["body"]
        assert await upload(source, subfolder="fixtures") == sub
        info = (await client.get("/api/object_info/LoadImage")).json()
    expected = json.loads((FIXTURES / "object_info_LoadImage_after_upload.json").read_text())
    assert info == expected


async def test_view_status_codes(fake_comfyui: RunningFake) -> None:
    async with httpx.AsyncClient(base_url=fake_comfyui.url) as client:
        assert (
            await client.get("/view", params={"filename": "nope.png", "type": "output"})
        ).status_code == 404
        assert (
            await client.get("/view", params={"filename": "../x.png", "type": "output"})
        ).status_code == 400
        assert (await client.get("/view", params={"filename": "a.png", "type": "bogus"})).status_code == 400
        assert (
            await client.get("/view", params={"filename": "a.png", "subfolder": "../.."})
        ).status_code == 403
        (fake_comfyui.data_dir / "output" / "x.png").write_bytes(
            (FIXTURES / "view" / "empty_preview.png").read_bytes()
        )
        webp = await client.get(
            "/api/view", params={"filename": "x.png", "type": "output", "preview": "webp;80"}
        )
    assert webp.status_code == 200 and webp.headers["content-type"] == "image/webp"
    assert webp.content[:4] == b"RIFF" and webp.content[8:12] == b"WEBP"
