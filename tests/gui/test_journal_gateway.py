"""Reconciling the journal with a comfydesk gateway (`GET /executions/{id}`): a run an earlier session left
open is finished with its image when the gateway says it completed, and failed when the gateway does not
know it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import qasync
from pytestqt.qtbot import QtBot

from comfydesk.app.journal_runs import LOST_REASON
from comfydesk.gateway.testing import RunningGateway, start_gateway
from comfydesk.store.journal import Journal
from comfydesk.store.paths import resolve_paths
from tests.gui.gateway_helpers import GATEWAY_PROFILE_ID, MemoryKeyring, memory_keyring, save_gateway_profile
from tests.gui.helpers import OpenWindow, windows

TIMEOUT = 20_000


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def ring(open_window: OpenWindow) -> Iterator[MemoryKeyring]:
    yield from memory_keyring()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    gw = start_gateway(data_dir=tmp_path / "gateway", demo_step_delay=0.001)
    yield gw
    gw.stop()


def api(gw: RunningGateway, method: str, route: str, body: Any = None) -> Any:
    resp = httpx.request(
        method,
        f"{gw.url}/api/v1/comfyui{route}",
        json=body,
        headers={"Authorization": f"Bearer {gw.admin_token}"},
    )
    resp.raise_for_status()
    return resp.json()["data"]


def test_reconcile_with_a_gateway(
    qtbot: QtBot, open_window: OpenWindow, ring: MemoryKeyring, gateway: RunningGateway, tmp_path: Path
) -> None:
    workflow = api(
        gateway,
        "POST",
        "/workflows",
        {
            "name": "Earlier",
            "nodes": [{"id": "t2i", "type": "text_to_image", "inputs": {"prompt": "{prompt}"}}],
        },
    )["workflow"]
    execution = api(gateway, "POST", f"/workflows/{workflow['id']}/execute", {"inputs": {"prompt": "a fox"}})
    done_id = str(execution["execution"]["id"])

    def state() -> dict[str, Any]:
        return api(gateway, "GET", f"/executions/{done_id}")["execution"]  # type: ignore[no-any-return]

    qtbot.waitUntil(lambda: state()["status"] == "completed", timeout=TIMEOUT)
    image_url = state()["outputs"]["images"][0]["url"]

    data_dir = tmp_path / "app"
    save_gateway_profile(data_dir, gateway.url, gateway.admin_token, ring)
    paths = resolve_paths(data_dir).ensure()
    journal = Journal(paths.journal_file, paths.blobs_dir)
    runs = []
    for execution_id in (done_id, "987654"):
        run = journal.record_run(
            profile_id=GATEWAY_PROFILE_ID,
            server="Team gateway",
            workflow_name="Earlier",
            workflow_id=str(workflow["id"]),
            api_graph={},
            ui_graph=None,
            values={"prompt": "a fox"},
            seed=None,
        )
        journal.mark_submitted(run.id, execution_id)
        runs.append(run.id)
    journal.close()

    window = open_window(server=None, data_dir=data_dir)

    def status(run_id: int) -> str:
        return window.ctx.journal.call_blocking(lambda j: j.run(run_id)).status  # type: ignore[no-any-return]

    done, lost = runs
    qtbot.waitUntil(lambda: status(done) == "completed" and status(lost) == "failed", timeout=TIMEOUT)
    [output] = window.ctx.journal.call_blocking(lambda j: j.outputs_of_run(done))
    served = httpx.get(
        image_url if "://" in image_url else f"{gateway.url}{image_url}",
        headers={"Authorization": f"Bearer {gateway.admin_token}"},
    )
    assert output.path is not None and hashlib.sha256(output.path.read_bytes()).hexdigest() == output.sha256
    if served.status_code == 200:  # the gateway keeps images for a while only
        assert hashlib.sha256(served.content).hexdigest() == output.sha256
    assert window.ctx.journal.call_blocking(lambda j: j.run(lost)).error == LOST_REASON
