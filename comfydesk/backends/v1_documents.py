"""The `/api/v1/comfyui` documents as core types, and WebSocket messages as core events.

Pure functions, no I/O, so every message can be replayed in a unit test. Per run, `V1Run` remembers what
was delivered, so a message seen twice (the socket after a reconnect, `GET /executions/{id}`, a cancel
answer) never yields an event twice, and exactly one terminal event ends each run.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from comfydesk.backends.base import HistoryEntry, WorkflowSummary
from comfydesk.backends.v1_errors import data_of
from comfydesk.core.errors import ServerResponseError
from comfydesk.core.events import (
    Completed,
    ExecutionEvent,
    ExecutionStatus,
    Failed,
    FailureInfo,
    Interrupted,
    NodeStarted,
    OutputRef,
    Preview,
    Progress,
    Queued,
    Started,
)
from comfydesk.core.nodes import NodeCatalog, parse_v1_nodes

__all__ = [
    "V1Run",
    "absolute_url",
    "catalog_from_bytes",
    "events_from_execution",
    "events_from_message",
    "execution_number",
    "failure_from_error",
    "history_entry_from_execution",
    "message_execution_id",
    "outputs_from_execution",
    "workflow_of",
    "workflow_summaries",
]

_FINISHED = {s.value for s in ExecutionStatus if s.finished}
_TERMINAL_TYPES = frozenset({"completed", "failed", "cancelled"})

# --------------------------------------------------------------------------------------------------------
# Documents


def catalog_from_bytes(content: bytes) -> NodeCatalog:
    """`GET /nodes` as a NodeCatalog (slow for a big catalog: call it off the event loop)."""
    return parse_v1_nodes(data_of(content, "the node list"))


def workflow_of(data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """`data.workflow` of an answer, or ServerResponseError naming what was asked."""
    workflow = data.get("workflow")
    if not isinstance(workflow, dict):
        raise ServerResponseError(f"{what}: the answer carries no workflow", body=str(data)[:2000])
    return workflow


def execution_number(execution_id: str) -> float:
    """The id as a number, for ordering (ids are integers; anything else sorts first)."""
    try:
        return float(int(execution_id))
    except ValueError:
        return 0.0


def workflow_summaries(data: Mapping[str, Any]) -> list[WorkflowSummary]:
    out: list[WorkflowSummary] = []
    for wf in data.get("workflows") or ():
        if isinstance(wf, dict) and "id" in wf:
            desc = wf.get("description")
            out.append(
                WorkflowSummary(
                    id=str(wf["id"]),
                    name=str(wf.get("name") or f"workflow {wf['id']}"),
                    source="v1",
                    description=desc if isinstance(desc, str) else "",
                )
            )
    return out


def absolute_url(base: str, url: str) -> str:
    """An image URL as the gateway gave it (`/api/v1/images/...`) made absolute against our address.

    A gateway behind a path prefix (`https://host/gw`) does not know the prefix, so root-relative URLs
    get it unless they already start with it."""
    if "://" in url:
        return url
    parts = urlsplit(base)
    origin = f"{parts.scheme}://{parts.netloc}"
    prefix = parts.path.rstrip("/")
    if not url.startswith("/"):
        return f"{base.rstrip('/')}/{url}"
    if prefix and not url.startswith(prefix + "/"):
        return origin + prefix + url
    return origin + url


def outputs_from_execution(execution: Mapping[str, Any], base: str) -> tuple[OutputRef, ...]:
    outputs = execution.get("outputs")
    images = outputs.get("images") if isinstance(outputs, dict) else None
    refs: list[OutputRef] = []
    for image in images if isinstance(images, list) else ():
        if not isinstance(image, dict) or not isinstance(image.get("url"), str) or not image["url"]:
            continue
        url = absolute_url(base, image["url"])
        width, height = image.get("width"), image.get("height")
        refs.append(
            OutputRef(
                node_id="",
                kind="images",
                filename=urlsplit(url).path.rsplit("/", 1)[-1],
                url=url,
                width=width if isinstance(width, int) else None,
                height=height if isinstance(height, int) else None,
            )
        )
    return tuple(refs)


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def failure_from_error(error: Any) -> FailureInfo:
    """FailureInfo from an execution's `error` object (message joined with its details)."""
    if not isinstance(error, dict):
        return FailureInfo("the gateway reported this run as failed without saying why")
    message = str(error.get("message") or "the run failed").strip()
    details = str(error.get("details") or "").strip()
    if details and details not in message:
        message = f"{message}: {details}"
    tb = error.get("traceback")
    if isinstance(tb, str):
        traceback: tuple[str, ...] = tuple(tb.splitlines(keepends=True))
    elif isinstance(tb, list):
        traceback = tuple(str(line) for line in tb)
    else:
        traceback = ()
    return FailureInfo(
        message=message,
        node_id=_opt_str(error.get("node_id")),
        node_type=_opt_str(error.get("node_type")),
        exception_type=str(error.get("exception_type") or ""),
        traceback=traceback,
    )


