"""Data safety: `kill -9` of `comfydesk serve` (on its SQLite database) and of the app (its journal) at random
moments while runs are queued. After a restart on the same files, every output the ComfyUI server produced is
recorded (the gateway's `images` rows and files; the app's journal outputs, byte for byte), no prompt ran
twice, and `PRAGMA integrity_check` is `ok`.

The normal run: 20 runs, two kills of the gateway and one of the app. The soak run (`-m soak`): 200 runs,
five kills of the gateway and three of the app. The moments come from a seeded random generator; the seed
is in every assertion message, and `COMFYDESK_KILL_SEED` replays one."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfydesk.gateway.store import GatewayStore
from comfydesk.store.paths import resolve_paths
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.testing.demo import demo_config
from tests.conftest import FIXTURES
from tests.gui.helpers import write_workflow
from tests.integration.gateway_helpers import API, create_workflow
from tests.integration.test_gateway_runs import pattern_workflow

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("COMFYDESK_KILL_SEED", "0")) or random.randrange(1, 2**31)
TERMINAL = ("completed", "failed", "cancelled")


def integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        result = conn.execute("PRAGMA integrity_check").fetchall()
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    return ";".join(str(r[0]) for r in result)


# -- the gateway ------------------------------------------------------------------------------------------


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[RunningFake]:
    config = demo_config(tmp_path / "machine")
    config.step_delay = 0.01  # 8 steps: about 0.1 s a run, so the queue holds many when the gateway dies
    fake = start_fake_comfyui(config)
    try:
        yield fake
    finally:
        fake.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """`comfydesk serve` as a real process on one SQLite database, started again after each kill."""

    def __init__(self, tmp_path: Path, machine_url: str) -> None:
        self.data = tmp_path / "gw"
        self.data.mkdir()
        self.db = self.data / "gateway.db"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.machine_url = machine_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        store = GatewayStore.open(f"sqlite:///{self.db}")
        try:
            self.token = store.create_token("ci", admin=True)[1]
        finally:
            store.close()

    def start(self) -> None:
        self.starts += 1
        log = open(self.data / f"serve-{self.starts}.log", "wb")  # noqa: SIM115 - the child holds it
        command = [sys.executable, "-m", "comfydesk", "serve", "--port", str(self.port)]
        command += ["--comfyui", self.machine_url, "--data-dir", str(self.data)]
        command += ["--database", f"sqlite:///{self.db}", "--lease", "1", "--rate-limit", "100000/min"]
        try:
            self.proc = subprocess.Popen(
                command,
                cwd=str(ROOT),
                env=dict(os.environ, PYTHONPATH=str(ROOT), LANG="C.UTF-8"),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()

    def log_tail(self) -> str:
        return (self.data / f"serve-{self.starts}.log").read_text(errors="replace")[-3000:]

    async def ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as c:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"serve exited: {self.log_tail()}"
                with contextlib.suppress(httpx.TransportError):
                    if (await c.get(f"{self.url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)  # polling the condition: the process coming up
        raise AssertionError(f"serve did not become ready: {self.log_tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def _submit(c: httpx.AsyncClient, workflow_id: int, n: int) -> int | None:
    """One run; None when the gateway died before answering (it may or may not have recorded it)."""
    try:
        resp = await c.post(f"{API}/workflows/{workflow_id}/execute", json={"inputs": {"seed": n}})
    except httpx.TransportError:
        return None
    assert resp.status_code == 202, resp.text
    return int(resp.json()["data"]["execution"]["id"])


def _rows(db: Path, sql: str) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql).fetchall()


async def gateway_kill_run(tmp_path: Path, machine: RunningFake, runs: int, kills: int) -> None:
    rng = random.Random(SEED)
    why = f"(seed {SEED}: COMFYDESK_KILL_SEED={SEED} replays it)"
    serve = Serve(tmp_path, machine.url)
    serve.start()
    try:
        await serve.ready()
        headers = {"Authorization": f"Bearer {serve.token}"}
        async with httpx.AsyncClient(base_url=serve.url, headers=headers, timeout=30) as c:
            workflow_id = await create_workflow(c, pattern_workflow(8))
            # Kill moments: after a random number of submissions (some while a submission is in flight),
            # or a random time later while the queue drains.
            points = sorted(rng.sample(range(2, runs), kills))
            acknowledged: list[int] = []
            left_open: list[int] = []  # runs queued or running at each kill
            n = 0
            for point in [*points, runs]:
                batch = [asyncio.create_task(_submit(c, workflow_id, k)) for k in range(n, point)]
                n = point
                if point == runs:
                    acknowledged += [e for e in await asyncio.gather(*batch) if e is not None]
                    break
                # Kill while the last submissions are on the wire (or just after), not at a quiet moment.
                done = max(1, len(batch) - rng.randint(0, 3))
                for task in batch[:done]:
                    got = await task
                    if got is not None:
                        acknowledged.append(got)
                await asyncio.sleep(rng.uniform(0, 0.3))  # a random moment: the queue keeps moving
                serve.kill()
                left_open.append(
                    len(_rows(serve.db, "SELECT id FROM executions WHERE status IN ('queued', 'running')"))
                )
                acknowledged += [e for e in await asyncio.gather(*batch[done:]) if e is not None]
                assert integrity(serve.db) == "ok", why
                serve.start()
                await serve.ready()
            # Wait for every run the database holds to end (the restarted gateway resumes them).
            deadline = time.monotonic() + 60 + runs
            while time.monotonic() < deadline:
                open_runs = _rows(serve.db, "SELECT id FROM executions WHERE status IN ('queued', 'running')")
                if not open_runs:
                    break
                await asyncio.sleep(0.1)  # polling the database: runs ending
            else:
                raise AssertionError(f"runs never ended: {[r['id'] for r in open_runs]} {why}")
    finally:
        serve.stop()

    assert integrity(serve.db) == "ok", why
    assert sum(left_open) > 0, f"no run was open at any kill: the test proved nothing {why}"
    executions = {r["id"]: r for r in _rows(serve.db, "SELECT * FROM executions")}
    assert set(acknowledged) <= set(executions), why
    assert len(acknowledged) >= runs - kills * 4, why  # only submissions cut off by a kill may be missing
    assert {r["status"] for r in executions.values()} == {"completed"}, (
        {i: (r["status"], r["error"]) for i, r in executions.items() if r["status"] != "completed"},
        why,
    )
    # No prompt ran twice; every prompt the machine ran belongs to one execution.
    prompts = [r["prompt_id"] for r in executions.values()]
    assert len(set(prompts)) == len(prompts) == len(executions), why
    history: dict[str, Any] = machine.state.history
    assert set(history) == set(prompts), why
    assert machine.state.prompts_posted == len(executions), why
    # Every output the machine produced is an image row of its execution, with the same bytes on disk.
    by_prompt = {r["prompt_id"]: r["id"] for r in executions.values()}
    images = _rows(serve.db, "SELECT execution_id, file_name, size, deleted FROM images")
    stored: dict[int, list[sqlite3.Row]] = {}
    for row in images:
        stored.setdefault(row["execution_id"], []).append(row)
    for prompt_id, entry in history.items():
        produced = [image for node in entry["outputs"].values() for image in node.get("images", [])]
        rows = stored.get(by_prompt[prompt_id], [])
        assert len(rows) == len(produced) >= 1, (prompt_id, why)
        made = {
            hashlib.sha256(
                (machine.data_dir / "output" / i["subfolder"] / i["filename"]).read_bytes()
            ).digest()
            for i in produced
        }
        kept = {hashlib.sha256((serve.data / "images" / r["file_name"]).read_bytes()).digest() for r in rows}
        assert made == kept, (prompt_id, why)


async def test_gateway_killed_twice_while_20_runs_are_queued_loses_nothing(
    tmp_path: Path, machine: RunningFake
) -> None:
    await gateway_kill_run(tmp_path, machine, runs=20, kills=2)


@pytest.mark.soak
async def test_gateway_killed_five_times_during_200_runs_loses_nothing(
    tmp_path: Path, machine: RunningFake
) -> None:
    await gateway_kill_run(tmp_path, machine, runs=200, kills=5)


# -- the app ----------------------------------------------------------------------------------------------

SCRIPT = Path(__file__).with_name("app_batch_script.py")


@pytest.fixture
def slow_fake(tmp_path: Path) -> Iterator[RunningFake]:
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake", step_delay=0.01)
    )
    try:
        yield fake
    finally:
        fake.stop()


def _app_workflow() -> dict[str, Any]:
    """About 0.1 s a run on the fake, one PNG output."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 1, "color": 7}},
        "2": {"class_type": "TestSlowSteps", "inputs": {"image": ["1", 0], "steps": 10, "delay": 1.0}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "safety"}},
    }


