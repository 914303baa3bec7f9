"""`comfydesk check`: is the server there, what is it, what does it have.

For a comfydesk gateway the report names the kind, the node types of its ComfyUI machines, its workflows,
and the runs of the token that are queued or running (a gateway shows nobody else's)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from comfydesk.backends.base import DeviceInfo, QueueItem, ServerInfo
from comfydesk.commands._common import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    add_server_options,
    describe,
    error,
    open_backend,
    redact,
    run_coroutine,
    server_url,
    token_of,
)
from comfydesk.core.errors import ComfyDeskError

if TYPE_CHECKING:
    from comfydesk.backends.v1 import V1Backend

__all__ = ["format_report", "format_size", "register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="check that a server answers and show what it is",
        description="Connect to a ComfyUI server or a comfydesk gateway and print its kind and version, "
        "devices, node count and queue (for a gateway: its workflows and the token's unfinished runs). "
        "Exit 0 when it answers, 2 when it cannot be reached or refuses the token.",
    )
    add_server_options(parser)
    parser.set_defaults(handler=handle)


@dataclass(frozen=True, slots=True)
class CheckResult:
    info: ServerInfo
    node_count: int
    queue: tuple[QueueItem, ...]
    workflows: int | None = None


def format_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop always returns


def _device(d: DeviceInfo) -> str:
    vram = ""
    if d.vram_total is not None:
        vram = f", VRAM {format_size(d.vram_total)}"
        if d.vram_free is not None:
            vram += f" ({format_size(d.vram_free)} free)"
    return f"{d.name} ({d.type}{vram})"


def format_report(result: CheckResult, url: str) -> list[str]:
    info = result.info
    kind = {"comfyui": "ComfyUI", "comfydesk-gateway": "comfydesk gateway"}.get(info.kind, info.kind)
    running = sum(1 for q in result.queue if q.running)
    pending = len(result.queue) - running
    lines = [
        f"server:  {url}",
        f"kind:    {kind} {info.version}".rstrip(),
    ]
    if info.python_version:
        lines.append(f"python:  {info.python_version.split()[0]}")
    if info.os:
        lines.append(f"os:      {info.os}")
    if info.devices:
        lines.append(f"devices: {_device(info.devices[0])}")
        lines.extend(f"         {_device(d)}" for d in info.devices[1:])
    elif info.kind != "comfydesk-gateway":  # a gateway's machines sit behind it; only an admin sees them
        lines.append("devices: none reported")
    lines.append(f"nodes:   {result.node_count}")
    if result.workflows is not None:
        lines.append(f"workflows: {result.workflows}")
    mine = " of this token" if info.kind == "comfydesk-gateway" else ""
    lines.append(f"queue:   {len(result.queue)} ({running} running, {pending} pending){mine}")
    return lines


async def _gateway_runs(backend: V1Backend) -> list[QueueItem]:
    """The token's running and queued executions (a fresh backend has submitted nothing of its own)."""
    items: list[QueueItem] = []
    for status in ("running", "queued"):
        for doc in reversed(await backend.list_executions(status=status)):  # oldest first
            items.append(QueueItem(str(doc.get("id")), len(items), status == "running", True, len(items)))
    return items


async def _check(args: argparse.Namespace) -> CheckResult:
    from comfydesk.backends.v1 import V1Backend

    backend = await open_backend(args, timeout=10.0)
    workflows: int | None = None
    try:
        info = await backend.server_info()
        catalog = await backend.node_catalog()
        if isinstance(backend, V1Backend):
            workflows = len(await backend.list_workflows())
            queue = await _gateway_runs(backend)
        else:
            queue = await backend.queue()
    finally:
        await backend.close()
    return CheckResult(info=info, node_count=len(catalog), queue=tuple(queue), workflows=workflows)


def handle(args: argparse.Namespace) -> int:
    url = server_url(args)
    try:
        result = run_coroutine(_check(args))
    except ComfyDeskError as exc:
        message = describe(exc)
        if url not in message:
            message = f"{url}: {message}"
        error(redact(message, token_of(args)))
        return EXIT_UNAVAILABLE
    sys.stdout.write("\n".join(format_report(result, redact(url, token_of(args)))) + "\n")
    return EXIT_OK
