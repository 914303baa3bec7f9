"""The fake ComfyUI against the captures of a real ComfyUI 0.8.0: same messages in the same order and shape,
same history entries, same error answers, same upload and /view semantics."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from comfydesk.testing import RunningFake
from tests.conftest import FIXTURES
from tests.integration.fake_helpers import (
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
