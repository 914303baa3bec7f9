"""Workflows as the user holds them: a named API graph, loaded from whatever shape it came in.

`load_workflow` accepts an API-format prompt, a UI-format (graph editor) document, the `/api/v1` workflow
shape `{id, name, description, nodes: [{id, type, inputs}]}`, or a PNG/WebP that carries a workflow in its
metadata, as bytes, text, or already-parsed JSON. UI-format documents need the server's node definitions
to convert.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from comfydesk.core.errors import WorkflowError, WorkflowFormatError
from comfydesk.core.graph import ApiGraph, ApiNode, is_link
from comfydesk.core.limits import JsonTooComplex, check_shape, loads_bounded

if TYPE_CHECKING:
    from comfydesk.core.convert import ConversionReport
    from comfydesk.core.nodes import NodeCatalog

__all__ = [
    "PLACEHOLDER_RE",
    "Workflow",
    "find_placeholders",
    "load_workflow",
    "load_workflow_file",
    "workflow_to_v1",
]

#: A `{name}` placeholder inside a string input; other braces (JSON in a prompt, "{ }") are left alone.
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UNTITLED = "Untitled workflow"


@dataclass
class Workflow:
    """A workflow ready to run: its API graph plus where it came from."""

    name: str
    graph: ApiGraph
    description: str = ""
    source: str | None = None
    format: str = "api"  # "api" | "ui" | "v1" | "png"
    report: ConversionReport | None = None
    workflow_id: str | None = None
    #: "Control after generate" modes saved with a UI-format workflow, by (node id, input name), as stored
    #: (normally "fixed", "increment", "decrement" or "randomize"); empty for the other formats.
    seed_controls: Mapping[tuple[str, str], str] = field(default_factory=dict)


def _is_image(data: bytes) -> bool:
    return data.startswith(_PNG_MAGIC) or (len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _parse_json_text(text: str, source: str | None) -> Any:
    try:
        return loads_bounded(text)
    except JsonTooComplex as exc:
        raise _too_complex(exc, source) from None
    except json.JSONDecodeError as exc:
        raise WorkflowFormatError(
            f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            source=source,
            hint="The file may be truncated or not a ComfyUI workflow.",
        ) from exc


def _too_complex(exc: JsonTooComplex, source: str | None) -> WorkflowFormatError:
    return WorkflowFormatError(
        f"the workflow is too complex to open: {exc}",
        source=source,
        hint="Real ComfyUI workflows are far smaller; the file is damaged or was made to be hostile.",
    )


def _is_api_prompt(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and bool(doc)
        and all(isinstance(v, dict) and "class_type" in v for v in doc.values())
    )


def _is_v1_node(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("type"), str)
        and "id" in item
        and isinstance(item.get("inputs", {}), dict)
        and "widgets_values" not in item
        and "pos" not in item
    )


def _is_v1_workflow(doc: Any) -> bool:
    # UI-format nodes also have id/type, but their `inputs` is a list of sockets and the document has `links`.
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("nodes"), list)
        and "links" not in doc
        and all(_is_v1_node(n) for n in doc["nodes"])
    )


def _looks_like_ui(doc: Any) -> bool:
    try:
        from comfydesk.core.convert import is_ui_workflow
    except ImportError:  # converter not available: fall back to the document's shape
        return isinstance(doc, dict) and isinstance(doc.get("nodes"), list) and "links" in doc
    return bool(is_ui_workflow(doc))


def _describe(doc: Any) -> str:
    if isinstance(doc, dict):
        keys = ", ".join(repr(k) for k in list(doc)[:6]) + (", ..." if len(doc) > 6 else "")
        return f"a JSON object with keys {keys}" if doc else "an empty JSON object"
    if isinstance(doc, list):
        return f"a JSON array of {len(doc)} item{'s' if len(doc) != 1 else ''}"
    return f"a JSON {type(doc).__name__}"


def _graph_from_v1_nodes(nodes: list[Any], source: str | None) -> ApiGraph:
    graph: dict[str, ApiNode] = {}
    for node in nodes:
        node_id = str(node["id"])
        if node_id in graph:
            raise WorkflowFormatError(f"node id {node_id} appears twice", source=source)
        inputs = {
            k: ([str(v[0]), v[1]] if is_link(v) else json.loads(json.dumps(v)))
            for k, v in node.get("inputs", {}).items()
        }
        title = node.get("title")
        graph[node_id] = ApiNode(node_id, node["type"], inputs, title=title if isinstance(title, str) else "")
    return ApiGraph(graph)


def _unwrap(doc: Any) -> Any:
    """Accept envelopes people paste: a POST /prompt body, or a v1 `{"data": {"workflow": ...}}` answer."""
    if isinstance(doc, dict) and isinstance(doc.get("prompt"), dict) and "class_type" not in doc:
        return doc["prompt"]
    if (
        isinstance(doc, dict)
        and isinstance(doc.get("data"), dict)
        and isinstance(doc["data"].get("workflow"), dict)
    ):
        return doc["data"]["workflow"]
    return doc


def _convert_ui(
    doc: Any, catalog: NodeCatalog | None, source: str | None, lenient: bool = False
) -> tuple[ApiGraph, Any, dict[tuple[str, str], str]]:
    if catalog is None:
        raise WorkflowError(
            "this is a UI-format workflow, and converting it needs the server's node definitions",
            source=source,
            hint="Connect to a server (or load its object_info) and open the workflow again.",
        )
    from comfydesk.core.convert import convert_ui_workflow

    result = convert_ui_workflow(doc, catalog, source=source, lenient=lenient)
    return result.graph, result.report, result.seed_controls


def _from_document(
    doc: Any,
    *,
    name: str | None,
    catalog: NodeCatalog | None,
    source: str | None,
    fmt: str | None = None,
    lenient: bool = False,
) -> Workflow:
    doc = _unwrap(doc)
    default_name = name or (Path(source).stem if source else UNTITLED)
    if _is_api_prompt(doc):
        return Workflow(
            name=default_name,
            graph=ApiGraph.from_prompt(doc, source=source),
            source=source,
            format=fmt or "api",
        )
    if _is_v1_workflow(doc):
        wf_id = doc.get("id")
        desc = doc.get("description")
        doc_name = doc.get("name")
        return Workflow(
            name=name or (doc_name if isinstance(doc_name, str) and doc_name else default_name),
            graph=_graph_from_v1_nodes(doc["nodes"], source),
            description=desc if isinstance(desc, str) else "",
            source=source,
            format=fmt or "v1",
            workflow_id=None if wf_id is None else str(wf_id),
        )
    if isinstance(doc, list) and doc and all(_is_v1_node(n) for n in doc):
        return Workflow(
            name=default_name, graph=_graph_from_v1_nodes(doc, source), source=source, format=fmt or "v1"
        )
    if _looks_like_ui(doc):
        graph, report, seed_controls = _convert_ui(doc, catalog, source, lenient)
        extra = doc.get("extra") if isinstance(doc, dict) else None
        title = extra.get("title") if isinstance(extra, dict) else None
        return Workflow(
            name=name or (title if isinstance(title, str) and title else default_name),
            graph=graph,
            source=source,
            format=fmt or "ui",
            report=report,
            seed_controls=seed_controls,
        )
    if isinstance(doc, dict) and not doc:
        raise WorkflowFormatError("the workflow is empty (no nodes)", source=source)
    raise WorkflowFormatError(
        f"not a ComfyUI workflow: found {_describe(doc)}",
        source=source,
        hint="Expected an API-format prompt, a UI-format workflow, the /api/v1 workflow shape, "
        "or a PNG/WebP saved by ComfyUI.",
    )


def _from_image(
    data: bytes, *, name: str | None, catalog: NodeCatalog | None, source: str | None, lenient: bool = False
) -> Workflow:
    from comfydesk.core.pngmeta import read_embedded_workflow

    found = read_embedded_workflow(data, source=source) or {}
    ui_doc, prompt = found.get("workflow"), found.get("prompt")
    # The UI workflow keeps node titles and notes, so it is preferred when we can convert it.
    if ui_doc is not None and (catalog is not None or prompt is None):
        return _from_document(ui_doc, name=name, catalog=catalog, source=source, fmt="png", lenient=lenient)
    if prompt is not None:
        return _from_document(prompt, name=name, catalog=catalog, source=source, fmt="png")
    raise WorkflowFormatError(
        "the image carries no ComfyUI workflow in its metadata",
        source=source,
        hint="Only images saved by ComfyUI (Save Image) embed the workflow that made them.",
    )


def load_workflow(
    data: bytes | str | Mapping[str, Any] | list[Any],
    *,
    name: str | None = None,
    catalog: NodeCatalog | None = None,
    source: str | None = None,
    lenient: bool = False,
) -> Workflow:
    """Load a workflow from bytes (JSON, PNG or WebP), JSON text, or parsed JSON; raises WorkflowError.

    `lenient`: a UI workflow's node types the catalog lacks are emitted as the editor does (no
    `class_type`) instead of failing; such a graph is for export only, the server rejects it.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if _is_image(raw):
            return _from_image(raw, name=name, catalog=catalog, source=source, lenient=lenient)
        return load_parsed_workflow(
            parse_workflow_json(raw, source), name=name, catalog=catalog, source=source, lenient=lenient
        )
    if isinstance(data, str):
        return _from_document(
            _parse_json_text(data.lstrip("\ufeff"), source),
            name=name,
            catalog=catalog,
            source=source,
            lenient=lenient,
        )
    try:
        check_shape(data)
    except JsonTooComplex as exc:
        raise _too_complex(exc, source) from None
    if isinstance(data, Mapping):
        return _from_document(dict(data), name=name, catalog=catalog, source=source, lenient=lenient)
    return _from_document(data, name=name, catalog=catalog, source=source, lenient=lenient)


