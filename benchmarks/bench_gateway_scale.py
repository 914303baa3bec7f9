"""The gateway scaled out: executions per second sustained and `GET /executions/{id}` p99 with 1, 2 and 4
`comfydesk serve` instances on one PostgreSQL, and with 1 instance on SQLite (the default database).

Everything runs on this machine, on 127.0.0.1: a throwaway PostgreSQL cluster (tests/postgres.py: initdb
in a temp dir, fsync off), two fake ComfyUI machines with no step delay in one child process, the gateway
instances as real `comfydesk serve` processes (each with `--lease 30`), and the load generator here.
- executions/s: `--runs` executions of a small two-node workflow (DemoPattern 64x64, `--steps` steps ->
  SaveImage), submitted round-robin across the instances by `--concurrency` senders; the clock runs from
  the first submission until every run is `completed` (seen through the list endpoint). Each run's image
  is copied from ComfyUI and stored by the gateway, as in production.
- GET p99: meanwhile, `--readers` readers each GET /executions/{id} of a random submitted run, round-robin
  across the instances, one request after another (closed loop); latency percentiles of all of them.
The load generator shares the cores with everything else, so the figures are for comparison between the
configurations on one machine, not a capacity promise.

Every configuration runs `--repeat` times (rounds interleaved); the summary is the median of the rounds.

Usage: .venv/bin/python benchmarks/bench_gateway_scale.py [--runs N] [--concurrency N] [--readers N]
       [--repeat N] [--configs sqlite:1,postgresql:1,postgresql:2,postgresql:4]
Prints figures and writes benchmarks/results/gateway_scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import ROOT, write_results

sys.path.insert(0, str(ROOT))
from tests.postgres import PostgresCluster, start_postgres

API = "/api/v1/comfyui"

_FAKES_SCRIPT = """
import json, sys
from pathlib import Path
from comfydesk.testing import start_fake_comfyui
from comfydesk.testing.demo import demo_config
fakes = []
for i in range(int(sys.argv[2])):
    config = demo_config(Path(sys.argv[1]) / f"m{i}")
    config.step_delay = 0.0
    fakes.append(start_fake_comfyui(config))
print(json.dumps([f.url for f in fakes]), flush=True)
sys.stdin.read()
print(json.dumps([f.state.prompts_posted for f in fakes]), flush=True)
for f in fakes:
    f.stop()