def history_entry_from_execution(execution: Mapping[str, Any], base: str) -> HistoryEntry:
    status = str(execution.get("status") or "")
    eid = str(execution.get("id"))
    mapped = {"completed": "success", "failed": "error", "cancelled": "interrupted"}.get(status, "unknown")
    messages: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    error = execution.get("error")
    if isinstance(error, dict):
        messages = (("error", error),)
    return HistoryEntry(eid, mapped, status in _FINISHED, outputs_from_execution(execution, base), messages)


# --------------------------------------------------------------------------------------------------------
# Events


@dataclass(slots=True)
class V1Run:
    """What this client knows and has delivered about one of its executions."""

    execution_id: str
    workflow_id: str | None = None
    queued: bool = False
    started: bool = False
    terminal: bool = False
    status: str = "queued"
    node: str | None = None  # the node the last progress message named


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value:
        return int(value)
    return default


def events_from_execution(
    run: V1Run, execution: Mapping[str, Any], base: str, *, kind: str | None = None
) -> list[ExecutionEvent]:
    """The events an execution document (a `status`/terminal message or `GET /executions/{id}`) still owes.

    `kind` is the message type when it is a terminal one; otherwise the document's `status` decides.
    Updates `run`, so no event is ever delivered twice and exactly one terminal event ends the run."""
    if run.terminal:
        return []
    status = str(execution.get("status") or "")
    if kind in _TERMINAL_TYPES:
        status = kind
    if status:
        run.status = status
    events: list[ExecutionEvent] = []
    eid = run.execution_id
    if not run.queued:
        run.queued = True
        events.append(Queued(eid, None))
    if status in ("running", "completed") and not run.started:
        run.started = True
        events.append(Started(eid))
    if status == "completed":
        run.terminal = True
        events.append(Completed(eid, outputs_from_execution(execution, base)))
    elif status == "failed":
        run.terminal = True
        events.append(Failed(eid, failure_from_error(execution.get("error"))))
    elif status == "cancelled":
        run.terminal = True
        events.append(Interrupted(eid, None, reason="cancelled"))
    return events


def events_from_message(
    run: V1Run, msg: Mapping[str, Any], base: str, *, log_bad: Callable[[str], None] | None = None
) -> list[ExecutionEvent]:
    """Core events for one WebSocket message about `run` (see docs/api.md, "Progress over WebSocket")."""
    if run.terminal:
        return []
    kind = msg.get("type")
    execution = msg.get("execution")
    execution = execution if isinstance(execution, dict) else {}
    eid = run.execution_id
    if kind == "status" or kind in _TERMINAL_TYPES:
        return events_from_execution(run, execution, base, kind=kind if kind in _TERMINAL_TYPES else None)
    events: list[ExecutionEvent] = []
    if kind not in ("progress", "preview"):
        return events
    if not run.queued:
        run.queued = True
        events.append(Queued(eid, None))
    if not run.started:  # steps or previews mean it runs, even if its status message was missed
        run.started = True
        run.status = "running"
        events.append(Started(eid))
    if kind == "progress":
        node = _opt_str(msg.get("node"))
        if node is not None and node != run.node:
            run.node = node
            events.append(NodeStarted(eid, node))
        # A message without steps (max 0) only says which node runs now; "step 0/0" would mean nothing.
        if _int(msg.get("max")) > 0:
            events.append(Progress(eid, node, _int(msg.get("value")), _int(msg.get("max"))))
    else:
        raw = msg.get("image")
        try:
            image = base64.b64decode(raw, validate=True) if isinstance(raw, str) else b""
        except (binascii.Error, ValueError):
            image = b""
        if not image:
            if log_bad is not None:
                log_bad(f"a preview of execution {eid} carried no decodable image")
            return events
        mime = msg.get("mime")
        events.append(
            Preview(
                eid,
                _opt_str(msg.get("node")),
                image,
                mime if isinstance(mime, str) and mime else "image/jpeg",
            )
        )
    return events


def message_execution_id(msg: Any) -> str | None:
    """The execution a WebSocket message is about, or None for a message we do not understand."""
    if not isinstance(msg, dict):
        return None
    execution = msg.get("execution")
    if not isinstance(execution, dict) or execution.get("id") is None:
        return None
    return str(execution["id"])
