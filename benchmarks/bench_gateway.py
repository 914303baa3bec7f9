"""What the `comfydesk serve` gateway costs: one run through it against the same run straight to ComfyUI, and
`GET /executions/{id}` latency under load with 500 WebSocket subscribers watching.

The gateway (with its demo engine, on 127.0.0.1) runs in a child Python process, so the load generator here
does not share its GIL; everything is on 127.0.0.1.
- run: the spec's "Blog Post Image" workflow, one run at a time, `--runs` times each way, interleaved:
  *gateway*: POST /workflows/{id}/execute -> the per-execution WebSocket says `completed` -> GET the image;
  *direct* (the baseline): the very graph the gateway submits, POST /prompt to the demo engine -> its
  WebSocket says the prompt finished -> GET /history/{prompt_id} -> GET /view. Each run has its own prompt
  text, so ComfyUI's cache never answers. Median per way and the ratio gateway / direct.
- load: `--rates` GET /executions/{id} per second offered for `--seconds` (open loop: request i is due at
  i / rate s, whether or not earlier ones answered; `--connections` senders, each with its own keep-alive
  connection sending pre-built request bytes, so the generator's own CPU does not show as latency) on an
  execution running all the while, first with no WebSocket open (the baseline), then with `--subscribers`
  sockets on /executions/{id}/events receiving its progress and previews (the demo engine takes
  `--load-step-delay` s per step; each socket gets a progress and a preview message per step). Latency
  runs from the time a request was due to its answer: median, p95, p99, max, and the throughput achieved.
  The load generator shares the machine with the gateway.

Usage: .venv/bin/python benchmarks/bench_gateway.py [--runs N] [--rates R,R] [--seconds S] [--subscribers N]
Prints figures (not pass/fail) and writes benchmarks/results/gateway.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import write_results
from websockets.asyncio.client import ClientConnection, connect

API = "/api/v1/comfyui"
BLOG_POST_IMAGE = {
    "name": "Blog Post Image",
    "description": "Generate blog post header image",
    "nodes": [
        {
            "id": "text_to_image",
            "type": "text_to_image",
            "inputs": {"prompt": "{prompt}", "negative_prompt": "{negative_prompt}"},
        }
    ],
}
STEPS = 8  # text_to_image's steps on the demo engine

# The child: a gateway in front of its demo engine, until its stdin closes.
_GATEWAY_SCRIPT = """
import json, sys
from pathlib import Path
from comfydesk.gateway.server import settle_heap
from comfydesk.gateway.testing import start_gateway
gw = start_gateway(data_dir=Path(sys.argv[1]), demo_step_delay=float(sys.argv[2]))
settle_heap()  # as `comfydesk serve` does once it serves
print(json.dumps({"url": gw.url, "token": gw.admin_token, "comfyui": gw.config.comfyui_urls[0]}), flush=True)
sys.stdin.read()
gw.stop()
"""


@dataclass(frozen=True)
class Served:
    url: str
    token: str
    comfyui: str
    pid: int  # the gateway process (with its demo engine)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def ws(self, path: str) -> str:
        return self.url.replace("http", "ws", 1) + path


@contextlib.contextmanager
def gateway_process(step_delay: float) -> Iterator[Served]:
    """`start_gateway()` in a child interpreter; stopped (stdin closed) on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as data:
        child = subprocess.Popen(
            [sys.executable, "-c", _GATEWAY_SCRIPT, data, str(step_delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            if not line:
                raise RuntimeError("the gateway process did not start")
            yield Served(**json.loads(line), pid=child.pid)
        finally:
            assert child.stdin is not None
            child.stdin.close()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of process `pid` (Linux /proc)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


async def create_workflow(client: httpx.AsyncClient) -> int:
    answer = await client.post(f"{API}/workflows", json=BLOG_POST_IMAGE)
    answer.raise_for_status()
    workflow_id: int = answer.json()["data"]["workflow"]["id"]
    return workflow_id


async def execute(client: httpx.AsyncClient, workflow_id: int, prompt: str) -> dict[str, Any]:
    inputs = {"prompt": prompt, "negative_prompt": "ugly, blurry"}
    answer = await client.post(f"{API}/workflows/{workflow_id}/execute", json={"inputs": inputs})
    answer.raise_for_status()
    execution: dict[str, Any] = answer.json()["data"]["execution"]
    return execution


async def terminal_message(ws: ClientConnection, timeout: float = 60) -> dict[str, Any]:
    """The per-execution socket's last message (`completed`, `failed` or `cancelled`)."""
    async with asyncio.timeout(timeout):
        async for raw in ws:
            message: dict[str, Any] = json.loads(raw)
            if message["type"] in ("completed", "failed", "cancelled"):
                return message
    raise RuntimeError("the events socket closed before the run ended")


# -- one run each way -------------------------------------------------------------------------------------


async def run_via_gateway(served: Served, client: httpx.AsyncClient, workflow_id: int, prompt: str) -> int:
    """execute -> `completed` on the WebSocket -> the image's bytes; returns their size."""
    execution = await execute(client, workflow_id, prompt)
    path = f"{API}/executions/{execution['id']}/events?token={served.token}"
    async with connect(served.ws(path), max_size=None) as ws:
        done = await terminal_message(ws)
    if done["type"] != "completed":
        raise RuntimeError(f"the run ended {done['type']}: {done['execution']}")
    image = await client.get(done["execution"]["outputs"]["images"][0]["url"])
    image.raise_for_status()
    return len(image.content)


async def run_direct(served: Served, client: httpx.AsyncClient, prompt: str) -> int:
    """The graph the gateway submits, straight to the demo engine: POST /prompt -> finished on its
    WebSocket -> /history -> /view; returns the image's size."""
    client_id = uuid.uuid4().hex
    graph = {
        "text_to_image": {
            "class_type": "text_to_image",
            "inputs": {"prompt": prompt, "negative_prompt": "ugly, blurry"},
        }
    }
    ws_url = served.comfyui.replace("http", "ws", 1) + f"/ws?clientId={client_id}"
    async with connect(ws_url, max_size=None) as ws:
        answer = await client.post(f"{served.comfyui}/prompt", json={"prompt": graph, "client_id": client_id})
        answer.raise_for_status()
        prompt_id = answer.json()["prompt_id"]
        async with asyncio.timeout(60):
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue  # a binary preview frame
                message = json.loads(raw)
                data = message.get("data", {})
                if data.get("prompt_id") != prompt_id:
                    continue
                if message["type"] == "execution_error":
                    raise RuntimeError(f"the prompt failed: {data}")
                if message["type"] == "executing" and data.get("node") is None:
                    break  # the end of the prompt: its history is written (`execution_success` comes earlier)
    history = (await client.get(f"{served.comfyui}/history/{prompt_id}")).json()[prompt_id]
    image = next(i for out in history["outputs"].values() for i in out.get("images", []))
    params = {"filename": image["filename"], "subfolder": image["subfolder"], "type": image["type"]}
    view = await client.get(f"{served.comfyui}/view", params=params)
    view.raise_for_status()
    return len(view.content)


async def bench_runs(served: Served, runs: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=served.url, headers=served.auth, timeout=60) as client:
        workflow_id = await create_workflow(client)
        await run_via_gateway(served, client, workflow_id, "warm-up")  # first connections, imports
        await run_direct(served, client, "warm-up direct")
        gateway_s: list[float] = []
        direct_s: list[float] = []
        sizes: set[int] = set()
        for i in range(runs):  # interleaved, so drift on the machine hits both ways alike
            t0 = time.perf_counter()
            sizes.add(await run_via_gateway(served, client, workflow_id, f"A beautiful landscape #{i}"))
            gateway_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sizes.add(await run_direct(served, client, f"A beautiful landscape, direct #{i}"))
            direct_s.append(time.perf_counter() - t0)
    gateway_ms, direct_ms = statistics.median(gateway_s) * 1000, statistics.median(direct_s) * 1000
    return {
        "runs": runs,
        "gateway_median_ms": round(gateway_ms, 1),
        "direct_median_ms": round(direct_ms, 1),
        "overhead_ms": round(gateway_ms - direct_ms, 1),
        "ratio": round(gateway_ms / direct_ms, 2),
        "image_bytes": sorted(sizes),
    }


# -- GET /executions/{id} under load -----------------------------------------------------------------------


@dataclass
class Subscribers:
    sockets: list[ClientConnection]
    received: list[int]
    readers: list[asyncio.Task[None]]

    @property
    def messages(self) -> int:
        return sum(self.received)


@contextlib.asynccontextmanager
async def subscribers(served: Served, execution_id: int, count: int) -> AsyncIterator[Subscribers]:
    """`count` sockets on the execution's events, each past its first (`status`) message; closed on exit."""
    url = served.ws(f"{API}/executions/{execution_id}/events?token={served.token}")
    subs = Subscribers([], [0] * count, [])
    gate = asyncio.Semaphore(50)  # handshakes in flight at once

    async def open_one(i: int) -> None:
        async with gate:
            ws = await connect(url, max_size=None, open_timeout=30)
        subs.sockets.append(ws)
        first = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert first["type"] == "status", first
        subs.received[i] += 1

        async def read() -> None:
            with contextlib.suppress(Exception):
                async for _ in ws:
                    subs.received[i] += 1

        subs.readers.append(asyncio.create_task(read()))

    try:
        await asyncio.gather(*(open_one(i) for i in range(count)))
        yield subs
    finally:
        for task in subs.readers:
            task.cancel()
        await asyncio.gather(*subs.readers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in subs.sockets), return_exceptions=True)


class KeepAlive:
    """One keep-alive HTTP/1.1 connection that sends the same GET again and again: the request's bytes are
    built once and the answer is read by its Content-Length. The load generator shares the machine with the
    gateway; httpx costs about 1.2 ms of CPU a request, so at 500/s it kept a core 70-90% busy and its own
    queueing showed up as the gateway's latency. This costs a small fraction of that."""

    def __init__(self, served: Served, path: str) -> None:
        host, port = served.url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {served.token}\r\n\r\n"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self) -> int:
        """Send the GET, read the whole answer; its status code."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(self.request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            sizes = [ln for ln in lines[1:] if ln.lower().startswith(b"content-length:")]
            length = int(sizes[0].split(b":", 1)[1])
            await self.reader.readexactly(length)
            return status
        except Exception:
            await self.close()
            raise

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def offer_load(
    served: Served, path: str, rate: float, seconds: float, workers: int
) -> tuple[list[float], int, float]:
    """`rate * seconds` requests on a fixed schedule, request i due at `i / rate` s: latencies (s) from the
    time each was due, errors, wall time. `workers` senders (one keep-alive connection each) take the
    requests in order; one that falls behind starts the next due request at once, so a slow server shows as
    latency (the wait counts) rather than as fewer requests offered."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    taken = 0
    connections = [KeepAlive(served, path) for _ in range(workers)]
    for conn in connections:  # opened (and the route warmed) before the clock starts
        await conn.get()
    start = time.perf_counter()

    async def sender(conn: KeepAlive) -> None:
        nonlocal errors, taken
        while taken < total:
            due = start + taken / rate
            taken += 1
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                status = await conn.get()
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
                errors += 1
                continue
            if status == 200:
                latencies.append(time.perf_counter() - due)
            else:
                errors += 1

    try:
        await asyncio.gather(*(sender(conn) for conn in connections))
        return latencies, errors, time.perf_counter() - start
    finally:
        for conn in connections:
            await conn.close()


async def load_case(
    served: Served,
    client: httpx.AsyncClient,
    workflow_id: int,
    args: argparse.Namespace,
    rate: float,
    count: int,
) -> dict[str, Any]:
    """One case: a fresh run (slow enough to outlast the case), `count` sockets on it, `rate` GETs of it."""
    execution = await execute(client, workflow_id, f"load {rate} {count} {uuid.uuid4().hex}")
    path = f"{API}/executions/{execution['id']}"
    async with subscribers(served, execution["id"], count) as subs:
        before = subs.messages
        cpu_before = cpu_seconds(served.pid), cpu_seconds()
        latencies, errors, wall = await offer_load(served, path, rate, args.seconds, args.connections)
        gateway_cpu, client_cpu = cpu_seconds(served.pid) - cpu_before[0], cpu_seconds() - cpu_before[1]
        delivered = subs.messages - before
        state = (await client.get(path)).json()["data"]["execution"]
    await client.post(f"{API}/executions/{execution['id']}/cancel")
    ms = [x * 1000 for x in latencies]
    return {
        "subscribers": count,
        "offered_rps": rate,
        "requests": len(ms) + errors,
        "errors": errors,
        "seconds": round(wall, 2),
        "achieved_rps": round(len(ms) / wall, 1),
        "median_ms": round(statistics.median(ms), 2) if ms else None,
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else None,
        "ws_messages_delivered": delivered,
        "gateway_cpu_percent": round(gateway_cpu / wall * 100),
        "load_generator_cpu_percent": round(client_cpu / wall * 100),
        "run_status_after": state["status"],
        "run_progress_after": state["progress"],
    }


async def bench_load(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each case on a fresh gateway process, so nothing one case left behind (sockets closing, queued
    messages) weighs on the next."""
    results: dict[str, dict[str, Any]] = {}
    for rate in args.rates:
        for count in (0, args.subscribers):  # the baseline first: the same load, no socket open
            with gateway_process(args.load_step_delay) as served:
                async with httpx.AsyncClient(base_url=served.url, headers=served.auth, timeout=120) as client:
                    workflow_id = await create_workflow(client)
                    row = await load_case(served, client, workflow_id, args, rate, count)
            results[f"{rate:g}/s, {count} subscribers"] = row
            name = f"{count} WebSocket subscribers on the run" if count else "baseline, no WebSocket open"
            print(line(name, row), flush=True)
    return results


def line(name: str, row: dict[str, Any]) -> str:
    return (
        f"{name}: {row['requests']} GET /executions/{{id}} offered at {row['offered_rps']:.0f}/s -> "
        f"{row['achieved_rps']:.0f}/s, {row['errors']} errors | latency median {row['median_ms']} ms, "
        f"p95 {row['p95_ms']} ms, p99 {row['p99_ms']} ms, max {row['max_ms']} ms | "
        f"{row['ws_messages_delivered']:,} WebSocket messages delivered meanwhile | CPU: gateway "
        f"{row['gateway_cpu_percent']}%, load generator {row['load_generator_cpu_percent']}% "
        f"(run {row['run_status_after']} at {row['run_progress_after']}%)"
    )


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if not args.no_runs:
        with gateway_process(args.run_step_delay) as served:
            runs = await bench_runs(served, args.runs)
        results["runs"] = {**runs, "step_delay_s": args.run_step_delay}
        print(
            f"Blog Post Image, one run at a time (demo engine {args.run_step_delay * 1000:g} ms/step "
            f"x {STEPS}): "
            f"gateway (execute -> completed -> image) {runs['gateway_median_ms']} ms | direct to ComfyUI "
            f"(/prompt -> history -> /view) {runs['direct_median_ms']} ms | overhead "
            f"{runs['overhead_ms']} ms ({runs['ratio']}x)  (medians of {args.runs})"
        )
    if not args.no_load:
        results["load"] = await bench_load(args)
    results["args"] = vars(args)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="runs each way (after one warm-up each)")
    ap.add_argument(
        "--run-step-delay", type=float, default=0.01, help="demo engine seconds per step for the runs"
    )
    ap.add_argument(
        "--rates",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[500.0, 100.0],
        help="GET /executions/{id} offered per second, one pair of cases each (default: 500,100)",
    )
    ap.add_argument("--seconds", type=float, default=5, help="how long each load case offers requests")
    ap.add_argument(
        "--connections",
        type=int,
        default=10,
        help="senders, each with its own keep-alive HTTP connection",
    )
    ap.add_argument("--subscribers", type=int, default=500, help="WebSocket subscribers in the load case")
    ap.add_argument(
        "--load-step-delay",
        type=float,
        default=3.0,
        help="demo engine seconds per step for the load cases: the run (8 steps) must outlast a case",
    )
    ap.add_argument("--no-runs", action="store_true", help="skip the run comparison")
    ap.add_argument("--no-load", action="store_true", help="skip the load cases")
    args = ap.parse_args()
    results = asyncio.run(amain(args))
    write_results("gateway", results)


if __name__ == "__main__":
    main()
