"""The gallery on a journal of 10,000 outputs: open time, thumbnails cold/warm, RSS, throughput, page latency.

Setup (once per data dir, in a child process so its memory does not count): a journal filled through
`Journal.add_output` with real PNGs drawn by Pillow at several sizes (512x512, 768x512, 512x768, 1024x1024,
1216x832). 36 base pictures are encoded once; each output is its base PNG plus its own `prompt` tEXt chunk
(as ComfyUI writes one), so the files have distinct bytes, hashes, blobs and thumbnails but cost a real
decode; one output in ten repeats an earlier file exactly (a shared blob). The blob writes skip fsync
during the fill (the journal's durability is not what is measured here).

Then, in this process, with the qasync loop running:
- open: JournalModel + ThumbnailCache + GalleryModel + GalleryPane, shown, until the first page (200 rows)
  is in the grid and painted;
- first 100 thumbnails: cold (empty disk cache), warm (disk cache, empty memory), hot (memory);
- throughput: the same 200 files through ThumbnailCache (its pool) and through `render_thumbnail` on one
  thread, against raw Pillow `open` + `draft` + `thumbnail((256, 256))` on one thread (the baseline);
- page latency: `fetchMore` of a 200-row page until its rows are in the model, plus `data()` of every
  role the delegate reads for those rows; medians over the pages down to the 10,000th output, once back to
  back (the read-ahead has no time to help) and once with 50 ms between pages (it has);
- peak RSS (ru_maxrss) after every row is loaded and 1,500 thumbnails have passed through the memory LRU.

Usage: .venv/bin/python benchmarks/bench_gallery.py [--outputs 10000] [--data DIR] [--screenshot PNG]
Prints the figures and writes benchmarks/results/gallery.json. `--screenshot docs/gallery.png` instead
fills a small journal of a few hundred varied outputs and saves an offscreen grab of the gallery.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("LANG", "C.UTF-8")

from _common import write_results
from PIL import Image

SIZES = [(512, 512), (768, 512), (512, 768), (1024, 1024), (1216, 832)]
WEIGHTS = [5, 2, 2, 1, 1]
WORKFLOWS = ["Blog Post Image", "Product shot", "Portrait", "Upscale 2x", "Poster from a prompt", "Inpaint"]
PROMPTS = [
    "a lighthouse at dusk",
    "a red fox in snow",
    "a bowl of ramen",
    "an old robot",
    "a glass city",
    "koi in a pond",
    "a desert caravan",
    "a paper boat",
    "northern lights",
    "a cozy library",
]
PAGE = 200


# -- data ------------------------------------------------------------------------------------------
def picture(size: tuple[int, int], seed: int) -> Image.Image:
    """A deterministic, photo-like enough picture: a fractal, gradients and a little noise."""
    w, h = size
    rnd = random.Random(seed)
    x0, y0 = rnd.uniform(-2.0, -0.5), rnd.uniform(-1.2, 0.2)
    span = rnd.uniform(0.4, 2.2)
    frac = Image.effect_mandelbrot((w, h), (x0, y0, x0 + span, y0 + span * h / w), rnd.randint(40, 120))
    grad = Image.linear_gradient("L").resize((w, h)).rotate(rnd.choice([0, 90, 180, 270]))
    noise = Image.effect_noise((w, h), rnd.uniform(8, 24))
    bands = [frac, grad, Image.blend(grad, noise, 0.3)]
    rnd.shuffle(bands)
    tint = Image.merge("RGB", bands)
    hue = Image.new("RGB", (w, h), tuple(rnd.randint(40, 255) for _ in range(3)))
    return Image.blend(tint, hue, rnd.uniform(0.2, 0.5))


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def with_text(png: bytes, key: str, text: str) -> bytes:
    """`png` with a tEXt chunk after IHDR (8-byte signature + 25-byte IHDR chunk)."""
    body = key.encode("latin-1") + b"\0" + text.encode("latin-1", "replace")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF)
    return png[:33] + chunk + png[33:]


def fill(data_dir: Path, outputs: int, *, bases: int = 36, per_run: int = 4) -> None:
    """The journal of `outputs` outputs (see the module docstring); a child process runs this."""
    from comfydesk.store import journal_files
    from comfydesk.store.journal import Journal

    real_fsync = os.fsync
    os.fsync = lambda fd: None  # the fill only: blob durability is not what this measures
    try:
        rnd = random.Random(9)
        base = [png_bytes(picture(rnd.choices(SIZES, WEIGHTS)[0], seed)) for seed in range(bases)]
        journal = Journal(data_dir / "journal.sqlite3", data_dir / "blobs")
        t0 = time.time() - outputs * 7.0
        n = 0
        previous: list[bytes] = []
        while n < outputs:
            workflow = rnd.choice(WORKFLOWS)
            prompt = f"{rnd.choice(PROMPTS)}, {rnd.choice(['oil', 'photo', 'ink', 'watercolor'])}"
            run = journal.record_run(
                profile_id="studio",
                server=rnd.choice(["gpu-box:8188", "studio-gpu:8188"]),
                workflow_name=workflow,
                workflow_id=None,
                api_graph={"3": {"class_type": "KSampler"}},
                ui_graph=None,
                values={"prompt": prompt},
                seed=rnd.randint(0, 2**32),
            )
            journal.set_status(run.id, "completed")
            for _ in range(min(per_run, outputs - n)):
                if previous and rnd.random() < 0.1:
                    data = rnd.choice(previous)  # a shared blob
                else:
                    data = with_text(base[n % bases], "prompt", json.dumps({"n": n, "prompt": prompt}))
                    previous = [*previous[-50:], data]
                journal.add_output(
                    run.id,
                    node_id="9",
                    kind="images",
                    data=data,
                    source=f"{n}",
                    filename=f"{n:05d}.png",
                    created_at=t0 + n * 7.0,
                )
                n += 1
        journal.close()
        _ = journal_files
    finally:
        os.fsync = real_fsync


# -- measuring -------------------------------------------------------------------------------------
async def until(cond: Callable[[], bool], timeout: float = 120.0, step: float = 0.005) -> None:
    """Wait for `cond`, checking every `step` s (gently: the workers need the GIL more than this loop)."""
    deadline = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark step did not finish")
        await asyncio.sleep(step)


async def idle(cache: Any, timeout: float = 300.0) -> None:
    """Wait until the cache has no job left, woken by its own signal rather than polling."""
    if cache.pending == 0:
        return
    done = asyncio.get_running_loop().create_future()

    def check(_key: str) -> None:
        if cache.pending == 0 and not done.done():
            done.set_result(None)

    cache.thumbnail_ready.connect(check)
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        cache.thumbnail_ready.disconnect(check)


def raw_pillow(path: Path) -> None:
    with Image.open(path) as im:
        im.draft("RGB", (256, 256))
        im.thumbnail((256, 256))


async def measure(data_dir: Path, outputs: int) -> dict[str, Any]:
    from PySide6.QtCore import QModelIndex, Qt
    from PySide6.QtWidgets import QApplication

    from comfydesk.app.gallery import GalleryModel, GroupRole, RecordRole, ThumbStateRole
    from comfydesk.app.images import make_thumbnail
    from comfydesk.app.journal import JournalModel
    from comfydesk.app.tasks import ErrorModel, TaskRunner
    from comfydesk.app.thumbnails import ThumbnailCache, render_thumbnail
    from comfydesk.ui.gallery import GalleryPane

    app = QApplication.instance()
    assert app is not None
    thumbs_dir = data_dir / "thumbs"
    shutil.rmtree(thumbs_dir, ignore_errors=True)
    res: dict[str, Any] = {"outputs": outputs}
    roles = [
        Qt.ItemDataRole.DisplayRole,
        Qt.ItemDataRole.DecorationRole,
        ThumbStateRole,
        GroupRole,
        RecordRole,
    ]

    # Open: everything built, shown, the first page in and painted.
    t0 = time.perf_counter()
    journal = JournalModel(data_dir / "journal.sqlite3", data_dir / "blobs")
    tasks = TaskRunner(ErrorModel())
    thumbs = ThumbnailCache(thumbs_dir)
    model = GalleryModel(journal, thumbs, tasks)
    pane = GalleryPane()
    pane.bind(model)
    pane.resize(900, 1000)
    pane.show()
    await until(lambda: model.rowCount() >= PAGE and not model.loading)
    pane.view.viewport().repaint()
    res["open_ms"] = (time.perf_counter() - t0) * 1000
    res["total"] = model.total

    # Let the tiles painted on open finish, then start the thumbnail figures from an empty cache.
    await idle(thumbs)
    pane.hide()
    thumbs.clear_memory()
    model._pixmaps.clear()
    shutil.rmtree(thumbs_dir, ignore_errors=True)
    first = model.records()[:100]
    keys = [r.sha256 for r in first]

    async def hundred() -> float:
        t = time.perf_counter()
        for row in range(100):
            model.index(row, 0).data(Qt.ItemDataRole.DecorationRole)
        await idle(thumbs)
        assert all(thumbs.state(k) == "ready" for k in keys)
        return (time.perf_counter() - t) * 1000

    res["first100_cold_ms"] = await hundred()
    await until(lambda: thumbs.writes_pending == 0)  # the cold run's thumbnails are on disk now
    thumbs.clear_memory()
    model._pixmaps.clear()
    res["first100_warm_disk_ms"] = await hundred()
    t = time.perf_counter()
    for row in range(100):
        model.index(row, 0).data(Qt.ItemDataRole.DecorationRole)
    res["first100_hot_ms"] = (time.perf_counter() - t) * 1000

    # Throughput on 200 distinct files: the cache's pool, one thread of ours, raw Pillow on one thread.
    seen: set[str] = set()
    sample = []
    for r in model.records():
        if r.path is not None and r.sha256 not in seen:
            seen.add(r.sha256)
            sample.append(r)
    sample = sample[:200]
    for r in sample:  # the files in the OS cache for every contender alike
        r.path.read_bytes()  # type: ignore[union-attr]
    paths = [r.path for r in sample]
    times: dict[str, list[float]] = {"raw": [], "make": [], "render": [], "pool": [], "pool_writes": []}
    for _round in range(3):  # interleaved rounds, medians: other load on the machine hits all alike
        t = time.perf_counter()
        for p in paths:
            raw_pillow(p)  # type: ignore[arg-type]
        times["raw"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for p in paths:
            make_thumbnail(p, 256)  # type: ignore[arg-type]
        times["make"].append(time.perf_counter() - t)
        one_dir = Path(tempfile.mkdtemp(prefix="thumbs1-"))
        t = time.perf_counter()
        for r in sample:
            render_thumbnail(r.path, r.sha256, one_dir)  # type: ignore[arg-type]
        times["render"].append(time.perf_counter() - t)
        shutil.rmtree(one_dir, ignore_errors=True)
        pool_cache = ThumbnailCache(Path(tempfile.mkdtemp(prefix="thumbsP-")), max_pending=1000)
        t = time.perf_counter()
        for r in sample:
            pool_cache.request(r.sha256, r.path)
        await idle(pool_cache)
        times["pool"].append(time.perf_counter() - t)
        await until(lambda c=pool_cache: c.writes_pending == 0)  # type: ignore[misc]
        times["pool_writes"].append(time.perf_counter() - t)
        shutil.rmtree(pool_cache.cache_dir, ignore_errors=True)
        pool_cache.close()
    n = len(sample)
    med = {k: statistics.median(v) for k, v in times.items()}
    res["throughput"] = {
        "files": n,
        "threads": pool_cache.pool.maxThreadCount(),
        "raw_pillow_per_s": n / med["raw"],
        "cache_pool_per_s": n / med["pool"],
        "cache_pool_with_writes_per_s": n / med["pool_writes"],
        "make_thumbnail_per_s": n / med["make"],
        "one_thread_with_write_per_s": n / med["render"],
        "ratio_pool": med["raw"] / med["pool"],
        "ratio_pool_with_writes": med["raw"] / med["pool_writes"],
        "ratio_make_thumbnail": med["raw"] / med["make"],
        "ratio_one_thread_with_write": med["raw"] / med["render"],
    }

    # Page latency: fetchMore until the rows are in, plus data() of every role for those rows.
    thumbs.clear_memory()
    model._pixmaps.clear()
    latencies = []
    fetches = []
    datas = []
    while model.canFetchMore(QModelIndex()):
        start = model.rowCount()
        t = time.perf_counter()
        model.fetchMore(QModelIndex())
        await until(lambda: not model.loading, step=0.0005)
        t1 = time.perf_counter()
        for row in range(start, model.rowCount()):
            index = model.index(row, 0)
            for role in roles:
                index.data(role)
        latencies.append((time.perf_counter() - t) * 1000)
        fetches.append((t1 - t) * 1000)
        datas.append((time.perf_counter() - t1) * 1000)
        thumbs.cancel_pending()  # a fast scroll: those tiles are gone before their jobs start
    res["pages"] = len(latencies)
    res["page_ms_median"] = statistics.median(latencies)
    res["page_ms_p95"] = sorted(latencies)[int(len(latencies) * 0.95) - 1]
    res["page_ms_max"] = max(latencies)
    res["page_ms_last"] = latencies[-1]
    res["page_fetch_ms_median"] = statistics.median(fetches)
    res["page_data_ms_median"] = statistics.median(datas)

    # The same pages scrolled through at a human pace (50 ms between pages; a page is ~50 screen lines):
    # the next page has been read ahead, so fetchMore puts it in at once.
    model.reload()
    await until(lambda: not model.loading)
    paced = []
    while model.canFetchMore(QModelIndex()):
        await asyncio.sleep(0.05)
        start = model.rowCount()
        t = time.perf_counter()
        model.fetchMore(QModelIndex())
        await until(lambda: not model.loading, step=0.0005)
        for row in range(start, model.rowCount()):
            index = model.index(row, 0)
            for role in roles:
                index.data(role)
        paced.append((time.perf_counter() - t) * 1000)
        thumbs.cancel_pending()
    res["paced_page_ms_median"] = statistics.median(paced)
    res["paced_page_ms_max"] = max(paced)
    res["rows_loaded"] = model.rowCount()

    # Memory: every row loaded, 1,500 thumbnails through the LRU (from the disk cache where made).
    for row in range(0, 1500):
        model.index(row, 0).data(Qt.ItemDataRole.DecorationRole)
        if thumbs.pending > 60:
            await until(lambda: thumbs.pending < 20)
    await idle(thumbs)
    for row in range(0, 1500, 3):
        model.index(row, 0).data(Qt.ItemDataRole.DecorationRole)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["thumb_memory_mb"] = thumbs._memory_used / 2**20

    pane.bind(None)
    thumbs.close()
    await journal.aclose(purge=False)
    return res


def report(res: dict[str, Any]) -> None:
    tp = res["throughput"]
    print(f"journal: {res['outputs']:,} outputs ({res['total']:,} listed)")
    print(f"open gallery (journal + model + view, first page of {PAGE} shown): {res['open_ms']:.0f} ms")
    print(
        f"first 100 thumbnails: cold {res['first100_cold_ms']:.0f} ms | warm (disk cache) "
        f"{res['first100_warm_disk_ms']:.0f} ms | hot (memory) {res['first100_hot_ms']:.1f} ms"
    )
    print(
        f"throughput on {tp['files']} files (medians of 3 interleaved rounds): raw Pillow "
        f"{tp['raw_pillow_per_s']:.0f}/s | ThumbnailCache ({tp['threads']} threads) "
        f"{tp['cache_pool_per_s']:.0f}/s"
        f" = {tp['ratio_pool']:.2f}x (with its disk writes done {tp['ratio_pool_with_writes']:.2f}x) | "
        f"one thread: make_thumbnail {tp['ratio_make_thumbnail']:.2f}x, + PNG write "
        f"{tp['ratio_one_thread_with_write']:.2f}x"
    )
    print(
        f"page of {PAGE} (fetchMore + data of 5 roles), {res['pages']} pages to row {res['rows_loaded']:,}: "
        f"median {res['page_ms_median']:.1f} ms | p95 {res['page_ms_p95']:.1f} ms | max "
        f"{res['page_ms_max']:.1f} ms | last page {res['page_ms_last']:.1f} ms (median fetch "
        f"{res['page_fetch_ms_median']:.1f} ms + data {res['page_data_ms_median']:.1f} ms)"
    )
    print(
        f"the same pages 50 ms apart (read ahead): median {res['paced_page_ms_median']:.1f} ms | max "
        f"{res['paced_page_ms_max']:.1f} ms"
    )
    print(f"peak RSS: {res['peak_rss_mb']:.0f} MB (thumbnails in memory: {res['thumb_memory_mb']:.0f} MB)")


# -- screenshot ------------------------------------------------------------------------------------
async def screenshot(target: Path, data_dir: Path, count: int) -> None:
    from PySide6.QtWidgets import QApplication

    from comfydesk.app.gallery import GalleryModel
    from comfydesk.app.journal import JournalModel
    from comfydesk.app.tasks import ErrorModel, TaskRunner
    from comfydesk.app.thumbnails import ThumbnailCache
    from comfydesk.store.journal import Journal
    from comfydesk.ui.gallery import GalleryPane
    from comfydesk.ui.theme import apply_theme

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_theme(app)
    journal = Journal(data_dir / "journal.sqlite3", data_dir / "blobs")
    rnd = random.Random(4)
    now = time.time()
    n = 0
    while n < count:
        k = rnd.choice([1, 2, 4, 4])
        run = journal.record_run(
            profile_id="studio",
            server="gpu-box:8188",
            workflow_name=rnd.choice(WORKFLOWS),
            workflow_id=None,
            api_graph={},
            ui_graph=None,
            values={"prompt": rnd.choice(PROMPTS)},
            seed=rnd.randint(0, 99999),
        )
        journal.set_status(run.id, "completed")
        for i in range(k):
            size = rnd.choice([(256, 256), (320, 256), (256, 320)])
            data = b"not a png at all" if n == count - 6 else png_bytes(picture(size, n))
            rec = journal.add_output(
                run.id,
                node_id="9",
                kind="images",
                data=data,
                source=str(i),
                filename=f"{n}.png",
                created_at=now - (count - n) * 40,
            )
            if rec is not None and (rnd.random() < 0.1 or n in (count - 3, count - 9)):
                journal.set_starred([rec.id], True)
            n += 1
    journal.close()
    jm = JournalModel(data_dir / "journal.sqlite3", data_dir / "blobs")
    thumbs = ThumbnailCache(data_dir / "thumbs")
    model = GalleryModel(jm, thumbs, TaskRunner(ErrorModel()))
    pane = GalleryPane()
    pane.bind(model)
    pane.resize(820, 900)
    pane.show()
    await until(lambda: model.rowCount() > 0 and not model.loading)
    for _ in range(3):
        pane.view.viewport().repaint()
        await idle(thumbs)
        await asyncio.sleep(0.05)
    pane.view.setCurrentIndex(model.index(5, 0))
    pane.view.selectionModel().select(model.index(6, 0), pane.view.selectionModel().SelectionFlag.Select)
    await asyncio.sleep(0.05)
    pane.grab().save(str(target))
    print(f"wrote {target} ({model.total} outputs)")
    pane.bind(None)
    thumbs.close()
    await jm.aclose(purge=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outputs", type=int, default=10_000)
    ap.add_argument("--data", type=Path, help="keep the filled journal here (reused when present)")
    ap.add_argument("--screenshot", type=Path, help="write an offscreen grab of a few hundred outputs")
    ap.add_argument("--fill-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    tmp = None
    data_dir = args.data
    if data_dir is None:
        tmp = tempfile.mkdtemp(prefix="bench-gallery-")
        data_dir = Path(tmp)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        if args.fill_only:
            fill(data_dir, args.outputs)
            return
        import qasync
        from PySide6.QtWidgets import QApplication

        app = QApplication.instance() or QApplication(sys.argv[:1])
        if args.screenshot:
            qasync.run(screenshot(args.screenshot, data_dir, 300))
            return
        if not (data_dir / "journal.sqlite3").exists():
            t = time.perf_counter()
            cmd = [
                sys.executable,
                __file__,
                "--fill-only",
                "--outputs",
                str(args.outputs),
                "--data",
                str(data_dir),
            ]
            subprocess.run(cmd, check=True)
            print(f"filled the journal with {args.outputs:,} outputs in {time.perf_counter() - t:.0f} s")
        _ = app
        res = qasync.run(measure(data_dir, args.outputs))
        report(res)
        write_results("gallery", res)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
