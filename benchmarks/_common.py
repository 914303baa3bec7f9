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
