"""Throughput of the ComfyUI WebSocket message -> event mapping, against raw `json.loads` of the same frames.

Two kinds of input, each rebuilt as the server sends it (`json.dumps` defaults):
- the captured transcripts in fixtures/comfyui/transcripts/, every one replayed `--replays` times through a
  fresh `ProtocolMapper(track_all=True)` (so every run's events are mapped, the most work the mapper can do);
- a synthetic flood of `--flood` messages: all `progress`, all `progress_state` (ComfyUI sends one per step,
  listing every node), and the two interleaved as a real sampler sends them.
The baseline is `json.loads` of the very same text frames in the same run. Binary preview frames (present in
a few transcripts) are mapped too and reported on their own line, since `json.loads` has nothing to do there.

Usage: .venv/bin/python benchmarks/bench_protocol.py [--repeat N] [--replays N] [--flood N] [--fixtures DIR]
Prints messages/s (from the median time of `--repeat` passes) and writes benchmarks/results/protocol.json.
"""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path

from _common import ROOT, median_seconds, write_results

from comfydesk.backends.comfyui_protocol import ProtocolMapper

PROMPT_ID = "fe931139-9f7a-49df-b478-15cd111d785a"


def transcript_frames(path: Path) -> tuple[list[str], list[bytes]]:
    """The text and binary frames of one captured transcript, rebuilt byte for byte."""
    texts: list[str] = []
    binaries: list[bytes] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["kind"] == "text":
            texts.append(json.dumps(rec["data"]))
        elif rec["kind"] == "binary":
            image = (path.parent / rec["file"]).read_bytes()
            if rec["event_type"] == 1:
                binaries.append(struct.pack(">II", 1, rec["image_format"]) + image)
            else:
                meta = json.dumps(rec["metadata"]).encode()
                binaries.append(struct.pack(">II", 4, len(meta)) + meta + image)
    return texts, binaries


def progress_message(step: int, steps: int) -> str:
    data = {"value": step, "max": steps, "prompt_id": PROMPT_ID, "node": "3"}
    return json.dumps({"type": "progress", "data": data})


def progress_state_message(step: int, steps: int, nodes: int = 7) -> str:
    """One `progress_state` as ComfyUI 0.8 sends it: every node of the prompt with its state."""
    states = {}
    for i in range(1, nodes + 1):
        nid = str(i)
        if i < 3:
            value, maximum, state = 1.0, 1.0, "finished"
        elif i == 3:
            value, maximum, state = float(step), float(steps), "running"
        else:
            value, maximum, state = 0.0, 1.0, "pending"
        states[nid] = {
            "value": value,
            "max": maximum,
            "state": state,
            "node_id": nid,
            "prompt_id": PROMPT_ID,
            "display_node_id": nid,
            "parent_node_id": None,
            "real_node_id": nid,
        }
    return json.dumps({"type": "progress_state", "data": {"prompt_id": PROMPT_ID, "nodes": states}})


def flood(kind: str, count: int, steps: int = 1000) -> list[str]:
    frames: list[str] = []
    i = 0
    while len(frames) < count:
        step = i % steps + 1
        if kind in ("progress_state", "mixed"):
            frames.append(progress_state_message(step, steps))
        if kind in ("progress", "mixed") and len(frames) < count:
            frames.append(progress_message(step, steps))
        i += 1
    return frames


def map_texts(texts: list[str], replays: int) -> int:
    events = 0
    for _ in range(replays):
        mapper = ProtocolMapper(track_all=True)
        for frame in texts:
            events += len(mapper.feed_text(frame))
    return events


def loads_texts(texts: list[str], replays: int) -> None:
    for _ in range(replays):
        for frame in texts:
            json.loads(frame)


def map_all(texts: list[str], binaries: list[bytes], replays: int) -> None:
    for _ in range(replays):
        mapper = ProtocolMapper(track_all=True)
        for frame in texts:
            mapper.feed_text(frame)
        for blob in binaries:
            mapper.feed_binary(blob)


def measure(name: str, texts: list[str], replays: int, repeat: int) -> dict[str, float | int]:
    n = len(texts) * replays
    loads_s = median_seconds(lambda: loads_texts(texts, replays), repeat)
    map_s = median_seconds(lambda: map_texts(texts, replays), repeat)
    events = map_texts(texts, 1)
    row = {
        "messages": n,
        "events_per_pass": events,
        "json_loads_msgs_per_s": round(n / loads_s),
        "mapper_msgs_per_s": round(n / map_s),
        "mapper_time_vs_loads": round(map_s / loads_s, 2),
    }
    print(
        f"{name}: {n:,} text messages -> {events * replays:,} events | json.loads {n / loads_s:,.0f} msg/s | "
        f"mapper {n / map_s:,.0f} msg/s ({map_s / loads_s:.2f}x the time of loads)  (medians of {repeat})"
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--replays", type=int, default=300, help="replays of each transcript per timed pass")
    ap.add_argument("--flood", type=int, default=100_000, help="messages in each synthetic flood")
    ap.add_argument("--fixtures", type=Path, default=ROOT.parent / "shared" / "fixtures" / "comfyui")
    args = ap.parse_args()
    results: dict[str, dict[str, float | int]] = {}

    all_texts: list[str] = []
    all_binaries: list[bytes] = []
    for path in sorted((args.fixtures / "transcripts").glob("*.jsonl")):
        texts, binaries = transcript_frames(path)
        all_texts += texts
        all_binaries += binaries
    results["transcripts"] = measure(
        f"transcripts ({len(all_texts)} text frames x {args.replays} replays)",
        all_texts,
        args.replays,
        args.repeat,
    )
    if all_binaries:
        replays = max(1, args.replays // 10)
        n = len(all_binaries) * replays
        bin_s = median_seconds(lambda: map_all([], all_binaries, replays), args.repeat)
        results["transcripts_binary"] = {"frames": n, "mapper_frames_per_s": round(n / bin_s)}
        print(
            f"transcripts, binary preview frames ({len(all_binaries)} x {replays} replays): "
            f"mapper {n / bin_s:,.0f} frames/s  (no json.loads baseline; medians of {args.repeat})"
        )

    for kind in ("progress", "progress_state", "mixed"):
        texts = flood(kind, args.flood)
        results[f"flood_{kind}"] = measure(f"flood {kind}", texts, 1, args.repeat)

    doc = {"repeat": args.repeat, "replays": args.replays, "flood": args.flood, "cases": results}
    write_results("protocol", doc)


if __name__ == "__main__":
    main()
