"""Result latency: ComfyUI's `executed` message received -> the result's thumbnail in the results strip.

Usage: .venv/bin/python benchmarks/bench_result_latency.py [--repeat N]
The demo engine (the fake ComfyUI with the demo nodes) runs in a child process on 127.0.0.1; the main window
is connected to it and runs DemoPattern (plasma, 1024x1024, 1 step) -> SaveImage, a real 1024x1024 PNG of
about 2-3 MB. For each run the clock starts when the backend hands the window the NodeOutput event (the
`executed` message, parsed) and stops when the strip has the result with its thumbnail made (the download
of the image, its decode and scaling on a worker thread, the icon set). Offscreen unless QT_QPA_PLATFORM is
set. Prints the median and writes benchmarks/results/result_latency.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import qasync
from _common import ROOT, write_results
from bench_app import _quiet, until
from PySide6.QtCore import qInstallMessageHandler
from PySide6.QtWidgets import QApplication

_DEMO_SCRIPT = """
import sys
from pathlib import Path
from comfydesk.testing import start_fake_comfyui
from comfydesk.testing.demo import demo_config
config = demo_config(Path(sys.argv[1]))
config.step_delay = 0.0
fake = start_fake_comfyui(config)
print(fake.url, flush=True)
sys.stdin.read()
fake.stop()
"""


def prompt(seed: int) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "DemoPattern",
            "inputs": {
                "pattern": "plasma",
                "seed": seed,
                "width": 1024,
                "height": 1024,
                "steps": 1,
                "color_a": 0x2060C0,
                "color_b": 0xF0A030,
            },
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "latency"}},
    }


async def measure(url: str, repeat: int) -> dict[str, Any]:
    import keyring
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())
    from comfydesk.core.events import NodeOutput
    from comfydesk.gui import create_main_window

    data = Path(tempfile.mkdtemp(prefix="comfydesk-bench-latency-"))
    (data / "workflows").mkdir(parents=True)
    (data / "workflows" / "latency.json").write_text(json.dumps(prompt(1)))
    window = create_main_window(server=url, data_dir=data)
    window.show()
    ctx = window.ctx
    await until(lambda: ctx.connection.backend is not None and ctx.catalog.catalog is not None, timeout=60)
    key = "local:latency.json"
    await until(lambda: window.workflow_pane.item_for(key) is not None)
    item = window.workflow_pane.item_for(key)
    assert item is not None
    window.workflow_pane.tree.setCurrentItem(item)
    await until(lambda: window._current is not None and window._current.spec is not None)
    strip = window.results
    stamps: list[float] = []
    ctx.connection.event_received.connect(
        lambda ev: stamps.append(time.perf_counter()) if isinstance(ev, NodeOutput) else None
    )
    latencies: list[float] = []
    for i in range(repeat + 1):  # the first run warms up
        before = strip.count()
        stamps.clear()
        ctx.controller.run()
        await until(lambda b=before: strip.count() > b and not strip._pending, timeout=60)
        seen = time.perf_counter()
        if not stamps:
            raise RuntimeError("no NodeOutput event reached the window")
        if i:
            latencies.append((seen - stamps[0]) * 1000)
        await until(lambda: ctx.controller.busy is False if hasattr(ctx.controller, "busy") else True)
        await asyncio.sleep(0.2)  # the run is over before the next one
    return {
        "repeat": repeat,
        "median_ms": round(statistics.median(latencies), 1),
        "max_ms": round(max(latencies), 1),
        "samples_ms": [round(x, 1) for x in latencies],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    qInstallMessageHandler(_quiet)
    with tempfile.TemporaryDirectory(prefix="comfydesk-bench-demo-") as tmp:
        proc = subprocess.Popen(
            [sys.executable, "-c", _DEMO_SCRIPT, tmp],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        try:
            app = QApplication.instance() or QApplication(sys.argv[:1])
            app.setQuitOnLastWindowClosed(False)
            loop = qasync.QEventLoop(app)
            asyncio.set_event_loop(loop)
            with loop:
                res = loop.run_until_complete(measure(url, args.repeat))
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=15)
    print(
        f"result latency (executed received -> thumbnail in the results strip, 1024x1024 PNG, localhost): "
        f"median {res['median_ms']} ms, max {res['max_ms']} ms  (runs: {args.repeat})"
    )
    write_results("result_latency", res)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
