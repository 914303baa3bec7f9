"""UI responsiveness under an event flood: how late a 10 ms QTimer probe fires while a run floods the UI.

Runs Qt offscreen (QT_QPA_PLATFORM=offscreen unless set) on a qasync loop, like the app. Three cases:
- baseline: the probe in a bare, shown QMainWindow with no events, for `--baseline-s` seconds;
- flood: a RunState bound to a ProgressPanel in a shown window; `--progress` Progress events and `--previews`
  Preview events (512x512 JPEG bytes) are applied in bursts (`--progress / --previews` steps then one preview,
  then the loop gets one turn), as the controller applies what the backend yields. Drain time runs from the
  first event to the moment the last step has been shown and no preview is left decoding;
- end to end: the fake ComfyUI in a child process (its own interpreter, so it does not share our GIL), a
  real WebSocket, ComfyUIBackend.events() -> RunState.apply. The prompt chains TestSlowSteps nodes with the
  fake's step_delay 0 (the fake then does not pace steps at all: every step is sent as fast as it is made):
  `--progress` steps without previews, then `--previews` steps each with a 512x512 preview. Drain time runs
  from submit to the terminal event applied and the last preview decoded.
Lateness of one probe tick = (time since the previous tick) - 10 ms, floored at 0; Qt skips ticks missed
while the loop is blocked, so one long block shows as one large sample. Samples of all repeats are pooled.

Usage: .venv/bin/python benchmarks/bench_ui_flood.py [--repeat N] [--no-e2e] [--progress N] [--previews N]
Prints figures (not pass/fail) and writes benchmarks/results/ui_flood.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import argparse
import asyncio
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import qasync
import websockets
from _common import ROOT, write_results
from PIL import Image
from PySide6.QtCore import Qt, QTimer, QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication, QMainWindow

from comfydesk.app.run_state import RunState
from comfydesk.backends.comfyui import ComfyUIBackend
from comfydesk.core.events import TERMINAL_EVENTS, Preview, Progress, Started
from comfydesk.core.graph import ApiGraph
from comfydesk.ui.progress import ProgressPanel

PROBE_MS = 10
PREVIEW_PX = 512

_FAKE_SCRIPT = """
import sys
from pathlib import Path
from comfydesk.testing import FakeConfig, start_fake_comfyui
config = FakeConfig(object_info=Path(sys.argv[1]), data_dir=Path(sys.argv[2]), step_delay=0.0)
fake = start_fake_comfyui(config)
print(fake.url, flush=True)
sys.stdin.read()
fake.stop()
"""


def _quiet_offscreen(kind: QtMsgType, context: object, message: str) -> None:
    """Drop the offscreen plugin's notice about size hints (printed for every window); keep the rest."""
    if "propagateSizeHints" not in message:
        print(message, file=sys.stderr)


class Probe:
    """A repeating 10 ms precise QTimer that records how late each tick is."""

    def __init__(self, interval_ms: int = PROBE_MS) -> None:
        self.interval_ms = interval_ms
        self.samples: list[float] = []
        self._last = 0.0
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.samples.append(max(0.0, (now - self._last) * 1000 - self.interval_ms))
        self._last = now


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def lateness(samples: list[float]) -> dict[str, float | int]:
    return {
        "ticks": len(samples),
        "median_ms": round(statistics.median(samples), 2) if samples else float("nan"),
        "p99_ms": round(percentile(samples, 99), 2),
        "max_ms": round(max(samples), 2) if samples else float("nan"),
    }


def preview_jpegs(count: int = 8) -> list[bytes]:
    """A few distinct 512x512 JPEG frames (gradient, noise, fractal), like a sampler's previews."""
    frames = []
    for i in range(count):
        red = Image.linear_gradient("L").resize((PREVIEW_PX, PREVIEW_PX)).rotate(i * 45)
        green = Image.effect_noise((PREVIEW_PX, PREVIEW_PX), 20 + 8 * i)
        blue = Image.effect_mandelbrot((PREVIEW_PX, PREVIEW_PX), (-2.0, -1.25, 0.75, 1.25), 16 + 8 * i)
        buf = io.BytesIO()
        Image.merge("RGB", (red, green, blue)).save(buf, "JPEG", quality=85)
        frames.append(buf.getvalue())
    return frames


