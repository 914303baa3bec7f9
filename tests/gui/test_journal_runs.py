"""The run journal in the app, against the fake ComfyUI over real sockets: a run through the window's
controller is recorded with its graph, values and seed; a temporary output is saved before the server forgets
it; the journal's unfinished runs are reconciled on start-up and after a server restart. No sleeps: every wait
is on a condition."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from comfydesk.app.journal_runs import LOST_REASON, NOT_SUBMITTED_REASON
from comfydesk.core.templates import SeedControl
from comfydesk.store.journal import Journal, OutputRecord, RunRecord
from comfydesk.store.paths import resolve_paths
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.testing.demo import demo_object_info_path
from comfydesk.ui.main_window import MainWindow
from tests.conftest import FIXTURES
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow

TIMEOUT = 20_000


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def demo_fake(tmp_path: Path) -> Iterator[RunningFake]:
    fake = start_fake_comfyui(
        FakeConfig(
            object_info=demo_object_info_path(), data_dir=tmp_path / "fake", step_delay=0.002, demo=True
        )
    )
    yield fake
    fake.stop()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[RunningFake]:
    running = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake")
    )
    yield running
    running.stop()


def journal_of(window: MainWindow) -> Any:
    return window.ctx.journal


def run_of(window: MainWindow, run_id: int) -> RunRecord | None:
    return journal_of(window).call_blocking(lambda j: j.run(run_id))  # type: ignore[no-any-return]


def outputs_of(window: MainWindow, run_id: int) -> list[OutputRecord]:
    return journal_of(window).call_blocking(lambda j: j.outputs_of_run(run_id))  # type: ignore[no-any-return]


def status_of(window: MainWindow, run_id: int) -> str | None:
    run = run_of(window, run_id)
    return run.status if run else None


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_workflow(*, steps: int = 0, preview: bool = False) -> dict[str, Any]:
    """EmptyImage -> [PreviewImage] -> [TestSlowSteps] -> SaveImage."""
    wf: dict[str, Any] = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 1, "color": 7}}
    }
    last = "1"
    if preview:
        wf["2"] = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    if steps:
        wf["3"] = {
            "class_type": "TestSlowSteps",
            "inputs": {"image": ["1", 0], "steps": steps, "delay": 1.0, "preview": False},
        }
        last = "3"
    wf["99"] = {"class_type": "SaveImage", "inputs": {"images": [last, 0], "filename_prefix": "journal"}}
    return wf


def submit_elsewhere(fake: RunningFake, graph: dict[str, Any], prompt_id: str | None = None) -> str:
    """Submit as another client would (an earlier session of comfydesk); returns the prompt id."""
    body: dict[str, Any] = {"prompt": graph, "client_id": "earlier-session"}
    if prompt_id is not None:
        body["prompt_id"] = prompt_id
    resp = httpx.post(f"{fake.url}/prompt", json=body)
    resp.raise_for_status()
    return str(resp.json()["prompt_id"])


def history(fake: RunningFake, prompt_id: str) -> dict[str, Any]:
    doc = httpx.get(f"{fake.url}/history/{prompt_id}").json()
    return doc.get(prompt_id) or {}


def test_a_run_lands_in_the_journal_with_its_graph_values_and_seed(
    qtbot: QtBot, open_window: OpenWindow, demo_fake: RunningFake, tmp_path: Path
) -> None:
    from tests.gui.test_flow import pattern_workflow

    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Pattern", pattern_workflow(seed=1234, steps=4))
    window = open_window(server=demo_fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    window.form.set_seed_control("1.seed", SeedControl.FIXED)
    added: list[OutputRecord] = []
    journal_of(window).outputs_added.connect(added.extend)
    sent: list[Any] = []
    window.ctx.controller.submitted.connect(sent.append)
    qtbot.mouseClick(window.run_button, Qt.MouseButton.LeftButton)
    # The strip shows the result once its thumbnail exists; the journal's last writes may still be under way.
    qtbot.waitUntil(
        lambda: (
            window.results.count() == 1
            and len(added) == 1
            and status_of(window, added[0].run_id) == "completed"
        ),
        timeout=TIMEOUT,
    )

    [output] = added
    run = run_of(window, output.run_id)
    assert run is not None and run.status == "completed" and run.finished_at is not None
    assert run.execution_id == sent[0].id and run.profile_id == "cli" and run.workflow_name == "Pattern"
    assert run.api_graph == sent[0].graph.to_prompt()
    assert run.seed == 1234 and run.values["1.seed"] == 1234 and run.values["1.pattern"] == "plasma"
    assert run.ui_graph is None  # an API-format file
    assert output.path is not None and sha(output.path) == output.sha256
    assert output.path.is_relative_to(resolve_paths(data_dir).blobs_dir)
    assert (output.width, output.height, output.seed) == (96, 96, 1234)
    assert sha(window.results.results()[0].path) == output.sha256  # the strip shows the same image


def test_a_temp_output_is_saved_before_the_server_forgets_it(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Preview then slow", save_workflow(steps=1000, preview=True))
    window = open_window(server=fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    added: list[OutputRecord] = []
    journal_of(window).outputs_added.connect(added.extend)
    window.run_workflow()
    qtbot.waitUntil(lambda: len(added) == 1, timeout=TIMEOUT)  # announced by PreviewImage mid-run
    [temp] = added
    assert temp.node_id == "2" and temp.path is not None
    temp_files = list((fake.data_dir / "temp").rglob("*.png"))
    assert [sha(p) for p in temp_files] == [temp.sha256]

    fake.restart()  # queue, history and temp/ forgotten
    assert not list((fake.data_dir / "temp").rglob("*.png"))
    qtbot.waitUntil(lambda: status_of(window, temp.run_id) == "failed", timeout=TIMEOUT)
    assert sha(temp.path) == temp.sha256
    assert [(o.id, o.sha256) for o in outputs_of(window, temp.run_id)] == [(temp.id, temp.sha256)]


def test_reconcile_on_start_up_finishes_done_runs_and_fails_lost_ones(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    lost_id = submit_elsewhere(fake, save_workflow(steps=1000))
    fake.restart()  # the server restarts with that run unfinished: it is lost
    done_id = submit_elsewhere(fake, save_workflow())
    qtbot.waitUntil(lambda: bool(history(fake, done_id).get("outputs")), timeout=TIMEOUT)

    data_dir = tmp_path / "app"
    paths = resolve_paths(data_dir).ensure()
    journal = Journal(paths.journal_file, paths.blobs_dir)
    common: dict[str, Any] = {
        "profile_id": "cli",
        "server": "fake",
        "workflow_name": "Earlier",
        "workflow_id": None,
        "api_graph": save_workflow(),
        "ui_graph": None,
        "values": {},
        "seed": None,
    }
    done, lost, unsent = (journal.record_run(**common).id for _ in range(3))
    other = journal.record_run(**{**common, "profile_id": "another-server"}).id
    journal.mark_submitted(done, done_id)
    journal.set_status(done, "running")
    journal.mark_submitted(lost, lost_id)
    journal.mark_submitted(other, "elsewhere")
    journal.close()

    window = open_window(server=fake.url, data_dir=data_dir)
    qtbot.waitUntil(
        lambda: all(
            status_of(window, r) not in ("recorded", "queued", "running") for r in (done, lost, unsent)
        ),
        timeout=TIMEOUT,
    )
    assert status_of(window, done) == "completed"
    [output] = outputs_of(window, done)
    saved = history(fake, done_id)["outputs"]["99"]["images"][0]
    assert output.sha256 == sha(fake.data_dir / "output" / saved["filename"]) == sha(output.path)  # type: ignore[arg-type]
    lost_run, unsent_run = run_of(window, lost), run_of(window, unsent)
    assert lost_run is not None and (lost_run.status, lost_run.error) == ("failed", LOST_REASON)
    assert unsent_run is not None and (unsent_run.status, unsent_run.error) == (
        "failed",
        NOT_SUBMITTED_REASON,
    )
    assert status_of(window, other) == "queued"  # another profile's runs are asked about on that server only


def test_a_run_killed_between_post_and_answer_is_found_by_the_id_recorded_before_posting(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    """The journal holds the prompt id before the POST: a run whose POST reached the server but whose answer
    never came back (comfydesk killed in between) completes on the next start; one whose POST never left
    fails as not submitted."""
    data_dir = tmp_path / "app"
    paths = resolve_paths(data_dir).ensure()
    journal = Journal(paths.journal_file, paths.blobs_dir)
    common: dict[str, Any] = {
        "profile_id": "cli",
        "server": "fake",
        "workflow_name": "Killed while posting",
        "workflow_id": None,
        "api_graph": save_workflow(),
        "ui_graph": None,
        "values": {},
        "seed": None,
    }
    reached = journal.record_run(**common, execution_id="4f6c7d1e-0000-4000-8000-000000000001")
    never_sent = journal.record_run(**common, execution_id="4f6c7d1e-0000-4000-8000-000000000002")
    journal.close()
    assert reached.status == "recorded" and reached.execution_id is not None
    submit_elsewhere(fake, save_workflow(), prompt_id=reached.execution_id)
    qtbot.waitUntil(lambda: bool(history(fake, reached.execution_id or "").get("outputs")), timeout=TIMEOUT)

    window = open_window(server=fake.url, data_dir=data_dir)
    qtbot.waitUntil(
        lambda: status_of(window, reached.id) == "completed" and status_of(window, never_sent.id) == "failed",
        timeout=TIMEOUT,
    )
    assert len(outputs_of(window, reached.id)) == 1
    unsent = run_of(window, never_sent.id)
    assert unsent is not None and unsent.error == NOT_SUBMITTED_REASON


def test_the_window_records_the_prompt_id_it_posts_under(
    qtbot: QtBot, open_window: OpenWindow, demo_fake: RunningFake, tmp_path: Path
) -> None:
    from tests.gui.test_flow import pattern_workflow

    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Pattern", pattern_workflow(seed=5, steps=2))
    window = open_window(server=demo_fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    recorded: list[RunRecord] = []
    journal_of(window).runs_changed.connect(recorded.extend)
    with qtbot.waitSignal(window.ctx.controller.submitted, timeout=TIMEOUT) as submitted:
        window.run_workflow()
    execution = submitted.args[0]
    qtbot.waitUntil(lambda: any(r.status == "completed" for r in recorded), timeout=TIMEOUT)
    [run] = {r.id: r for r in recorded}.values()
    assert run.execution_id == execution.id  # chosen here, written before the POST
    assert history(demo_fake, execution.id)  # and the server ran it under that id


def test_reconcile_after_a_server_restart_settles_runs_left_open(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    window = open_window(server=fake.url, data_dir=tmp_path / "app")
    wait_connected(qtbot, window)
    slow_id = submit_elsewhere(fake, save_workflow(steps=1000))

    def record(execution_id: str) -> int:
        def work(j: Journal) -> int:
            run = j.record_run(
                profile_id="cli",
                server="fake",
                workflow_name="Earlier",
                workflow_id=None,
                api_graph={},
                ui_graph=None,
                values={},
                seed=None,
            )
            j.mark_submitted(run.id, execution_id)
            return run.id

        return journal_of(window).call_blocking(work)  # type: ignore[no-any-return]

    lost = record(slow_id)  # as if an earlier session had submitted it and crashed
    fake.restart()
    qtbot.waitUntil(lambda: status_of(window, lost) == "failed", timeout=TIMEOUT)
    lost_run = run_of(window, lost)
    assert lost_run is not None and lost_run.error == LOST_REASON


UI_DOC: dict[str, Any] = {
    "last_node_id": 2,
    "last_link_id": 1,
    "nodes": [
        {
            "id": 1,
            "type": "EmptyImage",
            "pos": [0, 0],
            "size": [200, 100],
            "flags": {},
            "order": 0,
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0}],
            "properties": {},
            "widgets_values": [32, 24, 1, 5],
        },
        {
            "id": 2,
            "type": "SaveImage",
            "pos": [300, 0],
            "size": [200, 100],
            "flags": {},
            "order": 1,
            "mode": 0,
            "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
            "outputs": [],
            "properties": {},
            "widgets_values": ["ui"],
        },
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    "groups": [],
    "config": {},
    "extra": {},
    "version": 0.4,
}


def test_a_ui_format_workflow_keeps_its_ui_graph(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "From the editor", UI_DOC)
    window = open_window(server=fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    added: list[OutputRecord] = []
    journal_of(window).outputs_added.connect(added.extend)
    window.run_workflow()
    qtbot.waitUntil(
        lambda: len(added) == 1 and status_of(window, added[0].run_id) == "completed", timeout=TIMEOUT
    )
    run = run_of(window, added[0].run_id)
    assert run is not None and run.ui_graph == UI_DOC
    assert run.api_graph["1"]["class_type"] == "EmptyImage" and run.api_graph["1"]["inputs"]["width"] == 32
