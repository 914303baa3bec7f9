"""The packaged build: its size on disk, its start to window shown, and its self-test time.

Usage: .venv/bin/python benchmarks/bench_package.py [--bundle dist/comfydesk] [--repeat N] [--untrimmed DIR]
Needs a bundle (`bash packaging/build_linux.sh`). Sizes: the bundle folder (and its largest parts), the
tarball and the .deb beside it, and an untrimmed build to compare with when given (`COMFYDESK_NO_TRIM=1`).
Start to window shown: from spawning `comfydesk --self-test` (offscreen) to the line saying the window is
shown, which includes the bootloader unpacking nothing (one-folder), Python start, imports and Qt start; the
first run after a build is reported apart from the median of the next ones (warm page cache). The same is
measured for `python -m comfydesk` from the source checkout. Writes benchmarks/results/package.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, write_results

SHOWN = "window shown"


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def largest_parts(bundle: Path, n: int = 8) -> list[tuple[str, int]]:
    internal = bundle / "_internal"
    parts = [(p.name, tree_size(p) if p.is_dir() else p.stat().st_size) for p in internal.iterdir()]
    return sorted(parts, key=lambda x: -x[1])[:n]


def self_test_run(command: list[str]) -> dict[str, float]:
    """One `--self-test`: seconds to the window shown, to the end, and the self-test's own total."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    with tempfile.TemporaryDirectory() as home:
        env["HOME"] = home
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [*command, "--self-test"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        assert proc.stdout is not None
        shown = float("nan")
        reported = float("nan")
        for line in proc.stdout:
            if SHOWN in line and shown != shown:
                shown = time.perf_counter() - t0
            if line.startswith("self-test passed in "):
                reported = float(line.split()[3])
        code = proc.wait()
        total = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"bench_package: {' '.join(command)} --self-test exited {code}")
    return {"to_window_shown_s": shown, "total_s": total, "self_test_reported_s": reported}


def measure(command: list[str], repeat: int) -> dict[str, Any]:
    first = self_test_run(command)
    rest = [self_test_run(command) for _ in range(repeat)]
    return {
        "first": first,
        "median": {k: statistics.median(r[k] for r in rest) for k in first} if rest else {},
        "runs": len(rest) + 1,
    }


def mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / "comfydesk")
    parser.add_argument("--untrimmed", type=Path, default=ROOT / "build" / "untrimmed" / "dist" / "comfydesk")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    binary = args.bundle / "comfydesk"
    if not binary.is_file():
        raise SystemExit(f"bench_package: no bundle at {args.bundle}; run bash packaging/build_linux.sh")

    sizes: dict[str, Any] = {"bundle": tree_size(args.bundle)}
    for pattern, key in (("comfydesk-*.tar.gz", "tarball"), ("comfydesk_*.deb", "deb")):
        found = sorted(args.bundle.parent.glob(pattern), key=lambda p: p.stat().st_mtime)
        if found:
            sizes[key] = found[-1].stat().st_size
    if (args.untrimmed / "comfydesk").is_file():
        sizes["untrimmed_bundle"] = tree_size(args.untrimmed)
    sizes["largest_parts"] = largest_parts(args.bundle)

    print(f"bundle {mb(sizes['bundle'])}", end="")
    if "untrimmed_bundle" in sizes:
        saved = sizes["untrimmed_bundle"] - sizes["bundle"]
        print(f" (untrimmed {mb(sizes['untrimmed_bundle'])}, trimming saved {mb(saved)})", end="")
    print()
    for key in ("tarball", "deb"):
        if key in sizes:
            print(f"{key} {mb(sizes[key])}")
    print("largest parts: " + ", ".join(f"{name} {mb(size)}" for name, size in sizes["largest_parts"]))

    results: dict[str, Any] = {"sizes": sizes}
    for label, command in (
        ("bundle", [str(binary)]),
        ("source", [sys.executable, "-m", "comfydesk"]),
    ):
        timing = measure(command, args.repeat)
        results[label] = timing
        first, med = timing["first"], timing["median"]
        print(
            f"{label}: start to window shown {first['to_window_shown_s']:.2f} s first run, "
            f"{med.get('to_window_shown_s', float('nan')):.2f} s median; self-test "
            f"{first['total_s']:.2f} s first run, {med.get('total_s', float('nan')):.2f} s median (wall)"
        )
    print(f"wrote {write_results('package', results)}")


if __name__ == "__main__":
    main()