def make_window() -> tuple[QMainWindow, ProgressPanel]:
    window = QMainWindow()
    panel = ProgressPanel()
    window.setCentralWidget(panel)
    window.resize(900, 240)
    window.show()
    return window, panel


def count_signals(state: RunState) -> dict[str, int]:
    counts = {"step_emits": 0, "preview_emits": 0}

    def bump(key: str) -> Callable[..., None]:
        def slot(*_: Any) -> None:
            counts[key] += 1

        return slot

    state.step_progress_changed.connect(bump("step_emits"))
    state.preview_changed.connect(bump("preview_emits"))
    return counts


def preview_idle(state: RunState) -> bool:
    # RunState has no public "idle" flag: read (never write) the private task that decodes previews.
    return state._preview_task is None


async def settle(seconds: float) -> None:
    await asyncio.sleep(seconds)
    QApplication.processEvents()


async def run_baseline(seconds: float) -> list[float]:
    window = QMainWindow()
    window.resize(900, 240)
    window.show()
    await settle(0.2)
    probe = Probe()
    probe.start()
    await asyncio.sleep(seconds)
    probe.stop()
    window.close()
    window.deleteLater()
    await settle(0.05)
    return probe.samples


async def run_flood(
    progress: int, previews: int, jpegs: list[bytes], index: int, gap_ms: float
) -> dict[str, Any]:
    window, panel = make_window()
    state = RunState()
    panel.bind(state)
    counts = count_signals(state)
    eid = f"bench-flood-{index}"
    graph = ApiGraph.from_prompt(
        {
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
            "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": progress}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        }
    )
    state.begin(eid, graph=graph, node_titles={"3": "KSampler"})
    await settle(0.2)
    per_burst = max(1, progress // max(1, previews))
    probe = Probe()
    probe.start()
    t0 = time.perf_counter()
    state.apply(Started(eid))
    step = sent_previews = 0
    while step < progress or sent_previews < previews:
        for _ in range(per_burst):
            if step < progress:
                step += 1
                state.apply(Progress(eid, "3", step, progress))
        if sent_previews < previews:
            state.apply(Preview(eid, "3", jpegs[sent_previews % len(jpegs)]))
            sent_previews += 1
        await asyncio.sleep(gap_ms / 1000)
    pushed = time.perf_counter() - t0
    while state.step_progress != (progress, progress) or not preview_idle(state):
        await asyncio.sleep(0.002)
    drained = time.perf_counter() - t0
    probe.stop()
    panel.unbind()
    window.close()
    window.deleteLater()
    await settle(0.05)
    return {"samples": probe.samples, "push_s": pushed, "drain_s": drained, **counts}


def e2e_prompt(progress: int, previews: int, seed: int) -> dict[str, Any]:
    """EmptyImage -> TestSlowSteps (no previews) x k -> TestSlowSteps (previews) -> SaveImage."""
    prompt: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": PREVIEW_PX, "height": PREVIEW_PX, "batch_size": 1, "color": seed},
        }
    }
    last = "1"
    remaining, nid = progress, 10
    while remaining > 0:
        steps = min(1000, remaining)  # the node's max
        prompt[str(nid)] = {
            "class_type": "TestSlowSteps",
            "inputs": {"image": [last, 0], "steps": steps, "delay": 0.0, "preview": False},
        }
        last, remaining, nid = str(nid), remaining - steps, nid + 1
    if previews:
        prompt["90"] = {
            "class_type": "TestSlowSteps",
            "inputs": {"image": [last, 0], "steps": previews, "delay": 0.0, "preview": True},
        }
        last = "90"
    prompt["99"] = {"class_type": "SaveImage", "inputs": {"images": [last, 0], "filename_prefix": "bench"}}
    return prompt


