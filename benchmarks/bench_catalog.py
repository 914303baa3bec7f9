"""How long parsing node definitions takes, against raw `json.loads` of the same bytes as the baseline.

Usage: .venv/bin/python benchmarks/bench_catalog.py [--repeat N] [--fixtures DIR]
Prints medians and writes benchmarks/results/catalog.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import ROOT, median_ms, write_results

from comfydesk.core.nodes import parse_object_info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--fixtures", type=Path, default=ROOT.parent / "shared" / "fixtures" / "comfyui")
    args = ap.parse_args()
    results = {}
    for name in ("object_info.json", "object_info_with_api_nodes.json"):
        raw = (args.fixtures / name).read_bytes()
        doc = json.loads(raw)
        loads_ms = median_ms(lambda raw=raw: json.loads(raw), args.repeat)
        parse_ms = median_ms(lambda doc=doc: parse_object_info(doc), args.repeat)
        catalog = parse_object_info(doc)
        search_ms = median_ms(lambda c=catalog: c.search("load image"), args.repeat)
        results[name] = {
            "bytes": len(raw),
            "classes": len(catalog),
            "json_loads_ms": round(loads_ms, 2),
            "parse_object_info_ms": round(parse_ms, 2),
            "parse_vs_loads": round(parse_ms / loads_ms, 2),
            "search_ms": round(search_ms, 3),
        }
        print(
            f"{name}: {len(raw):,} bytes, {len(catalog)} classes | json.loads {loads_ms:.1f} ms | "
            f"parse_object_info {parse_ms:.1f} ms ({parse_ms / loads_ms:.2f}x loads) | "
            f"search 'load image' {search_ms:.2f} ms  (medians of {args.repeat})"
        )
    write_results("catalog", results)


if __name__ == "__main__":
    main()
