"""The window at work: node search as the user types, switching workflows, live previews, memory.

Usage: .venv/bin/python benchmarks/bench_app.py --case {search,switch,previews,memory} [--quick]
Each case runs in its own process (memory is the process's RSS); `python -m benchmarks` runs them all.
Offscreen unless QT_QPA_PLATFORM is set. Writes benchmarks/results/app_<case>.json.

  search    NodePane over a synthetic 5,670-class catalog (object_info_with_api_nodes.json ten times
            over): each keystroke of 8 search words typed letter by letter, then deleted; one keystroke is
            the filter applied (no typing pause) and the list laid out and painted.
  switch    the main window offline with the captured catalog and the 8 fixture UI workflows in the library:
            a workflow picked in the library tree -> its form shown (converted, built, laid out); every
            workflow picked in turn, several rounds.
  previews  512x512 JPEG previews applied to a RunState bound to the progress panel at 30/s for 10 s (3 s
            with --quick): frames shown, frames dropped for a newer one, the newest shown last, and how late a
            10 ms probe timer got.
  memory    the main window offline with the captured 567-class catalog in the nodes pane and 100 results in
            the gallery (thumbnails made): RSS of the process.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import qasync
from _common import FIXTURES, percentile, synthetic_object_info, write_results
from PySide6.QtCore import qInstallMessageHandler
from PySide6.QtWidgets import QApplication

from comfydesk.core.nodes import NodeCatalog, parse_object_info

WORDS = [
    "load image",
    "ksampler",
    "vae decode",
    "clip text encode",
    "upscale",
    "save",
    "latent",
    "controlnet",
]


def _quiet(kind: object, context: object, message: str) -> None:
    if "propagateSizeHints" not in message:
        print(message, file=sys.stderr)


def catalog_of(name: str, times: int = 1) -> NodeCatalog:
    doc = json.loads((FIXTURES / name).read_bytes())
    return parse_object_info(synthetic_object_info(doc, times) if times > 1 else doc)


async def until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > end:
            raise TimeoutError("the benchmark waited too long")
        await asyncio.sleep(0.0005)


# -- node search ---------------------------------------------------------------------------------------
async def case_search(quick: bool) -> dict[str, Any]:
    from comfydesk.app.catalog import CatalogModel
    from comfydesk.app.tasks import ErrorModel, TaskRunner
    from comfydesk.ui.node_pane import NodePane

    catalog = catalog_of("object_info_with_api_nodes.json", 10)
    model = CatalogModel(TaskRunner(ErrorModel()))
    pane = NodePane(model)
    pane.resize(320, 800)
    pane.show()
    t0 = time.perf_counter()
    model.set_catalog(catalog)
    QApplication.processEvents()
    fill_ms = (time.perf_counter() - t0) * 1000
    times: list[float] = []
    rounds = 1 if quick else 3
    for _ in range(rounds):
        model.set_catalog(None)  # a new index each round: nothing remembered from the round before
        model.set_catalog(catalog)
        for word in WORDS:
            typed = [word[: i + 1] for i in range(len(word))]
            for text in [*typed, *reversed(typed[:-1]), ""]:
                t0 = time.perf_counter()
                pane.search.setText(text)
                pane.apply_filter_now()
                QApplication.processEvents()  # laid out and painted
                times.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0)
    res = {
        "classes": len(catalog),
        "keystrokes": len(times),
        "median_ms": round(statistics.median(times), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "max_ms": round(max(times), 2),
        "catalog_into_pane_ms": round(fill_ms, 1),
    }
    print(
        f"node search ({len(catalog)} classes, {len(times)} keystrokes): median {res['median_ms']} ms, "
        f"p99 {res['p99_ms']} ms, max {res['max_ms']} ms | whole catalog into the pane {fill_ms:.0f} ms"
    )
    return res


# -- workflow switch -----------------------------------------------------------------------------------
async def case_switch(quick: bool) -> dict[str, Any]:
    import keyring
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())
    from comfydesk.gui import create_main_window

    data = Path(tempfile.mkdtemp(prefix="comfydesk-bench-switch-"))
    folder = data / "workflows"
    folder.mkdir(parents=True)
    names = sorted(p.name for p in (FIXTURES / "workflows" / "ui").glob("*.json"))
    for name in names:
        (folder / name).write_bytes((FIXTURES / "workflows" / "ui" / name).read_bytes())
    window = create_main_window(server=None, data_dir=data)
    window.show()
    window.ctx.catalog.set_catalog(catalog_of("object_info.json"))
    pane = window.workflow_pane
    keys = [f"local:{n}" for n in names]
    await until(lambda: all(pane.item_for(k) is not None for k in keys))

    def shown(key: str) -> bool:
        cur = window._current
        return cur is not None and cur.key == key and cur.spec is not None and window.form.spec() is cur.spec

    per: dict[str, list[float]] = {k: [] for k in keys}
    rounds = 2 if quick else 5
    for _ in range(rounds + 1):  # the first round warms up
        for key in keys:
            item = pane.item_for(key)
            assert item is not None
            t0 = time.perf_counter()
            pane.tree.setCurrentItem(item)
            await until(lambda key=key: shown(key))
            await asyncio.sleep(0)  # a loop turn: the form laid out and painted
            per[key].append((time.perf_counter() - t0) * 1000)
    medians = {k.removeprefix("local:"): round(statistics.median(v[1:]), 1) for k, v in per.items()}
    all_times = [t for v in per.values() for t in v[1:]]
    # The first round opens each file for the first time this session (read and converted); the rounds
    # measured go back to workflows opened before, as a user switching between a few does.
    first = {k.removeprefix("local:"): round(v[0], 1) for k, v in per.items()}
    res = {
        "workflows": medians,
        "median_ms": round(statistics.median(all_times), 1),
        "max_ms": round(max(all_times), 1),
        "worst_workflow_median_ms": max(medians.values()),
        "first_open": first,
        "first_open_median_ms": round(statistics.median(first.values()), 1),
        "first_open_max_ms": max(first.values()),
    }
    print(
        f"workflow switch ({len(keys)} UI workflows x {rounds}): median {res['median_ms']} ms, worst "
        f"workflow's median {res['worst_workflow_median_ms']} ms, max {res['max_ms']} ms | "
        + ", ".join(f"{k} {v}" for k, v in medians.items())
        + f" | first open of each (one sample each): median {res['first_open_median_ms']} ms, "
        f"max {res['first_open_max_ms']} ms"
    )
    return res


# -- live previews ---------------------------------------------------------------------------------------
async def case_previews(quick: bool) -> dict[str, Any]:
    from bench_ui_flood import Probe, count_signals, make_window, preview_idle, preview_jpegs

    from comfydesk.app.run_state import RunState
    from comfydesk.core.events import Preview, Started
    from comfydesk.core.graph import ApiGraph

    seconds = 3.0 if quick else 10.0
    jpegs = preview_jpegs(8)
    window, panel = make_window()
    state = RunState()
    panel.bind(state)
    counts = count_signals(state)
    shown: list[int] = []
    state.preview_changed.connect(lambda img: shown.append(img.cacheKey()))
    graph = ApiGraph.from_prompt({"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}}})
    state.begin("bench-previews", graph=graph, node_titles={"3": "KSampler"})
    state.apply(Started("bench-previews"))
    await asyncio.sleep(0.2)
    probe = Probe()
    probe.start()
    frames = int(seconds * 30)
    t0 = time.perf_counter()
    for i in range(frames):
        due = t0 + i / 30
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        state.apply(Preview("bench-previews", "3", jpegs[i % len(jpegs)]))
    await until(lambda: preview_idle(state))
    probe.stop()
    last = state.preview
    want = jpegs[(frames - 1) % len(jpegs)]
    from PySide6.QtGui import QImage

    expected = QImage.fromData(want)
    newest_shown = last is not None and last.size().width() > 0 and abs(last.width() - expected.width()) <= 1
    panel.unbind()
    window.close()
    res = {
        "frames_sent": frames,
        "frames_shown": counts["preview_emits"],
        "frames_dropped_for_newer": frames - counts["preview_emits"],
        "newest_shown_last": bool(newest_shown),
        "probe_median_ms": round(statistics.median(probe.samples), 2),
        "probe_p99_ms": round(percentile(probe.samples, 99), 2),
        "probe_max_ms": round(max(probe.samples), 2),
        "seconds": seconds,
    }
    print(
        f"previews (512 px JPEG, 30/s for {seconds:.0f} s): {frames} sent, {res['frames_shown']} shown, "
        f"{res['frames_dropped_for_newer']} dropped for a newer one, newest shown last: {newest_shown} | "
        f"10 ms probe late by median {res['probe_median_ms']} ms, p99 {res['probe_p99_ms']} ms, "
        f"max {res['probe_max_ms']} ms"
    )
    return res


# -- memory --------------------------------------------------------------------------------------------------
def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def case_memory(quick: bool) -> dict[str, Any]:
    import keyring
    from bench_gallery import fill
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())
    from comfydesk.gui import create_main_window

    data = Path(tempfile.mkdtemp(prefix="comfydesk-bench-memory-"))
    fill(data, 100)
    before = rss_mb()
    window = create_main_window(server=None, data_dir=data)
    window.show()
    catalog = catalog_of("object_info_with_api_nodes.json")
    window.ctx.catalog.set_catalog(catalog)
    gallery = window.ctx.gallery
    await until(lambda: gallery.rowCount() >= 100, timeout=60)
    thumbs = gallery.thumbnails
    for row in range(100):  # every tile's thumbnail asked for, as a scrolled-through grid does
        gallery.data(gallery.index(row, 0), 1)  # DecorationRole
    await asyncio.sleep(0.5)
    await until(lambda: getattr(thumbs, "pending", 0) == 0, timeout=60)
    await asyncio.sleep(0.5)
    rss = rss_mb()
    res = {
        "rss_mb": round(rss, 1),
        "rss_before_window_mb": round(before, 1),
        "gallery_rows": gallery.rowCount(),
    }
    print(
        f"memory: RSS {rss:.0f} MB with the main window, {len(catalog)} node classes in the nodes pane and "
        f"{gallery.rowCount()} results in the gallery (process before the window: {before:.0f} MB)"
    )
    return res


CASES = {"search": case_search, "switch": case_switch, "previews": case_previews, "memory": case_memory}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    qInstallMessageHandler(_quiet)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        res = loop.run_until_complete(CASES[args.case](args.quick))
    write_results(f"app_{args.case}", res)
    sys.stdout.flush()
    os._exit(0)  # the windows' shutdown is not what this measures


if __name__ == "__main__":
    main()
