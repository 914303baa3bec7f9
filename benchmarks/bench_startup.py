"""Start-up: a fresh process until comfydesk's main window is exposed, and until the server's whole node
catalog is in the nodes pane, against a bare QMainWindow shown in its own fresh process (baseline, same run).

Usage: .venv/bin/python benchmarks/bench_startup.py [--repeat N] [--object-info FILE]
The fake ComfyUI runs in a child process on 127.0.0.1, serving FILE (default: the captured
object_info_with_api_nodes.json, 567 node classes). Cases, interleaved round by round:
  bare            python -> QMainWindow exposed
  replica         python -> a QMainWindow holding the same Qt widgets (class and number) as comfydesk's
                  window with its panes, pure PySide6 (plus asyncio and qasync): the floor of `ready`
  window          python -> comfydesk's main window exposed (a fresh data dir each time): its frame (menus,
                  docks, status bar), which `comfydesk.gui.run` shows before it builds the panes
  ready           python -> the window painted with its panes built and bound to the app state
  catalog cold    python -> the whole catalog in the nodes pane, no catalog cached (a fresh data dir)
  catalog cached  the same with the catalog this server gave the last session cached in the data dir
  definitions cached
                  the same, until the app state also holds the cached definitions of those node types
                  (the pane lists them from the cache's summaries before; forms and details need these)
Prints medians and writes benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, write_results
from bench_ui_flood import start_fake, stop_fake

CHILD = Path(__file__).resolve().parent / "_startup_child.py"
PYCACHE = ROOT / "benchmarks" / "results" / "pycache"


def once(*args: str, timeout: float = 60, tree: Path | None = None) -> float:
    """Seconds from spawning the child to the moment it prints (comfydesk imported from `tree` if given)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    # Compiled bytecode as an installed app has it (pip compiles on install), kept out of the tree.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, str(CHILD), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )
    out = proc.stdout.strip().split()
    if proc.returncode != 0 or not out:
        raise RuntimeError(f"start-up child {args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return float(out[0]) - t0


def count_classes(path: Path) -> int:
    import json

    return len(json.loads(path.read_bytes()))


def run(repeat: int, object_info: Path, before: Path | None = None) -> dict[str, Any]:
    classes = count_classes(object_info)
    tmp = Path(tempfile.mkdtemp(prefix="comfydesk-startup-"))
    proc, url = start_fake(object_info, tmp / "fake")
    times: dict[str, list[float]] = {
        "bare": [],
        "replica": [],
        "window": [],
        "ready": [],
        "catalog_cold": [],
        "catalog_cached": [],
        "definitions_cached": [],
    }
    if before is not None:
        times.update({"window_before": [], "catalog_before": []})
    try:
        cached = tmp / "cached"
        once("session", url, str(cached), str(classes))  # the last session: leaves its catalog cached
        once("bare")  # warm the OS file cache for every case alike
        once("window", url, str(tmp / "warm"))
        inventory = tmp / "inventory.json"  # the Qt widgets of comfydesk's first frame, for the replica
        once("inventory", str(tmp / "inv"), str(inventory))
        for i in range(repeat):
            times["bare"].append(once("bare"))
            times["replica"].append(once("replica", str(inventory)))
            times["window"].append(once("window", url, str(tmp / f"w{i}")))
            times["ready"].append(once("ready", url, str(tmp / f"r{i}")))
            times["catalog_cold"].append(once("catalog", url, str(tmp / f"c{i}"), str(classes)))
            times["catalog_cached"].append(once("catalog", url, str(cached), str(classes)))
            times["definitions_cached"].append(once("definitions", url, str(cached), str(classes)))
            if before is not None:
                times["window_before"].append(once("window", url, str(tmp / f"bw{i}"), tree=before))
                times["catalog_before"].append(
                    once("catalog", url, str(tmp / f"bc{i}"), str(classes), tree=before)
                )
    finally:
        stop_fake(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    bare = med["bare"]
    res: dict[str, Any] = {
        "repeat": repeat,
        "classes": classes,
        "bare_ms": round(bare, 1),
        "replica_ms": round(med["replica"], 1),
        "replica_vs_bare": round(med["replica"] / bare, 2),
        "window_ms": round(med["window"], 1),
        "ready_ms": round(med["ready"], 1),
        "ready_vs_bare": round(med["ready"] / bare, 2),
        "catalog_cold_ms": round(med["catalog_cold"], 1),
        "catalog_cached_ms": round(med["catalog_cached"], 1),
        "definitions_cached_ms": round(med["definitions_cached"], 1),
        "definitions_cached_vs_bare": round(med["definitions_cached"] / bare, 2),
        "window_vs_bare": round(med["window"] / bare, 2),
        "catalog_cold_vs_bare": round(med["catalog_cold"] / bare, 2),
        "catalog_cached_vs_bare": round(med["catalog_cached"] / bare, 2),
        "samples_ms": {k: [round(x * 1000, 1) for x in v] for k, v in times.items()},
    }
    if before is not None:
        res["before_tree"] = str(before)
        res["window_before_ms"] = round(med["window_before"], 1)
        res["catalog_before_ms"] = round(med["catalog_before"], 1)
        res["window_before_vs_bare"] = round(med["window_before"] / bare, 2)
        res["catalog_before_vs_bare"] = round(med["catalog_before"] / bare, 2)
        print(
            f"the same cases with comfydesk from {before}: window {med['window_before']:.0f} ms "
            f"({res['window_before_vs_bare']:.2f}x), whole catalog {med['catalog_before']:.0f} ms "
            f"({res['catalog_before_vs_bare']:.2f}x)"
        )
    print(
        f"start-up ({classes} node classes, medians of {repeat}): bare QMainWindow {bare:.0f} ms | "
        f"the same Qt widgets as comfydesk's window with its panes, pure PySide6 {med['replica']:.0f} ms "
        f"({res['replica_vs_bare']:.2f}x) | "
        f"comfydesk window {med['window']:.0f} ms ({res['window_vs_bare']:.2f}x), with its panes "
        f"{med['ready']:.0f} ms ({res['ready_vs_bare']:.2f}x) | whole catalog in the "
        f"nodes pane: nothing cached {med['catalog_cold']:.0f} ms ({res['catalog_cold_vs_bare']:.2f}x), "
        f"cached from the last session {med['catalog_cached']:.0f} ms "
        f"({res['catalog_cached_vs_bare']:.2f}x), with its definitions read "
        f"{med['definitions_cached']:.0f} ms ({res['definitions_cached_vs_bare']:.2f}x)"
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument(
        "--object-info",
        type=Path,
        default=ROOT.parent / "shared" / "fixtures" / "comfyui" / "object_info_with_api_nodes.json",
    )
    ap.add_argument(
        "--before",
        type=Path,
        help="also time comfydesk imported from this source tree (an exported older commit), interleaved",
    )
    args = ap.parse_args()
    write_results("startup", run(args.repeat, args.object_info, args.before))


if __name__ == "__main__":
    main()
