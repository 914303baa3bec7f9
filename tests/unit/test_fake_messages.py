"""The fake ComfyUI writes its per-step messages (`progress`, `progress_state`) itself instead of through
json.dumps: the text must be exactly what json.dumps makes of the message."""

from __future__ import annotations

import json
from typing import Any

import pytest

from comfydesk.testing.executor import _Progress, progress_text
from comfydesk.testing.state import QueueItem

JSON = dict[str, Any]


class _Recorder:
    """Stands in for the executor: keeps the texts `_Progress` sends."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def send_client_text(self, item: QueueItem, text: str) -> None:
        self.texts.append(text)


def _expected_state(pid: str, nodes: dict[str, JSON]) -> str:
    """What the fake sent before, built the way it built it: the full map through json.dumps."""
    full = {
        nid: {
            "value": s["value"],
            "max": s["max"],
            "state": s["state"],
            "node_id": nid,
            "prompt_id": pid,
            "display_node_id": nid,
            "parent_node_id": None,
            "real_node_id": nid,
        }
        for nid, s in nodes.items()
    }
    return json.dumps({"type": "progress_state", "data": {"prompt_id": pid, "nodes": full}})


@pytest.mark.parametrize("pid", ["5b0e3c1e-0d7a-4f5e-9a51-2f6d0c1e8a11", 'quote " and \\ and é'])
def test_progress_state_text_is_json_dumps_of_the_full_map(pid: str) -> None:
    item = QueueItem(1, pid, {}, {"client_id": "c"}, [])
    recorder = _Recorder()
    progress = _Progress(recorder, item)  # type: ignore[arg-type]
    expected: list[str] = []

    def check() -> None:
        expected.append(_expected_state(pid, progress.nodes))

    progress.finish("1")  # a cached node: finished without a start
    check()
    for nid in ("10", "ü-11", "3"):
        progress.start(nid)
        check()
        for step in range(1, 4):
            progress.update(nid, step, 3)
            check()
        progress.finish(nid)
        check()
    progress.update("7", 0.5, 2.0)  # values a node may report as floats
    check()
    progress.update("7", True, 1)  # a bool is written as true, not 1
    check()
    progress.finish("7")
    check()
    assert recorder.texts == expected
    assert json.loads(recorder.texts[-1])["data"]["nodes"]["ü-11"]["state"] == "finished"


@pytest.mark.parametrize(
    ("value", "total", "pid", "nid"),
    [
        (1, 20, "abc", "3"),
        (0.0, 1.0, "abc", "10"),
        (7, 2.5, "ü\n", '"q"'),
        (True, 1, "x", "y"),
        (-3, 10**20, "x", "y"),
    ],
)
def test_progress_text_is_json_dumps(value: Any, total: Any, pid: str, nid: str) -> None:
    data = {"value": value, "max": total, "prompt_id": pid, "node": nid}
    expected = json.dumps({"type": "progress", "data": data})
    assert progress_text(value, total, json.dumps(pid), json.dumps(nid)) == expected