def _app(data_dir: Path, url: str, key: str, count: int, *, finish: bool = False) -> subprocess.Popen[str]:
    command = [sys.executable, str(SCRIPT), str(data_dir), url, key, str(count)]
    return subprocess.Popen(
        [*command, "--finish"] if finish else command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)},
    )


def _read_until(proc: subprocess.Popen[str], stop: int | str) -> list[str]:
    """Execution ids the process announces, until `stop` of them (an int) or the line `stop` (a str)."""
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        if line.startswith("SUBMITTED "):
            seen.append(line.split()[1])
            if seen and len(seen) == stop:
                return seen
        elif line.strip() == stop:
            return seen
    raise AssertionError(f"the app exited ({proc.wait()}): {proc.stderr.read() if proc.stderr else ''}")


def _reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def app_kill_run(tmp_path: Path, fake: RunningFake, runs: int, kills: int) -> None:
    rng = random.Random(SEED)
    why = f"(seed {SEED}: COMFYDESK_KILL_SEED={SEED} replays it)"
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Safety", _app_workflow())
    journal_db = resolve_paths(data_dir).journal_file
    announced: list[str] = []
    open_at_kill = 0
    for _ in range(kills):
        batch = min(100, max(3, (runs - len(announced)) // 2))
        proc = _app(data_dir, fake.url, key, batch)
        watchdog = threading.Timer(120, proc.kill)  # a hung child never hangs the suite
        watchdog.start()
        try:
            announced += _read_until(proc, rng.randint(1, batch - 1))
            time.sleep(rng.uniform(0, 0.2))  # a random moment: submitting, downloading, writing
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait() == -signal.SIGKILL
        finally:
            watchdog.cancel()
            _reap(proc)
        assert integrity(journal_db) == "ok", why
        with contextlib.closing(sqlite3.connect(journal_db)) as conn:
            open_at_kill += conn.execute(
                "SELECT count(*) FROM runs WHERE status IN ('recorded', 'queued', 'running')"
            ).fetchone()[0]
    # The last start resumes what the killed ones left and runs the rest to the end.
    proc = _app(data_dir, fake.url, key, max(1, runs - len(announced)), finish=True)
    watchdog = threading.Timer(120 + runs, proc.kill)
    watchdog.start()
    try:
        announced += _read_until(proc, "DONE")
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        watchdog.cancel()
        _reap(proc)

    assert open_at_kill > 0, f"no run was open at any kill: the test proved nothing {why}"
    assert integrity(journal_db) == "ok", why
    with contextlib.closing(sqlite3.connect(journal_db)) as conn:
        conn.row_factory = sqlite3.Row
        run_rows = conn.execute("SELECT id, status, error, execution_id FROM runs").fetchall()
        output_rows = conn.execute("SELECT run_id, blob, sha256 FROM outputs WHERE deleted = 0").fetchall()
    history: dict[str, Any] = fake.state.history
    by_execution = {r["execution_id"]: r for r in run_rows if r["execution_id"]}
    assert len(by_execution) == len([r for r in run_rows if r["execution_id"]]), why  # one run per prompt
    assert set(announced) <= set(history), why
    assert fake.state.prompts_posted == len(history), why  # no prompt posted twice
    unfinished = [dict(r) for r in run_rows if r["status"] in ("recorded", "queued", "running")]
    assert unfinished == [], why
    outputs: dict[int, list[sqlite3.Row]] = {}
    for row in output_rows:
        outputs.setdefault(row["run_id"], []).append(row)
    blobs = resolve_paths(data_dir).blobs_dir
    for prompt_id, entry in history.items():
        run = by_execution.get(prompt_id)
        assert run is not None and run["status"] == "completed", (prompt_id, run and dict(run), why)
        produced = [i for node in entry["outputs"].values() for i in node.get("images", [])]
        made = {
            hashlib.sha256(
                (fake.data_dir / "output" / i["subfolder"] / i["filename"]).read_bytes()
            ).hexdigest()
            for i in produced
        }
        kept = outputs.get(run["id"], [])
        assert len(kept) == len(produced) == 1, (prompt_id, why)
        assert {r["sha256"] for r in kept} == made, (prompt_id, why)
        for r in kept:
            assert hashlib.sha256((blobs / r["blob"]).read_bytes()).hexdigest() == r["sha256"], why
    # A run that never reached the server ended as failed or cancelled, never as completed without output.
    for run in run_rows:
        if run["execution_id"] not in history:
            assert run["status"] in ("failed", "cancelled"), (dict(run), why)
    assert len(history) >= runs - kills * 2, why


def test_app_killed_while_20_runs_are_queued_loses_no_output(tmp_path: Path, slow_fake: RunningFake) -> None:
    app_kill_run(tmp_path, slow_fake, runs=20, kills=1)


@pytest.mark.soak
def test_app_killed_three_times_during_200_runs_loses_no_output(
    tmp_path: Path, slow_fake: RunningFake
) -> None:
    app_kill_run(tmp_path, slow_fake, runs=200, kills=3)