async def run_e2e(url: str, progress: int, previews: int, index: int) -> dict[str, Any]:
    backend = ComfyUIBackend(url)
    await backend.connect()
    window, panel = make_window()
    state = RunState()
    panel.bind(state)
    counts = count_signals(state)
    received = {"progress": 0, "preview": 0}
    terminal = asyncio.Event()
    graph = ApiGraph.from_prompt(e2e_prompt(progress, previews, seed=0x101010 * (index + 1)))

    async def consume() -> None:
        async for event in backend.events():
            if isinstance(event, Progress):
                received["progress"] += 1
            elif isinstance(event, Preview):
                received["preview"] += 1
            state.apply(event)
            if isinstance(event, TERMINAL_EVENTS) and event.execution_id == state.execution_id:
                terminal.set()

    consumer = asyncio.create_task(consume())
    await settle(0.2)
    probe = Probe()
    probe.start()
    t0 = time.perf_counter()
    execution = await backend.submit(graph)
    state.begin(execution.id, graph=graph, node_titles={})
    await asyncio.wait_for(terminal.wait(), timeout=120)
    while not preview_idle(state):
        await asyncio.sleep(0.002)
    drained = time.perf_counter() - t0
    probe.stop()
    status = state.status
    await backend.close()
    await asyncio.wait_for(consumer, timeout=10)
    panel.unbind()
    window.close()
    window.deleteLater()
    await settle(0.05)
    return {
        "samples": probe.samples,
        "drain_s": drained,
        "status": None if status is None else status.name,
        **received,
        **counts,
    }


def start_fake(object_info: Path, data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _FAKE_SCRIPT, str(object_info), str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError("the fake ComfyUI did not start")
    return proc, url


def stop_fake(proc: subprocess.Popen[str]) -> None:
    try:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def line(name: str, lat: dict[str, float | int], extra: str = "") -> str:
    return (
        f"{name}: probe lateness median {lat['median_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, "
        f"max {lat['max_ms']:.2f} ms over {lat['ticks']} ticks{extra}"
    )


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "repeat": args.repeat,
        "progress": args.progress,
        "previews": args.previews,
        "platform": os.environ.get("QT_QPA_PLATFORM"),
    }
    base = lateness(await run_baseline(args.baseline_s))
    results["baseline"] = base
    print(line(f"baseline (bare QMainWindow, {args.baseline_s:.1f} s, no events)", base))

    jpegs = preview_jpegs()
    for gap in (float(g) for g in args.gaps.split(",") if g.strip()):
        runs = [await run_flood(args.progress, args.previews, jpegs, i, gap) for i in range(args.repeat)]
        lat = lateness([s for r in runs for s in r["samples"]])
        drain = statistics.median(r["drain_s"] for r in runs) * 1000
        push = statistics.median(r["push_s"] for r in runs) * 1000
        steps = statistics.median(r["step_emits"] for r in runs)
        shown = statistics.median(r["preview_emits"] for r in runs)
        results[f"flood_gap_{gap:g}ms"] = {
            **lat,
            "drain_ms": round(drain, 1),
            "push_ms": round(push, 1),
            "step_emits": steps,
            "preview_emits": shown,
        }
        pause = "one loop turn" if gap == 0 else f"{gap:g} ms"
        print(
            line(
                f"flood ({args.progress} Progress + {args.previews} Preview {PREVIEW_PX}px, {pause} between "
                "bursts)",
                lat,
                f" | drain {drain:.0f} ms (pushing {push:.0f} ms) | {steps:.0f} step and {shown:.0f} "
                f"preview emissions  (medians of {args.repeat})",
            )
        )

    if not args.no_e2e:
        with tempfile.TemporaryDirectory(prefix="comfydesk-bench-") as tmp:
            proc, url = start_fake(args.object_info, Path(tmp))
            try:
                e2e, raw = [], []
                for i in range(args.repeat):  # interleaved with the server's own rate (a bare client)
                    e2e.append(await run_e2e(url, args.progress, args.previews, i))
                    raw.append(await run_raw(url, args.progress, args.previews, args.repeat + i))
            finally:
                stop_fake(proc)
        lat = lateness([s for r in e2e for s in r["samples"]])
        drain = statistics.median(r["drain_s"] for r in e2e) * 1000
        raw_ms = statistics.median(r[0] for r in raw) * 1000
        results["e2e"] = {
            **lat,
            "drain_ms": round(drain, 1),
            # The same run read by a bare WebSocket client (no parsing beyond finding the end): the rate
            # the fake server sends at on this machine, which bounds what any client can receive.
            "raw_client_ms": round(raw_ms, 1),
            "raw_client_messages": raw[0][1],
            "statuses": [r["status"] for r in e2e],
            "progress_events": statistics.median(r["progress"] for r in e2e),
            "preview_events": statistics.median(r["preview"] for r in e2e),
            "step_emits": statistics.median(r["step_emits"] for r in e2e),
            "preview_emits": statistics.median(r["preview_emits"] for r in e2e),
        }
        e = results["e2e"]
        print(
            line(
                "end to end (fake ComfyUI in a child process, WebSocket, ComfyUIBackend)",
                lat,
                f" | submit->drained {drain:.0f} ms | received {e['progress_events']:.0f} Progress, "
                f"{e['preview_events']:.0f} Preview | {e['step_emits']:.0f} step and "
                f"{e['preview_emits']:.0f} preview emissions | {', '.join(e['statuses'])} | the same run "
                f"to a bare WebSocket client (the server's own rate): {raw_ms:.0f} ms for "
                f"{e['raw_client_messages']} messages  (medians of {args.repeat})",
            )
        )
    return results


