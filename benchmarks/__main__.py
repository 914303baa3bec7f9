"""Run every benchmark, print one table of the targets (issue 13) and write them as JSON.

Usage: .venv/bin/python -m benchmarks [--output FILE] [--quick] [--only NAME,NAME]

Each script runs in its own process, one after another (the figures of one never include another's load);
their own results land in benchmarks/results/<name>.json as usual, and this collects them into FILE
(default benchmarks/results/all.json, git-ignored): {"machine": ..., "targets": [{"name", "value",
"target", "met"}, ...], "scripts": {...}}. --quick runs fewer repeats and smaller inputs (figures for a quick
look, not for the record). Not part of the test suite. A script that fails leaves its rows unmet with the
error, and the others still run. Medians are taken inside the scripts; the machine's load average before
and after is recorded, since other work on the machine moves every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

# name -> (script, full arguments, --quick arguments, results file stem)
SCRIPTS: dict[str, tuple[str, list[str], list[str], str]] = {
    "startup": ("bench_startup.py", ["--repeat", "7"], ["--repeat", "3"], "startup"),
    "catalog": ("bench_catalog.py", [], ["--repeat", "9"], "catalog"),
    "search": ("bench_app.py", ["--case", "search"], ["--case", "search", "--quick"], "app_search"),
    "switch": ("bench_app.py", ["--case", "switch"], ["--case", "switch", "--quick"], "app_switch"),
    "previews": ("bench_app.py", ["--case", "previews"], ["--case", "previews", "--quick"], "app_previews"),
    "latency": ("bench_result_latency.py", [], ["--repeat", "5"], "result_latency"),
    "memory": ("bench_app.py", ["--case", "memory"], ["--case", "memory", "--quick"], "app_memory"),
    "ui_flood": ("bench_ui_flood.py", [], ["--repeat", "2", "--gaps", "0"], "ui_flood"),
    "protocol": (
        "bench_protocol.py",
        [],
        ["--repeat", "2", "--replays", "50", "--flood", "20000"],
        "protocol",
    ),
    "convert": ("bench_convert.py", [], ["--repeat", "30"], "convert"),
    "images": ("bench_images.py", [], ["--repeat", "5"], "images"),
    "gallery": ("bench_gallery.py", [], ["--outputs", "2000"], "gallery"),
    "gateway": ("bench_gateway.py", [], ["--runs", "8", "--seconds", "3"], "gateway"),
    "gateway_scale": ("bench_gateway_scale.py", [], ["--runs", "100", "--repeat", "1"], "gateway_scale"),
}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    probe = (
        "import PySide6, sys; from PySide6 import QtCore; from PySide6.QtGui import QGuiApplication;"
        "app = QGuiApplication(sys.argv[:1]);"
        "print(PySide6.__version__, QtCore.qVersion(), app.platformName())"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env
    ).stdout.split()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pyside6": out[0] if len(out) > 0 else None,
        "qt": out[1] if len(out) > 1 else None,
        "platform_plugin": out[2] if len(out) > 2 else None,
        "os": platform.platform(),
    }


def run_script(name: str, quick: bool, timeout: float) -> dict[str, Any]:
    script, full, short, stem = SCRIPTS[name]
    args = short if quick else full
    path = RESULTS / f"{stem}.json"
    if path.exists():
        path.unlink()  # never report a figure this run did not produce
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    cmd = [sys.executable, str(HERE / script), *args]
    print(f"\n$ python benchmarks/{script} {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    # Its own process group: a script stopped for taking too long takes its servers along.
    child = subprocess.Popen(
        cmd,
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = child.communicate(timeout=timeout)
        proc = subprocess.CompletedProcess(cmd, child.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            out, _ = child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            out, _ = child.communicate()
        proc = subprocess.CompletedProcess(cmd, -9, out, f"stopped after {timeout:.0f} s")
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    for ln in lines:
        print(f"  {ln}", flush=True)
    res: dict[str, Any] = {
        "command": f"python benchmarks/{script} {' '.join(args)}".strip(),
        "wall_s": round(wall, 1),
    }
    if proc.returncode != 0 or not path.exists():
        err = (proc.stderr.strip().splitlines() or ["no results written"])[-1]
        print(f"  FAILED ({proc.returncode}): {err}", flush=True)
        res["error"] = err
        return res
    res["results"] = json.loads(path.read_text())
    return res


# -- the table --------------------------------------------------------------------------------------
Row = tuple[str, str, Callable[[dict[str, Any]], tuple[Any, bool]], tuple[str, ...]]


def _r(scripts: dict[str, Any], name: str) -> dict[str, Any]:
    res = scripts.get(name, {}).get("results")
    if res is None:
        raise LookupError(scripts.get(name, {}).get("error", f"{name} did not run"))
    return dict(res)


def t_startup(s: dict[str, Any]) -> tuple[Any, bool]:
    r = _r(s, "startup")
    value = {
        "x_bare": r["window_vs_bare"],
        "ms": r["window_ms"],
        "bare_ms": r["bare_ms"],
        # Not the target, said beside it: the window with its panes built (the frame comes first).
        "ready_x_bare": r.get("ready_vs_bare"),
        "ready_ms": r.get("ready_ms"),
        "replica_x_bare": r.get("replica_vs_bare"),
    }
    return value, r["window_vs_bare"] <= 2.5


def t_startup_catalog(s: dict[str, Any]) -> tuple[Any, bool]:
    r = _r(s, "startup")
    cold, cached = r["catalog_cold_vs_bare"], r["catalog_cached_vs_bare"]
    value = {
        "x_bare": cold,
        "x_bare_cached": cached,
        "ms": r["catalog_cold_ms"],
        "ms_cached": r["catalog_cached_ms"],
        # Not the target, said beside it: cached, until the definitions are read too (forms, details).
        "definitions_x_bare_cached": r.get("definitions_cached_vs_bare"),
    }
    return value, cold <= 3.5 and cached <= 2.0


def t_catalog(s: dict[str, Any]) -> tuple[Any, bool]:
    r = _r(s, "catalog")
    api = r["object_info_with_api_nodes.json"]["parse_vs_loads"]
    big = r["synthetic 10x object_info_with_api_nodes.json"]["parse_vs_loads"]
    return {"x_loads_567": api, "x_loads_5670": big}, api <= 2.0 and big <= 2.0


def t_search(s: dict[str, Any]) -> tuple[Any, bool]:
    r = _r(s, "search")
    return {"median_ms": r["median_ms"], "p99_ms": r["p99_ms"]}, r["median_ms"] <= 5 and r["p99_ms"] <= 16


def t_switch(s: dict[str, Any]) -> tuple[Any, bool]:
    r = _r(s, "switch")
    worst = r["worst_workflow_median_ms"]
    return {"median_ms": r["median_ms"], "worst_workflow_median_ms": worst}, worst <= 50


def t_events(s: dict[str, Any]) -> tuple[Any, bool]:
    e = _r(s, "ui_flood")["e2e"]
    # The fake sends a `progress` and a `progress_state` text message per step, plus a few per node.
    messages = 2 * e["progress_events"]
    rate = messages / (e["drain_ms"] / 1000)
    value = {"messages_per_s": round(rate), "loop_block_max_ms": e["max_ms"]}
    if "raw_client_ms" in e:  # what the server sends at, to a bare client: no client gets more
        value["server_rate_per_s"] = round(messages / (e["raw_client_ms"] / 1000))
    return value, rate >= 20_000 and e["max_ms"] <= 50


def t_previews(s: dict[str, Any]) -> tuple[Any, bool]:
    r = _r(s, "previews")
    accounted = r["frames_shown"] + r["frames_dropped_for_newer"] == r["frames_sent"]
    value = {
        "sent": r["frames_sent"],
        "shown": r["frames_shown"],
        "dropped_for_newer": r["frames_dropped_for_newer"],
        "newest_shown_last": r["newest_shown_last"],
        "loop_block_max_ms": r["probe_max_ms"],
    }
    return value, accounted and r["newest_shown_last"] and r["probe_max_ms"] <= 50


def t_latency(s: dict[str, Any]) -> tuple[Any, bool]:
    r = _r(s, "latency")
    return {"median_ms": r["median_ms"]}, r["median_ms"] <= 100


def t_gallery(s: dict[str, Any]) -> tuple[Any, bool]:
    r = _r(s, "gallery")
    value = {
        "outputs": r["outputs"],
        "open_ms": round(r["open_ms"], 1),
        "first100_cold_ms": round(r["first100_cold_ms"], 1),
        "first100_warm_ms": round(r["first100_warm_disk_ms"], 1),
        "page_median_ms": round(r["page_ms_median"], 1),
        "rss_mb": round(r["peak_rss_mb"], 1),
    }
    ok = (
        r["open_ms"] <= 500
        and r["page_ms_median"] <= 50
        and r["peak_rss_mb"] <= 400
        and r["outputs"] >= 10_000
    )
    return value, ok


def t_thumbs(s: dict[str, Any]) -> tuple[Any, bool]:
    r = _r(s, "gallery")["throughput"]
    return {"x_raw_pillow": r["ratio_pool"]}, r["ratio_pool"] >= 0.8


def t_memory(s: dict[str, Any]) -> tuple[Any, bool]:
    r = _r(s, "memory")
    return {"rss_mb": r["rss_mb"]}, r["rss_mb"] <= 250


def t_gateway(s: dict[str, Any]) -> tuple[Any, bool]:
    load = _r(s, "gateway")["load"]
    row = next(
        (v for k, v in load.items() if k.startswith("500/s") and not k.endswith(" 0 subscribers")), None
    )
    if row is None:
        raise LookupError("no 500/s case with subscribers")
    value = {"p99_ms": row["p99_ms"], "errors": row["errors"], "achieved_rps": row["achieved_rps"]}
    return value, row["p99_ms"] <= 50 and row["errors"] == 0


def t_gateway_overhead(s: dict[str, Any]) -> tuple[Any, bool]:
    runs = _r(s, "gateway")["runs"]
    pct = round((runs["ratio"] - 1) * 100, 1)
    return {
        "percent": pct,
        "gateway_ms": runs["gateway_median_ms"],
        "direct_ms": runs["direct_median_ms"],
    }, pct <= 5


TABLE: list[Row] = [
    ("start-up", "<= 2.5x bare QMainWindow", t_startup, ("startup",)),
    (
        "start-up with catalog",
        "<= 3.5x bare; <= 2.0x with the catalog cached",
        t_startup_catalog,
        ("startup",),
    ),
    ("catalog load", "<= 2.0x json.loads (567 and 5,670 classes)", t_catalog, ("catalog",)),
    ("node search", "median <= 5 ms, p99 <= 16 ms", t_search, ("search",)),
    ("workflow switch", "median <= 50 ms for each workflow", t_switch, ("switch",)),
    ("event throughput", ">= 20,000 messages/s, loop block <= 50 ms", t_events, ("ui_flood",)),
    (
        "preview frames",
        "each shown or dropped for a newer one, loop block <= 50 ms",
        t_previews,
        ("previews",),
    ),
    ("result latency", "<= 100 ms median", t_latency, ("latency",)),
    ("gallery", "10,000 outputs: open <= 0.5 s, page <= 50 ms, RSS <= 400 MB", t_gallery, ("gallery",)),
    ("thumbnails", ">= 0.8x raw Pillow", t_thumbs, ("gallery",)),
    ("memory", "<= 250 MB", t_memory, ("memory",)),
    ("gateway", "p99 <= 50 ms at 500 req/s, 500 subscribers, no errors", t_gateway, ("gateway",)),
    ("gateway overhead", "<= 5% more wall time", t_gateway_overhead, ("gateway",)),
]


def targets(scripts: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, target, fn, _needs in TABLE:
        try:
            value, met = fn(scripts)
        except (LookupError, KeyError, TypeError, ZeroDivisionError) as exc:
            value, met = {"error": str(exc)}, False
        out.append({"name": name, "value": value, "target": target, "met": bool(met)})
    return out


def fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def print_table(rows: list[dict[str, Any]]) -> None:
    w_name = max(len(r["name"]) for r in rows)
    w_target = max(len(r["target"]) for r in rows)
    print(f"\n{'what':<{w_name}}  {'met':<4}  {'target':<{w_target}}  value")
    print(f"{'-' * w_name}  ----  {'-' * w_target}  -----")
    for r in rows:
        mark = "yes" if r["met"] else "NO"
        print(f"{r['name']:<{w_name}}  {mark:<4}  {r['target']:<{w_target}}  {fmt(r['value'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", type=Path, default=RESULTS / "all.json")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller inputs")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one script may take (900)")
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(SCRIPTS)}")
    args = ap.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    started = time.time()
    load_before = os.getloadavg()
    info = machine()
    print(f"machine: {fmt(info)}; load average {load_before[0]:.2f}", flush=True)
    scripts = {name: run_script(name, args.quick, args.timeout) for name in names}
    load_after = os.getloadavg()
    rows = targets(scripts)
    print_table(rows)
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "quick": args.quick,
        "machine": {**info, "load_average_before": load_before, "load_average_after": load_after},
        "wall_s": round(time.time() - started, 1),
        "targets": rows,
        "scripts": scripts,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2))
    met = sum(r["met"] for r in rows)
    print(f"\n{met} of {len(rows)} targets met; written to {args.output}")


if __name__ == "__main__":
    main()