def parse_workflow_json(raw: bytes, source: str | None = None) -> Any:
    """The JSON document in a workflow file's bytes (not an image), parsed within the limits of
    `core.limits`; raises WorkflowFormatError. Give it to `load_parsed_workflow`."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WorkflowFormatError(
            f"not a workflow: the data is neither UTF-8 JSON nor a PNG/WebP image (byte {exc.start})",
            source=source,
        ) from exc
    return _parse_json_text(text, source)


def load_parsed_workflow(
    doc: Any,
    *,
    name: str | None = None,
    catalog: NodeCatalog | None = None,
    source: str | None = None,
    lenient: bool = False,
) -> Workflow:
    """`load_workflow` of a document `parse_workflow_json` gave (its size and nesting already checked, so
    a caller that also needs the document parses the file once)."""
    if isinstance(doc, Mapping):
        return _from_document(dict(doc), name=name, catalog=catalog, source=source, lenient=lenient)
    return _from_document(doc, name=name, catalog=catalog, source=source, lenient=lenient)


def is_image_bytes(data: bytes) -> bool:
    """PNG or WebP bytes (a workflow embedded in an image's metadata)."""
    return _is_image(data)


def load_workflow_file(path: str | Path, *, catalog: NodeCatalog | None = None) -> Workflow:
    """Load a workflow file (JSON, PNG or WebP), named after the file unless the document names itself."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise WorkflowError(f"cannot read the file: {exc.strerror or exc}", source=str(p)) from exc
    return load_workflow(data, catalog=catalog, source=str(p))


def workflow_to_v1(workflow: Workflow) -> dict[str, Any]:
    """Render in the `/api/v1/comfyui/workflows` shape (`id` is included when the workflow has one)."""
    out: dict[str, Any] = {}
    if workflow.workflow_id is not None:
        wid = workflow.workflow_id
        out["id"] = int(wid) if wid.isdigit() else wid
    out["name"] = workflow.name
    out["description"] = workflow.description
    out["nodes"] = [
        {"id": node.id, "type": node.class_type, "inputs": node.to_json()["inputs"]}
        for node in workflow.graph.values()
    ]
    return out


def find_placeholders(graph: ApiGraph) -> dict[str, list[tuple[str, str]]]:
    """`{name}` placeholders in string inputs: name -> [(node_id, input_name)], by first appearance."""
    found: dict[str, list[tuple[str, str]]] = {}
    for node in graph.values():
        for input_name, value in node.inputs.items():
            if not isinstance(value, str):
                continue
            for match in PLACEHOLDER_RE.finditer(value):
                targets = found.setdefault(match.group(1), [])
                if (node.id, input_name) not in targets:
                    targets.append((node.id, input_name))
    return found
