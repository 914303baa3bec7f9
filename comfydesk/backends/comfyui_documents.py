"""ComfyUI HTTP answers (system_stats, object_info, userdata, templates, queue, /prompt errors) as types."""

from __future__ import annotations

from typing import Any

from comfydesk.backends.base import DeviceInfo, QueueItem, ServerInfo, WorkflowSummary
from comfydesk.backends.error_text import quote_body
from comfydesk.core.errors import ComfyDeskError, ServerResponseError, ValidationError, ValidationIssue
from comfydesk.core.graph import ApiGraph
from comfydesk.core.limits import CATALOG_MAX_CONTAINERS, JsonTooComplex, loads_bounded, printable
from comfydesk.core.nodes import NodeCatalog, parse_object_info

__all__ = [
    "catalog_from_bytes",
    "prompt_error",
    "queue_items_from_json",
    "server_info_from_stats",
    "templates_from_index",
    "userdata_workflows",
]


def server_info_from_stats(doc: Any, *, url: str, name: str = "") -> ServerInfo:
    """`GET /system_stats` as ServerInfo (kind `comfyui`, version `comfyui_version`, devices)."""
    if not isinstance(doc, dict):
        raise ServerResponseError("GET /system_stats did not return an object", body=str(doc)[:500])
    system_raw = doc.get("system")
    system: dict[str, Any] = system_raw if isinstance(system_raw, dict) else {}
    devices = []
    for dev in doc.get("devices") or ():
        if isinstance(dev, dict):
            total, free = dev.get("vram_total"), dev.get("vram_free")
            devices.append(
                DeviceInfo(
                    name=str(dev.get("name", "")),
                    type=str(dev.get("type", "")),
                    vram_total=total if isinstance(total, int) else None,
                    vram_free=free if isinstance(free, int) else None,
                )
            )
    return ServerInfo(
        kind="comfyui",
        version=str(system.get("comfyui_version") or "unknown"),
        url=url,
        name=name,
        python_version=str(system.get("python_version") or ""),
        os=str(system.get("os") or ""),
        devices=tuple(devices),
        raw=doc,
    )


def catalog_from_bytes(content: bytes) -> NodeCatalog:
    """Parse an object_info body (slow for real servers: call it off the event loop)."""
    try:
        doc = loads_bounded(content, max_containers=CATALOG_MAX_CONTAINERS)
    except JsonTooComplex as exc:
        raise ServerResponseError(
            f"GET /object_info answered node definitions that cannot be used: {exc}",
            body=content[:2000].decode("utf-8", "replace"),
        ) from None
    except ValueError:
        raise ServerResponseError(
            "GET /object_info did not answer JSON", body=content[:2000].decode("utf-8", "replace")
        ) from None
    return parse_object_info(doc)


def userdata_workflows(doc: Any) -> list[WorkflowSummary]:
    """`GET /userdata?dir=workflows&recurse=true&split=false` (paths, or objects with `full_info`)."""
    out: list[WorkflowSummary] = []
    for item in doc if isinstance(doc, list) else ():
        path = item.get("path") if isinstance(item, dict) else item
        if isinstance(path, str) and path.endswith(".json"):
            name = path.removesuffix(".json")
            out.append(WorkflowSummary(id=f"userdata:{path}", name=name, source="userdata"))
    return out


def templates_from_index(doc: Any) -> list[WorkflowSummary]:
    """`GET /templates/index.json`: categories, each with `templates` [{name, title, description}]."""
    out: list[WorkflowSummary] = []
    for group in doc if isinstance(doc, list) else ():
        if not isinstance(group, dict):
            continue
        category = str(group.get("title") or group.get("category") or "")
        for tpl in group.get("templates") or ():
            if isinstance(tpl, dict) and isinstance(tpl.get("name"), str):
                out.append(
                    WorkflowSummary(
                        id=f"template:{tpl['name']}",
                        name=str(tpl.get("title") or tpl["name"]),
                        source="template",
                        description=str(tpl.get("description") or ""),
                        category=category,
                    )
                )
    return out


def queue_items_from_json(doc: Any, client_id: str) -> list[QueueItem]:
    """`GET /queue` as QueueItems: running first, then pending by number; `position` counts who is ahead."""
    if not isinstance(doc, dict):
        raise ServerResponseError("GET /queue did not return an object", body=str(doc)[:500])

    def parse(items: Any, running: bool) -> list[QueueItem]:
        out = []
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, list) or len(item) < 2:
                continue
            extra = item[3] if len(item) > 3 and isinstance(item[3], dict) else {}
            number = item[0] if isinstance(item[0], int | float) else 0
            out.append(QueueItem(str(item[1]), number, running, extra.get("client_id") == client_id))
        return out

    running = parse(doc.get("queue_running"), True)
    pending = sorted(parse(doc.get("queue_pending"), False), key=lambda q: q.number)
    return [
        QueueItem(q.execution_id, q.number, q.running, q.mine, i) for i, q in enumerate(running + pending)
    ]


def _join(message: str, details: str) -> str:
    message, details = printable(message).strip(), printable(details, keep_newlines=True).strip()
    if details and details not in message:
        return f"{message}: {details}" if message else details
    return message or details or "rejected by the server"


def prompt_error(status: int, body: str, graph: ApiGraph | None = None) -> ComfyDeskError:
    """The error for a failed `POST /prompt`: ValidationError for the server's validation answers."""
    try:
        doc = loads_bounded(body) if body else None
    except ValueError:  # JsonTooComplex included
        doc = None
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        text = quote_body(body)
        return ServerResponseError(
            f"the server failed to handle the workflow (POST /prompt answered HTTP {status}: {text})",
            status=status,
            body=body,
        )
    err_type = str(error.get("type") or "invalid")
    head = _join(str(error.get("message") or ""), "")
    issues: list[ValidationIssue] = []
    node_errors = doc.get("node_errors") if isinstance(doc, dict) else None
    for node_id, node_err in (node_errors or {}).items() if isinstance(node_errors, dict) else ():
        if not isinstance(node_err, dict):
            continue
        node_id = str(node_id)
        title = ""
        if graph is not None and node_id in graph:
            title = graph.title_of(node_id)
        title = title or str(node_err.get("class_type") or "")
        for item in node_err.get("errors") or ():
            if not isinstance(item, dict):
                continue
            extra_raw = item.get("extra_info")
            extra: dict[str, Any] = extra_raw if isinstance(extra_raw, dict) else {}
            input_name = extra.get("input_name")
            issues.append(
                ValidationIssue(
                    node_id=node_id,
                    message=_join(str(item.get("message") or ""), str(item.get("details") or "")),
                    kind=str(item.get("type") or err_type),
                    node_title=title,
                    input_name=str(input_name) if input_name is not None else None,
                    received=extra.get("received_value"),
                )
            )
    if not issues:
        issues.append(
            ValidationIssue(
                node_id="",
                message=_join(str(error.get("message") or ""), str(error.get("details") or "")),
                kind=err_type,
            )
        )
    return ValidationError(issues, message=f"the server rejected the workflow ({head or err_type})")
