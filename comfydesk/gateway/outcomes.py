"""What a gateway run's record says of it: the nodes ComfyUI will execute (its progress is counted over
them), and its error when ComfyUI refused or failed it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from comfydesk.backends.base import ConnectionState
from comfydesk.backends.comfyui_protocol import LOST_RUN_MESSAGE
from comfydesk.core.events import Failed
from comfydesk.core.graph import ApiGraph, is_link
from comfydesk.core.nodes import NodeCatalog

if TYPE_CHECKING:
    from comfydesk.gateway.dispatch import Machine

__all__ = ["failure_error", "nodes_to_run", "refused_error"]


def nodes_to_run(graph: ApiGraph, catalog: NodeCatalog | None) -> frozenset[str]:
    """The output nodes and everything they depend on: what ComfyUI will execute."""
    outputs = [
        nid
        for nid, node in graph.items()
        if catalog is not None
        and catalog.get(node.class_type) is not None
        and catalog[node.class_type].output_node
    ]
    if not outputs:
        return frozenset(graph)
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        nid = stack.pop()
        if nid in seen or nid not in graph:
            continue
        seen.add(nid)
        stack.extend(str(v[0]) for v in graph[nid].inputs.values() if is_link(v))
    return frozenset(seen)


def refused_error(issues: list[str]) -> dict[str, Any]:
    """The error of a run whose graph ComfyUI refused (its validation's lines)."""
    return {
        "code": "execution_error",
        "message": "Failed to generate image",
        "details": "; ".join(f"Node error: {i}" for i in issues),
    }


def failure_error(event: Failed, machine: Machine) -> dict[str, Any]:
    """The error of a run that failed on `machine`: its node's error, or the machine gone away."""
    info = event.error
    lost = info.node_id is None and not info.exception_type
    if lost and (
        machine.backend.status.state is not ConnectionState.CONNECTED or info.message == LOST_RUN_MESSAGE
    ):
        return {
            "code": "backend_unavailable",
            "message": f"The ComfyUI machine {machine.url} went away during the run",
            "details": info.message,
        }
    where = f"node {info.node_id} ({info.node_type})" if info.node_id else "the workflow"
    kind = f"{info.exception_type}: " if info.exception_type else ""
    error: dict[str, Any] = {
        "code": "execution_error",
        "message": info.message or "The run failed",
        "details": f"Node error: {where}: {kind}{info.message}",
    }
    if info.node_id:
        error["node_id"] = info.node_id
    if info.node_type:
        error["node_type"] = info.node_type
    if info.exception_type:
        error["exception_type"] = info.exception_type
    if info.traceback:
        error["traceback"] = list(info.traceback)
    return error