"""


def workflow(steps: int) -> dict[str, Any]:
    return {
        "name": "bench",
        "description": "",
        "nodes": [
            {
                "id": "1",
                "type": "DemoPattern",
                "inputs": {
                    "pattern": "rings",
                    "seed": "{seed}",
                    "width": 64,
                    "height": 64,
                    "steps": steps,
                    "color_a": 0,
                    "color_b": 16777215,
                },
            },
            {"id": "2", "type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench"}},
        ],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes and all their descendants alive now (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, stack, seen = 0.0, list(pids), set()
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        total += (int(stats[pid][11]) + int(stats[pid][12])) / tick
        stack.extend(children.get(pid, []))
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Instances:
    urls: list[str]
    token: str
    procs: list[subprocess.Popen[bytes]]

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _cli(*args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "comfydesk", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def start_instances(count: int, database: str | None, machines: list[str], work: Path) -> Instances:
    where = ["--database", database] if database else ["--data-dir", str(work / "gw0")]
    token = _cli("serve", "token", "create", "bench", "--admin", *where)
    procs, urls = [], []
    for i in range(count):
        port = free_port()
        command = [sys.executable, "-m", "comfydesk", "serve", "--port", str(port), *where]
        command += [arg for url in machines for arg in ("--comfyui", url)]
        command += ["--image-dir", str(work / "images"), "--rate-limit", "100000000/min"]
        if database:
            command += ["--data-dir", str(work / f"gw{i}")]
        log = open(work / f"gw{i}.log", "wb")  # noqa: SIM115 - the child holds it
        env = dict(os.environ, PYTHONPATH=str(ROOT), LANG="C.UTF-8")
        procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        log.close()
        urls.append(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    for url, proc in zip(urls, procs, strict=True):
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"an instance did not start; see {work}/gw*.log")
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    return Instances(urls, token, procs)


async def measure(
    instances: Instances, runs: int, concurrency: int, readers: int, steps: int, others: dict[str, list[int]]
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {instances.token}"}
    # Idle connections are dropped after 2 s, before uvicorn closes them (5 s): reusing one just as the
    # server closes it would fail a request for reasons that have nothing to do with the gateway.
    limits = httpx.Limits(max_connections=concurrency + readers + 4, keepalive_expiry=2.0)
    clients = [
        httpx.AsyncClient(base_url=u, headers=headers, timeout=60, limits=limits) for u in instances.urls
    ]
    try:
        resp = await clients[0].post(f"{API}/workflows", json=workflow(steps))
        resp.raise_for_status()
        workflow_id = resp.json()["data"]["workflow"]["id"]
        # Warm-up: one run through every instance (connections, caches, first imports).
        for k, c in enumerate(clients):
            body = {"inputs": {"seed": runs + k}}
            warm = await c.post(f"{API}/workflows/{workflow_id}/execute", json=body)
            warm.raise_for_status()
        ids: list[int] = []
        latencies: list[float] = []
        next_run = iter(range(runs))
        done_submitting = asyncio.Event()

        async def sender() -> None:
            for n in next_run:
                c = clients[n % len(clients)]
                r = await c.post(f"{API}/workflows/{workflow_id}/execute", json={"inputs": {"seed": n}})
                r.raise_for_status()
                ids.append(int(r.json()["data"]["execution"]["id"]))

        async def reader(k: int) -> None:
            i = k
            while not done_submitting.is_set() or not finished.is_set():
                if not ids:
                    await asyncio.sleep(0.005)
                    continue
                c = clients[i % len(clients)]
                i += 1
                t0 = time.perf_counter()
                r = await c.get(f"{API}/executions/{random.choice(ids)}")
                latencies.append(time.perf_counter() - t0)
                r.raise_for_status()

        finished = asyncio.Event()

        async def watcher() -> None:
            while True:
                await asyncio.sleep(0.1)
                if not done_submitting.is_set():
                    continue
                r = await clients[0].get(f"{API}/executions", params={"status": "completed", "limit": 1})
                if r.json()["data"]["total"] >= runs + len(clients):
                    finished.set()
                    return
                bad = 0
                for status in ("failed", "cancelled"):
                    got = await clients[0].get(f"{API}/executions", params={"status": status, "limit": 1})
                    bad += got.json()["data"]["total"]
                if bad:
                    raise SystemExit(f"{bad} run(s) did not complete")

        groups = {"gateways": [p.pid for p in instances.procs], **others}
        cpu_before = {name: cpu_seconds(pids) for name, pids in groups.items()}
        own_before = time.process_time()
        started = time.perf_counter()
        readers_tasks = [asyncio.create_task(reader(k)) for k in range(readers)]
        watch = asyncio.create_task(watcher())
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        submitted = time.perf_counter() - started
        done_submitting.set()
        await asyncio.wait_for(watch, 600)
        elapsed = time.perf_counter() - started
        cpu = {name: cpu_seconds(pids) - cpu_before[name] for name, pids in groups.items()}
        cpu["load generator"] = time.process_time() - own_before
        await asyncio.gather(*readers_tasks)
        return {
            # CPU seconds used per execution, by part (a 2-core machine has 2 CPU seconds a second).
            "cpu_ms_per_execution": {k: round(1000 * v / runs, 1) for k, v in cpu.items()},
            "runs": runs,
            "seconds": round(elapsed, 2),
            "executions_per_second": round(runs / elapsed, 1),
            "submit_seconds": round(submitted, 2),
            "get_requests": len(latencies),
            "get_ms": {
                "median": round(statistics.median(latencies) * 1000, 1),
                "p95": round(percentile(latencies, 0.95) * 1000, 1),
                "p99": round(percentile(latencies, 0.99) * 1000, 1),
                "max": round(max(latencies) * 1000, 1),
            },
        }
    finally:
        for c in clients:
            await c.aclose()


def run_config(
    kind: str,
    count: int,
    args: argparse.Namespace,
    cluster: PostgresCluster | None,
    machines: list[str],
    others: dict[str, list[int]],
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        database = cluster.create_database() if kind == "postgresql" and cluster else None
        instances = start_instances(count, database, machines, Path(tmp))
        try:
            figures = asyncio.run(
                measure(instances, args.runs, args.concurrency, args.readers, args.steps, others)
            )
        finally:
            instances.stop()
    return {"database": kind, "instances": count, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--machines", type=int, default=2)
    parser.add_argument("--configs", default="sqlite:1,postgresql:1,postgresql:2,postgresql:4")
    parser.add_argument("--repeat", type=int, default=3, help="rounds over all configurations")
    args = parser.parse_args()
    configs = [(k, int(n)) for k, n in (c.split(":") for c in args.configs.split(","))]
    cluster = start_postgres() if any(k == "postgresql" for k, _ in configs) else None
    fakes_dir = tempfile.mkdtemp(prefix="bench-fakes-")
    fakes = subprocess.Popen(
        [sys.executable, "-c", _FAKES_SCRIPT, fakes_dir, str(args.machines)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fakes.stdout is not None and fakes.stdin is not None
    machines = json.loads(fakes.stdout.readline())
    others = {"comfyui (fake)": [fakes.pid]}
    if cluster is not None:
        others["postgresql"] = [cluster._proc.pid]
    results = []
    try:
        for _round in range(args.repeat):  # rounds interleave the configurations: drift hits all alike
            for kind, count in configs:
                result = run_config(kind, count, args, cluster, machines, others)
                results.append(result)
                g = result["get_ms"]
                print(
                    f"{kind}:{count}  {result['executions_per_second']:6.1f} executions/s "
                    f"({result['runs']} in {result['seconds']} s); GET /executions/{{id}} "
                    f"median {g['median']} ms, p95 {g['p95']} ms, p99 {g['p99']} ms "
                    f"({result['get_requests']} GETs); CPU ms per execution "
                    + ", ".join(f"{k} {v}" for k, v in result["cpu_ms_per_execution"].items()),
                    flush=True,
                )
    finally:
        fakes.stdin.close()
        fakes.wait(30)
        if cluster is not None:
            cluster.stop()
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }
    cpuinfo = Path("/proc/cpuinfo")  # the model name, where Linux says it
    if cpuinfo.is_file():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        machine["cpu"] = names[0] if names else machine["cpu"]
    summary = []
    for kind, count in configs:
        rounds = [r for r in results if (r["database"], r["instances"]) == (kind, count)]
        summary.append(
            {
                "database": kind,
                "instances": count,
                "executions_per_second": statistics.median(r["executions_per_second"] for r in rounds),
                "get_p99_ms": statistics.median(r["get_ms"]["p99"] for r in rounds),
                "get_median_ms": statistics.median(r["get_ms"]["median"] for r in rounds),
            }
        )
        s = summary[-1]
        print(
            f"median of {len(rounds)}: {kind}:{count}  {s['executions_per_second']} executions/s, "
            f"GET p99 {s['get_p99_ms']} ms (median {s['get_median_ms']} ms)"
        )
    doc = {"machine": machine, "settings": vars(args), "summary": summary, "results": results}
    print("wrote", write_results("gateway_scale", doc))


if __name__ == "__main__":
    main()
