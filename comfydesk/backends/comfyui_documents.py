"""ComfyUI HTTP documents (system_stats, object_info, userdata listings, template index) as core types."""

from __future__ import annotations

import json
from typing import Any

from comfydesk.backends.base import DeviceInfo, ServerInfo, WorkflowSummary
from comfydesk.core.errors import ServerResponseError
from comfydesk.core.nodes import NodeCatalog, parse_object_info

__all__ = ["catalog_from_bytes", "server_info_from_stats", "templates_from_index", "userdata_workflows"]


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
        doc = json.loads(content)
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