async def run_raw(url: str, progress: int, previews: int, index: int) -> tuple[float, int]:
    """The e2e run read by a bare WebSocket client: seconds from submit to the run's last message, and the
    number of messages (text and binary) it received."""
    client_id = uuid.uuid4().hex
    ws_url = url.replace("http", "ws", 1) + f"/ws?clientId={client_id}"
    prompt = e2e_prompt(progress, previews, seed=0x0F0F0F * (index + 1))
    # Connected as ComfyUIBackend connects (no permessage-deflate), so the server does the same work for both.
    async with (
        websockets.connect(ws_url, max_size=None, compression=None) as ws,
        httpx.AsyncClient() as http,
    ):
        t0 = time.perf_counter()
        resp = await http.post(f"{url}/prompt", json={"prompt": prompt, "client_id": client_id})
        prompt_id = resp.json()["prompt_id"]
        count = 0
        while True:
            message = await ws.recv()
            count += 1
            if isinstance(message, str) and '"execution_' in message:
                doc = json.loads(message)
                ended = doc.get("type") in ("execution_success", "execution_error", "execution_interrupted")
                if ended and doc.get("data", {}).get("prompt_id") == prompt_id:
                    return time.perf_counter() - t0, count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--progress", type=int, default=5000, help="Progress events (steps) per run")
    ap.add_argument("--previews", type=int, default=100, help="Preview events per run")
    ap.add_argument(
        "--gaps",
        default="0,10",
        help="comma-separated pauses in ms between bursts, one flood case each (0: one loop turn)",
    )
    ap.add_argument("--baseline-s", type=float, default=2.0, help="seconds the baseline probe runs")
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end run through the fake ComfyUI")
    ap.add_argument(
        "--object-info",
        type=Path,
        default=ROOT.parent / "shared" / "fixtures" / "comfyui" / "object_info.json",
        help="node definitions for the fake (must define EmptyImage, TestSlowSteps, SaveImage)",
    )
    args = ap.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)  # closing a case's window must not stop the loop
    qInstallMessageHandler(_quiet_offscreen)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        results = loop.run_until_complete(amain(args))
    write_results("ui_flood", results)


if __name__ == "__main__":
    main()
