"""`comfydesk serve` settles its heap once it serves: what start-up made is frozen out of the collector's
walks, so a full collection under load walks only what came later (docs/performance.md, the gateway)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

# The real `run_gateway` (with its demo engine) in a child interpreter: freezing is process-wide, and this
# test process must not freeze its own objects. When it serves, the child reports what the collector sees
# and asks the server to stop, as Ctrl-C would.
_CHILD = """
import gc, json, signal, os, sys
from pathlib import Path
from comfydesk.gateway.app import GatewayConfig
from comfydesk.gateway.server import run_gateway, start_demo_engine

data = Path(sys.argv[1])
url, stop_engine = start_demo_engine(data / "engine")
before = gc.get_freeze_count()

def ready(served):
    print(json.dumps({"url": served, "before": before, "frozen": gc.get_freeze_count(),
                      "tracked": len(gc.get_objects())}), flush=True)
    os.kill(os.getpid(), signal.SIGINT)

try:
    run_gateway(GatewayConfig(comfyui_urls=[url], data_dir=data), host="127.0.0.1", port=0, on_ready=ready)
finally:
    stop_engine()
"""


def test_serve_freezes_what_start_up_made_once_it_serves(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    # uvicorn shuts down gracefully, then raises the signal it caught again: the child ends by SIGINT.
    assert done.returncode in (0, -signal.SIGINT), done.stderr
    report = json.loads(done.stdout.strip().splitlines()[0])
    assert report["url"].startswith("http://127.0.0.1:")
    assert report["before"] == 0
    # Everything start-up made (tens of thousands of objects: modules, routes, the node catalog) is frozen;
    # what the collector still walks is what came after.
    assert report["frozen"] > 50_000
    assert report["tracked"] < report["frozen"] / 10
