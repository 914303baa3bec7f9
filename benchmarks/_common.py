"""What every benchmark script shares: timing by median, and where results are written."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of `fn` over `repeat` calls, after one warm-up call (imports, first allocations)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    return median_seconds(fn, repeat) * 1000


def write_results(name: str, doc: Any) -> Path:
    """Write benchmarks/results/<name>.json (gitignored) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


FIXTURES = ROOT.parent / "shared" / "fixtures" / "comfyui"


def synthetic_object_info(doc: dict[str, Any], times: int = 10) -> dict[str, Any]:
    """`doc` `times` over, as a server with many custom node packs: copy k of class X is `X_k` in category
    `pack k/...`, titled `<title> k` (copy 0 is the original)."""
    out: dict[str, Any] = {}
    for k in range(times):
        for node_id, raw in doc.items():
            if k == 0 or not isinstance(raw, dict):
                out[node_id if k == 0 else f"{node_id}_{k}"] = raw
                continue
            copy = dict(raw)
            copy["display_name"] = f"{raw.get('display_name') or node_id} {k}"
            copy["category"] = f"pack {k}/{raw.get('category', '')}"
            out[f"{node_id}_{k}"] = copy
    return out


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]
