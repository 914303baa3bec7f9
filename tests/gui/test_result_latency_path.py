"""The path of a result from ComfyUI's `executed` to the results strip, against the demo engine over real
sockets: each image is downloaded once and shared by the strip, the results folder and the journal; the strip
shows a result as soon as its thumbnail exists, even while the journal is still writing, and the journal still
ends with every output and the run's status; a download that failed when announced is tried again when the
run completes; with the kept bytes capped, the copy comes from the journal's file. No sleeps, no timings."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from comfydesk.backends.base import Execution
from comfydesk.core.events import Completed
from comfydesk.store.journal import OutputRecord, RunRecord
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.testing.demo import demo_object_info_path
from comfydesk.ui.main_window import MainWindow
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


def three_images() -> dict[str, Any]:
    """DemoPattern -> two SaveImage nodes and a PreviewImage: three result images in one run."""
    pattern = {
        "class_type": "DemoPattern",
        "inputs": {
            "pattern": "plasma",
            "seed": 7,
            "width": 96,
            "height": 64,
            "steps": 1,
            "color_a": 0x2060C0,
            "color_b": 0xF0A030,
        },
    }
    return {
        "1": pattern,
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "first"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "second"}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


def one_image() -> dict[str, Any]:
    wf = three_images()
    del wf["3"], wf["4"]
    return wf


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_record(window: MainWindow, execution_id: str) -> RunRecord | None:
    return window.ctx.journal.call_blocking(lambda j: j.run_by_execution(execution_id))  # type: ignore[no-any-return]


def outputs_of(window: MainWindow, run_id: int) -> list[OutputRecord]:
    return window.ctx.journal.call_blocking(lambda j: j.outputs_of_run(run_id))  # type: ignore[no-any-return]


def start_run(qtbot: QtBot, window: MainWindow, key: str) -> list[Execution]:
    pick(qtbot, window, key)
    sent: list[Execution] = []
    window.ctx.controller.submitted.connect(sent.append)
    qtbot.mouseClick(window.run_button, Qt.MouseButton.LeftButton)
    return sent


def wait_recorded(qtbot: QtBot, window: MainWindow, sent: list[Execution], outputs: int) -> RunRecord:
    def done() -> bool:
        run = run_record(window, sent[0].id) if sent else None
        return run is not None and run.status == "completed" and len(outputs_of(window, run.id)) == outputs

    qtbot.waitUntil(done, timeout=TIMEOUT)
    run = run_record(window, sent[0].id)
    assert run is not None
    return run


def test_results_show_while_the_journal_waits_and_every_output_still_lands_in_it(
    qtbot: QtBot,
    open_window: OpenWindow,
    demo_fake: RunningFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Three", three_images())
    window = open_window(server=demo_fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    journal = window.ctx.journal
    # A slow disk: the journal holds every output and the run's final status until the test lets it go.
    gate = asyncio.Event()
    held: list[str] = []
    add_output, set_status = journal.add_output, journal.set_status

    async def slow_add_output(*args: Any, **kwargs: Any) -> Any:
        held.append("output")
        await gate.wait()
        return await add_output(*args, **kwargs)

    async def slow_set_status(run_id: int, status: str, **kwargs: Any) -> Any:
        if status == "completed":
            held.append(status)
            await gate.wait()
        return await set_status(run_id, status, **kwargs)

    monkeypatch.setattr(journal, "add_output", slow_add_output)
    monkeypatch.setattr(journal, "set_status", slow_set_status)
    views_before = demo_fake.state.views
    sent = start_run(qtbot, window, key)

    qtbot.waitUntil(lambda: window.results.count() == 3, timeout=TIMEOUT)
    results = window.results.results()
    assert all(r.thumbnail is not None and not r.thumbnail.isNull() for r in results)
    assert all(r.path.is_file() and r.path.is_relative_to(window.ctx.controller.results_dir) for r in results)
    assert {r.node_id for r in results} == {"2", "3", "4"}
    run = run_record(window, sent[0].id)
    assert run is not None and run.status != "completed"  # shown before the journal wrote its status
    assert outputs_of(window, run.id) == []  # ... and before it stored a single output

    gate.set()
    run = wait_recorded(qtbot, window, sent, outputs=3)
    assert run.error is None
    stored = outputs_of(window, run.id)
    assert sorted(o.sha256 for o in stored) == sorted(sha(r.path) for r in results)  # the same images
    assert all(o.path is not None and o.path.is_file() for o in stored)
    assert demo_fake.state.views - views_before == 3  # each image downloaded once, for strip and journal


def test_an_image_whose_download_failed_when_announced_is_fetched_again_when_the_run_completes(
    qtbot: QtBot, open_window: OpenWindow, demo_fake: RunningFake, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "One", one_image())
    window = open_window(server=demo_fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    demo_fake.faults.fail_route("/view", 500, times=1)  # the download made on `executed` fails
    sent = start_run(qtbot, window, key)

    run = wait_recorded(qtbot, window, sent, outputs=1)
    qtbot.waitUntil(lambda: window.results.count() == 1, timeout=TIMEOUT)
    assert run.error is None  # nothing missing: the second download got it
    [result] = window.results.results()
    [output] = outputs_of(window, run.id)
    assert result.thumbnail is not None and not result.thumbnail.isNull()
    assert output.path is not None and sha(output.path) == sha(result.path)
    assert window.ctx.errors.error is None


def test_with_the_kept_bytes_capped_the_copy_comes_from_the_journals_file(
    qtbot: QtBot, open_window: OpenWindow, demo_fake: RunningFake, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Three", three_images())
    window = open_window(server=demo_fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    controller = window.ctx.controller
    controller._collector.keep_bytes = 0  # the bytes of a stored image are let go at once
    # The run's end reaches the controller only once the journal stored every image and the bytes went.
    held: list[object] = []

    def relay(event: object) -> None:
        if isinstance(event, Completed) and not held:
            held.append(event)
        else:
            controller.handle_event(event)

    window.ctx.connection.event_received.disconnect(controller.handle_event)
    window.ctx.connection.event_received.connect(relay)
    views_before = demo_fake.state.views
    sent = start_run(qtbot, window, key)

    def let_go() -> bool:
        run = controller._runs.get(sent[0].id) if sent and held else None
        downloads = run.outputs.downloads if run is not None else {}
        return len(downloads) == 3 and all(d.data is None for d in downloads.values())

    qtbot.waitUntil(let_go, timeout=TIMEOUT)
    controller.handle_event(held[0])
    run = wait_recorded(qtbot, window, sent, outputs=3)
    qtbot.waitUntil(lambda: window.results.count() == 3, timeout=TIMEOUT)
    results = window.results.results()
    stored = outputs_of(window, run.id)
    assert sorted(o.sha256 for o in stored) == sorted(sha(r.path) for r in results)
    assert all(r.thumbnail is not None and not r.thumbnail.isNull() for r in results)
    assert demo_fake.state.views - views_before == 3  # copied from the journal's files, not downloaded again


def test_a_long_batch_forgets_ended_runs_but_records_every_one(
    qtbot: QtBot,
    open_window: OpenWindow,
    demo_fake: RunningFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An overnight batch must not hold every run's graph and outputs in memory: the controller keeps the
    newest few ended runs only (here 2), and every run is still in the journal with its output."""
    from comfydesk.app import controller

    monkeypatch.setattr(controller, "KEEP_ENDED_RUNS", 2)
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "One", one_image())
    window = open_window(server=demo_fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    sent: list[Execution] = []
    window.ctx.controller.submitted.connect(sent.append)
    window.ctx.controller.run(8)

    def all_recorded() -> bool:
        runs = [run_record(window, e.id) for e in sent]
        return len(sent) == 8 and all(
            r is not None and r.status == "completed" and len(outputs_of(window, r.id)) == 1 for r in runs
        )

    qtbot.waitUntil(all_recorded, timeout=60_000)
    qtbot.waitUntil(lambda: not window.ctx.controller.busy, timeout=TIMEOUT)
    kept = window.ctx.controller._runs
    assert len(kept) <= 3  # the newest ended ones (2) and at most the last, ended after the newest was added
    assert sent[-1].id in kept
