"""The editor's (UI-format) graph, parsed into typed values: nodes, slots, links, subgraph definitions.

Both link shapes are read: the list `[id, origin_id, origin_slot, target_id, target_slot, type]` of the
root graph and the object `{id, origin_id, ...}` of subgraph definitions. Structural problems raise
`WorkflowFormatError` naming the node or link. Used by `comfydesk.core.convert`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from comfydesk.core.errors import WorkflowFormatError

__all__ = [
    "SUBGRAPH_INPUT_NODE",
    "SUBGRAPH_OUTPUT_NODE",
    "SubgraphPort",
    "UiGraph",
    "UiGraphParser",
    "UiLink",
    "UiNode",
    "UiSlot",
    "bypass_slot",
    "execution_order",
    "js_key_order",
    "types_match",
]

#: Link ends inside a subgraph definition that stand for the instance's inputs and outputs.
SUBGRAPH_INPUT_NODE = -10
SUBGRAPH_OUTPUT_NODE = -20
_JS_INDEX_RE = re.compile(r"^(0|[1-9][0-9]*)$")
_JS_MAX_INDEX = 2**32 - 2


@dataclass
class UiLink:
    id: int
    origin_id: Any
    origin_slot: int
    target_id: Any
    target_slot: int
    type: str


@dataclass
class UiSlot:
    name: str
    type: str
    link: int | None = None
    widget: str | None = None


@dataclass
class UiNode:
    id: Any
    type: str
    mode: int
    title: str | None
    inputs: list[UiSlot]
    outputs: list[UiSlot]
    output_links: list[list[int]]
    widgets_values: list[Any] | dict[str, Any] | None
    properties: Mapping[str, Any]


@dataclass
class SubgraphPort:
    name: str
    type: str
    link_ids: list[int]


@dataclass
class UiGraph:
    name: str  # "" for the root graph
    nodes: dict[str, UiNode]  # keyed by str(id), in file order
    links: dict[int, UiLink]
    inputs: list[SubgraphPort] = field(default_factory=list)
    outputs: list[SubgraphPort] = field(default_factory=list)


class UiGraphParser:
    def __init__(self, source: str | None) -> None:
        self.source = source

    def fail(self, message: str) -> WorkflowFormatError:
        return WorkflowFormatError(message, source=self.source)

    def graph(self, raw: Any, where: str, *, name: str = "") -> UiGraph:
        if not isinstance(raw, Mapping):
            raise self.fail(f"{where} is not an object")
        nodes_raw = raw.get("nodes")
        if not isinstance(nodes_raw, list):
            raise self.fail(f"{where}: 'nodes' must be a list, got {type(nodes_raw).__name__}")
        links_raw = raw.get("links", [])
        if links_raw is None:
            links_raw = []
        if not isinstance(links_raw, list):
            raise self.fail(f"{where}: 'links' must be a list, got {type(links_raw).__name__}")
        nodes: dict[str, UiNode] = {}
        for idx, item in enumerate(nodes_raw):
            node = self.node(item, idx, where)
            key = str(node.id)
            if key in nodes:
                raise self.fail(f"{where}: node id {key} is used twice")
            nodes[key] = node
        links: dict[int, UiLink] = {}
        for idx, item in enumerate(links_raw):
            link = self.link(item, idx, where)
            links[link.id] = link
        graph = UiGraph(name=name, nodes=nodes, links=links)
        graph.inputs = self.ports(raw.get("inputs", []), f"{where} inputs")
        graph.outputs = self.ports(raw.get("outputs", []), f"{where} outputs")
        return graph

    def node(self, raw: Any, idx: int, where: str) -> UiNode:
        if not isinstance(raw, Mapping):
            raise self.fail(f"{where}: node #{idx} is not an object")
        node_id = raw.get("id")
        if isinstance(node_id, bool) or not isinstance(node_id, int | str) or node_id == "":
            raise self.fail(f"{where}: node #{idx} has no usable 'id'")
        node_type = raw.get("type")
        if not isinstance(node_type, str) or not node_type:
            raise self.fail(f"{where}: node {node_id} has no 'type'")
        label = f"{where}: node {node_id} ({node_type})"
        mode = raw.get("mode", 0)
        if isinstance(mode, bool) or not isinstance(mode, int):
            raise self.fail(f"{label}: 'mode' is not a number")
        title = raw.get("title")
        inputs = [
            self.slot(s, f"{label} input #{i}") for i, s in enumerate(self.as_list(raw, "inputs", label))
        ]
        outputs: list[UiSlot] = []
        output_links: list[list[int]] = []
        for i, s in enumerate(self.as_list(raw, "outputs", label)):
            outputs.append(self.slot(s, f"{label} output #{i}", is_output=True))
            links = s.get("links") if isinstance(s, Mapping) else None
            output_links.append([x for x in links if _is_int(x)] if isinstance(links, list) else [])
        wv = raw.get("widgets_values")
        if wv is not None and not isinstance(wv, list | dict):
            raise self.fail(f"{label}: 'widgets_values' must be a list or an object")
        props = raw.get("properties")
        return UiNode(
            id=node_id,
            type=node_type,
            mode=mode,
            title=title if isinstance(title, str) and title else None,
            inputs=inputs,
            outputs=outputs,
            output_links=output_links,
            widgets_values=wv,
            properties=props if isinstance(props, Mapping) else {},
        )

    def as_list(self, raw: Mapping[str, Any], key: str, label: str) -> list[Any]:
        value = raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"{label}: '{key}' must be a list")
        return value

    def slot(self, raw: Any, label: str, *, is_output: bool = False) -> UiSlot:
        if not isinstance(raw, Mapping):
            raise self.fail(f"{label} is not an object")
        name = raw.get("name")
        if not isinstance(name, str):
            raise self.fail(f"{label} has no 'name'")
        link = None if is_output else raw.get("link")
        if link is not None and not _is_int(link):
            raise self.fail(f"{label} '{name}': 'link' is not a link id")
        widget = raw.get("widget")
        widget_name = widget.get("name") if isinstance(widget, Mapping) else None
        slot_type = raw.get("type", "*")
        return UiSlot(
            name=name,
            type=slot_type if isinstance(slot_type, str) else str(slot_type),
            link=link,
            widget=widget_name if isinstance(widget_name, str) else None,
        )

    def link(self, raw: Any, idx: int, where: str) -> UiLink:
        if isinstance(raw, list) and len(raw) >= 5:
            fields = raw[:5]
            link_type = raw[5] if len(raw) > 5 else "*"
        elif isinstance(raw, Mapping):
            fields = [raw.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot")]
            link_type = raw.get("type", "*")
        else:
            raise self.fail(f"{where}: link #{idx} is neither [id, from, slot, to, slot, type] nor an object")
        link_id, origin_id, origin_slot, target_id, target_slot = fields
        if not (_is_int(link_id) and _is_int(origin_slot) and _is_int(target_slot)):
            raise self.fail(f"{where}: link #{idx} has a missing or non-numeric id or slot")
        for end in (origin_id, target_id):
            if isinstance(end, bool) or not isinstance(end, int | str):
                raise self.fail(f"{where}: link {link_id} does not name the nodes it joins")
        return UiLink(
            link_id,
            origin_id,
            origin_slot,
            target_id,
            target_slot,
            link_type if isinstance(link_type, str) else str(link_type),
        )

    def ports(self, raw: Any, where: str) -> list[SubgraphPort]:
        if not isinstance(raw, list):
            raise self.fail(f"{where} must be a list")
        ports = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise self.fail(f"{where}: #{i} has no 'name'")
            ids = item.get("linkIds")
            port_type = item.get("type", "*")
            ports.append(
                SubgraphPort(
                    name=item["name"],
                    type=port_type if isinstance(port_type, str) else "*",
                    link_ids=[x for x in ids if _is_int(x)] if isinstance(ids, list) else [],
                )
            )
        return ports


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_js_index(key: str) -> bool:
    return bool(_JS_INDEX_RE.match(key)) and int(key) <= _JS_MAX_INDEX


def js_key_order(keys: Mapping[str, Any]) -> list[str]:
    """Keys as a JavaScript object lists them: array-index keys ascending, then the rest as inserted."""
    ints = sorted((k for k in keys if _is_js_index(k)), key=int)
    return ints + [k for k in keys if not _is_js_index(k)]


def execution_order(graph: UiGraph) -> list[UiNode]:
    """LiteGraph's computeExecutionOrder: a topological sort seeded in file order; cycles go last."""
    pending: dict[str, UiNode] = {}
    remaining: dict[str, int] = {}
    ready: list[UiNode] = []
    for key, node in graph.nodes.items():
        pending[key] = node
        count = sum(1 for s in node.inputs if s.link is not None)
        if count:
            remaining[key] = count
        else:
            ready.append(node)
    order: list[UiNode] = []
    seen_links: set[int] = set()
    while ready:
        node = ready.pop(0)
        order.append(node)
        pending.pop(str(node.id), None)
        for links in node.output_links:
            for link_id in links:
                link = graph.links.get(link_id)
                if link is None or link_id in seen_links:
                    continue
                seen_links.add(link_id)
                target_key = str(link.target_id)
                if target_key not in graph.nodes or target_key not in remaining:
                    continue
                remaining[target_key] -= 1
                if remaining[target_key] == 0:
                    ready.append(graph.nodes[target_key])
    order.extend(pending[k] for k in js_key_order(pending))
    return order


def types_match(a: str, b: str) -> bool:
    """LiteGraph's isValidConnection: `*`/empty match anything, comma lists match any member."""
    if a in ("", "*") or b in ("", "*") or a == b:
        return True
    la, lb = a.lower(), b.lower()
    if "," not in la and "," not in lb:
        return la == lb
    return any(types_match(x, y) for x in la.split(",") for y in lb.split(","))


def bypass_slot(node: UiNode, index: int, want: str) -> int:
    """Which input a bypassed node passes through to output `index` (the editor's _getBypassSlotIndex)."""
    inputs = node.inputs
    if not inputs:
        return -1
    if want in ("*", ""):
        return index if index < len(inputs) else 0
    out_type = node.outputs[index].type if index < len(node.outputs) else "*"
    if (
        index < len(inputs)
        and types_match(inputs[index].type, out_type)
        and types_match(inputs[index].type, want)
    ):
        return index
    exact = next((i for i, s in enumerate(inputs) if s.type == want), -1)
    if exact >= 0:
        return exact
    return next(
        (i for i, s in enumerate(inputs) if types_match(s.type, out_type) and types_match(s.type, want)), -1
    )
