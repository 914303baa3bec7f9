"""How long parsing node definitions takes, against raw `json.loads` of the same bytes as the baseline.

Usage: .venv/bin/python benchmarks/bench_catalog.py [--repeat N] [--fixtures DIR]
Documents: the captured object_info.json and object_info_with_api_nodes.json, and a synthetic 10x document
(object_info_with_api_nodes.json ten times over, about 5,700 classes). `parse_object_info` (parse + build the
NodeCatalog from the loaded document) and `json.loads` are timed interleaved, so both see the same machine
load. Prints medians and writes benchmarks/results/catalog.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import FIXTURES, synthetic_object_info, write_results

from comfydesk.core.nodes import parse_object_info


def interleaved(a: Callable[[], object], b: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Medians (ms) of `a` and `b`, timed alternately after one warm-up each."""
    a()
    b()
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return statistics.median(ta) * 1000, statistics.median(tb) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=31)
    ap.add_argument("--fixtures", type=Path, default=FIXTURES)
    args = ap.parse_args()
    docs: dict[str, bytes] = {}
    for name in ("object_info.json", "object_info_with_api_nodes.json"):
        docs[name] = (args.fixtures / name).read_bytes()
    big = synthetic_object_info(json.loads(docs["object_info_with_api_nodes.json"]), 10)
    docs["synthetic 10x object_info_with_api_nodes.json"] = json.dumps(big).encode()
    results: dict[str, Any] = {}
    for name, raw in docs.items():
        doc = json.loads(raw)
        repeat = args.repeat if len(raw) < 5_000_000 else max(5, args.repeat // 3)
        loads_ms, parse_ms = interleaved(
            lambda raw=raw: json.loads(raw), lambda doc=doc: parse_object_info(doc), repeat
        )
        catalog = parse_object_info(doc)
        search_ms = interleaved(lambda c=catalog: c.search("load image"), lambda: None, repeat)[0]
        results[name] = {
            "bytes": len(raw),
            "classes": len(catalog),
            "json_loads_ms": round(loads_ms, 2),
            "parse_object_info_ms": round(parse_ms, 2),
            "parse_vs_loads": round(parse_ms / loads_ms, 2),
            "search_ms": round(search_ms, 3),
            "repeat": repeat,
        }
        print(
            f"{name}: {len(raw):,} bytes, {len(catalog)} classes | json.loads {loads_ms:.1f} ms | "
            f"parse_object_info {parse_ms:.1f} ms ({parse_ms / loads_ms:.2f}x loads) | "
            f"NodeCatalog.search 'load image' {search_ms:.2f} ms  (medians of {repeat}, interleaved)"
        )
    write_results("catalog", results)


if __name__ == "__main__":
    main()
