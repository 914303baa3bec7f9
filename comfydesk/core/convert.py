"""UI-format (the graph the ComfyUI editor saves) to API-format (what `POST /prompt` takes).

The rules follow the web frontend's `graphToPrompt` (comfyui-frontend-package 1.35.9) and its
`ExecutableNodeDTO` link resolution, so the output matches what the editor itself would queue:

- widget values are matched to the widget inputs of the node definition, in definition order; the extra
  `control_after_generate` value after a seed and the image-upload button value are skipped (the control
  modes are kept apart, in `ConversionResult.seed_controls`);
- a V3 dynamic combo is its option's value followed by that option's sub-widgets, emitted flat as
  `<combo>.<sub>` (linked sub-inputs take their links in place); autogrow and match-type inputs are links;
- with `lenient`, a node type the catalog lacks is emitted as the editor does: no `class_type`, its
  widget values under "UNKNOWN" (the last one wins), `_meta` without a title;
- muted nodes (mode 2) are left out and links from them removed; bypassed nodes (mode 4) are left out and
  their consumers wired to the bypassed node's input of the matching type;
- Reroutes are followed, a PrimitiveNode's value is written into every widget it feeds, notes are dropped;
- subgraph instances are expanded: inner nodes get ids `"<instance>:<inner>"` and links crossing the
  boundary point straight at the real node;
- key order is JavaScript's: integer-like ids ascending, then the rest in execution order.

Whatever was dropped, expanded or inferred is listed in the `ConversionReport`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from comfydesk.core.errors import ConversionError, UnknownNodeTypeError, WorkflowFormatError
from comfydesk.core.graph import ApiGraph, ApiNode
from comfydesk.core.nodes import NodeCatalog, NodeDef
from comfydesk.core.uigraph import (
    SUBGRAPH_INPUT_NODE,
    SUBGRAPH_OUTPUT_NODE,
    SubgraphPort,
    UiGraph,
    UiGraphParser,
    UiLink,
    UiNode,
    bypass_slot,
    execution_order,
    js_key_order,
)
from comfydesk.core.widget_values import (
    has_control_widget,
    primitive_control,
    primitive_value,
    short_repr,
    unknown_widget_values,
    widget_values,
    wrap_value,
)

__all__ = ["ConversionReport", "ConversionResult", "convert_ui_workflow", "is_ui_workflow"]

MODE_NEVER = 2  # "muted"
MODE_BYPASS = 4
NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
#: Node types that live only in the editor and never reach the server.
FRONTEND_ONLY_TYPES = NOTE_TYPES | {"PrimitiveNode", "Reroute"}
#: Bounds on what one workflow may expand to (a small file must not make a huge graph, nor a deep one).
MAX_SUBGRAPH_DEPTH = 32
MAX_EXPANDED_NODES = 20_000
#: Nodes a single link may pass through (Reroutes, bypassed nodes, subgraph borders) before its source.
MAX_LINK_HOPS = 256
#: Before `control_after_generate` existed the editor gave these INT inputs a seed control widget.


@dataclass
class ConversionReport:
    """What the conversion changed on the way, in words a user can read."""

    dropped: list[str] = field(default_factory=list)
    expanded: list[str] = field(default_factory=list)
    guessed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Every line, dropped first, for the CLI's stderr."""
        return [*self.dropped, *self.expanded, *self.guessed]


@dataclass
class ConversionResult:
    graph: ApiGraph
    report: ConversionReport
    #: The saved "control after generate" mode ("fixed", "increment", "decrement", "randomize", as stored)
    #: of each seed-like widget value of the graph, by (node id as emitted, input name). A seed that takes
    #: a PrimitiveNode's value has the primitive's mode; linked seeds and files saved without modes have none.
    seed_controls: dict[tuple[str, str], str] = field(default_factory=dict)


def is_ui_workflow(doc: object) -> bool:
    """True for the editor's graph format (`nodes` list plus `links`), not the `/api/v1` node list."""
    if not isinstance(doc, Mapping):
        return False
    nodes = doc.get("nodes")
    if not isinstance(nodes, list):
        return False
    if isinstance(doc.get("links"), list):
        return True
    # A graph saved with its links left out still carries editor-only node keys.
    return any(isinstance(n, Mapping) and ("widgets_values" in n or "pos" in n) for n in nodes)


# ------------------------------------------------------------------------------------------ conversion


@dataclass
class _Dto:
    """One node as the executor sees it: a real node, or a subgraph instance, with its full id."""

    exec_id: str
    node: UiNode
    graph: UiGraph
    path: tuple[str, ...]
    instance: _Dto | None  # the subgraph instance this node sits in


@dataclass(frozen=True)
class _Ref:
    origin: str
    slot: int


@dataclass(frozen=True)
class _Value:
    value: Any
    primitive: str | None = None  # the PrimitiveNode it came from
    control: str | None = None  # the control mode saved next to the value where it came from


_Resolved = _Ref | _Value | None


class _Converter:
    def __init__(
        self, doc: Mapping[str, Any], catalog: NodeCatalog, source: str | None, lenient: bool = False
    ) -> None:
        self.catalog = catalog
        self.lenient = lenient
        self.source = source
        self.report = ConversionReport()
        parser = UiGraphParser(source)
        self.root = parser.graph(doc, "workflow")
        self.subgraphs: dict[str, UiGraph] = {}
        definitions = doc.get("definitions")
        raw_subgraphs = definitions.get("subgraphs", []) if isinstance(definitions, Mapping) else []
        if not isinstance(raw_subgraphs, list):
            raise parser.fail("'definitions.subgraphs' must be a list")
        for i, raw in enumerate(raw_subgraphs):
            sg_id = raw.get("id") if isinstance(raw, Mapping) else None
            if not isinstance(sg_id, str) or not sg_id:
                raise parser.fail(f"subgraph definition #{i} has no 'id'")
            name = raw.get("name")
            label = f"subgraph '{name}'" if isinstance(name, str) and name else f"subgraph {sg_id}"
            self.subgraphs[sg_id] = parser.graph(raw, label, name=name if isinstance(name, str) else sg_id)
        self.dtos: dict[str, _Dto] = {}
        self.unknown: dict[str, list[str]] = {}
        self.primitive_uses: dict[str, list[str]] = {}
        self._via_bypass: list[str] = []
        self._via_reroute: list[str] = []
        self.seed_controls: dict[tuple[str, str], str] = {}

    # ---- expansion

    def run(self) -> ConversionResult:
        self.expand(self.root, (), None, execution_order(self.root), ())
        if self.unknown and not self.lenient:
            where = "; ".join(f"{t} at node {', '.join(ids)}" for t, ids in sorted(self.unknown.items()))
            raise UnknownNodeTypeError(self.unknown, source=self.source, where=where)
        output = self.emit()
        self.report_primitives()
        order = js_key_order(output)
        controls = {
            (node_id, name): self.seed_controls[(node_id, name)]
            for node_id in order
            for name in output[node_id].inputs
            if (node_id, name) in self.seed_controls
        }
        return ConversionResult(ApiGraph({k: output[k] for k in order}), self.report, controls)

    def expand(
        self,
        graph: UiGraph,
        path: tuple[str, ...],
        instance: _Dto | None,
        order: list[UiNode],
        stack: tuple[str, ...],
    ) -> None:
        if len(stack) > MAX_SUBGRAPH_DEPTH:
            raise ConversionError(
                f"subgraphs are nested more than {MAX_SUBGRAPH_DEPTH} levels deep "
                f"(at subgraph instance {':'.join(path)})",
                source=self.source,
                hint="Real workflows nest a few levels at most; the file is damaged or made to be hostile.",
            )
        for node in order:
            if len(self.dtos) >= MAX_EXPANDED_NODES:
                raise ConversionError(
                    f"the workflow expands to more than {MAX_EXPANDED_NODES:,} nodes once its subgraphs "
                    "are unpacked",
                    source=self.source,
                    hint="Split it into smaller workflows; a file this size is damaged or was made to be "
                    "hostile.",
                )
            exec_id = ":".join((*path, str(node.id)))
            dto = _Dto(exec_id, node, graph, path, instance)
            self.dtos[exec_id] = dto
            label = f"node {exec_id} ({node.type})"
            sub = self.subgraphs.get(node.type)
            if sub is not None:
                label = f"subgraph instance {exec_id} ('{sub.name}')"
                if node.mode in (MODE_NEVER, MODE_BYPASS):
                    how = "muted" if node.mode == MODE_NEVER else "bypassed, its consumers take its inputs"
                    self.report.dropped.append(f"{label} dropped with everything inside: {how}")
                    continue
                if node.type in stack:
                    raise ConversionError(f"{label} contains itself", source=self.source)
                before = len(self.dtos)
                self.expand(sub, (*path, str(node.id)), dto, list(sub.nodes.values()), (*stack, node.type))
                self.report.expanded.append(
                    f"{label} expanded: {len(self.dtos) - before} inner nodes as {exec_id}:<id>"
                )
            elif node.type in NOTE_TYPES:
                self.report.dropped.append(f"{label} dropped: notes are not executable")
            elif node.type == "Reroute":
                self.report.expanded.append(f"{label} collapsed: links through it go to its source")
            elif node.type == "PrimitiveNode":
                self.primitive_uses.setdefault(exec_id, [])
            elif node.mode == MODE_NEVER:
                self.report.dropped.append(f"{label} dropped: muted")
            elif node.mode == MODE_BYPASS:
                self.report.dropped.append(f"{label} dropped: bypassed, its consumers take its inputs")
            elif node.type not in self.catalog:
                self.unknown.setdefault(node.type, []).append(exec_id)
                if self.lenient:
                    self.report.guessed.append(
                        f"{label}: the server has no such node type; emitted without 'class_type' "
                        "as the editor does"
                    )

    # ---- output

    def emit(self) -> dict[str, ApiNode]:
        output: dict[str, ApiNode] = {}
        for dto in self.dtos.values():
            node = dto.node
            if (
                node.type in FRONTEND_ONLY_TYPES
                or node.type in self.subgraphs
                or node.mode in (MODE_NEVER, MODE_BYPASS)
            ):
                continue
            node_def = self.catalog.get(node.type)
            label = f"node {dto.exec_id} ({node.type})"
            controls: dict[str, str] = {}
            if node_def is None:  # lenient: the editor's placeholder for a missing node type
                inputs = unknown_widget_values(node)
                node_def = NodeDef(id="")
            else:
                inputs = widget_values(node, node_def, label, self.report.guessed, controls)
            for index, slot in enumerate(node.inputs):
                self._via_bypass.clear()
                self._via_reroute.clear()
                resolved = self.resolve_input(dto, index, set(), None)
                if resolved is None:
                    continue
                if isinstance(resolved, _Value):
                    if resolved.primitive is not None:
                        if slot.name not in inputs:
                            self.report.guessed.append(
                                f"{label} input '{slot.name}': value of PrimitiveNode {resolved.primitive} "
                                "ignored, the input is not a widget"
                            )
                            continue
                        self.primitive_uses[resolved.primitive].append(f"node {dto.exec_id} '{slot.name}'")
                    inputs[slot.name] = wrap_value(copy.deepcopy(resolved.value))
                    # The mode saved where the value comes from (the primitive, the promoted widget) rules.
                    controls.pop(slot.name, None)
                    spec = node_def.input(slot.name)
                    if resolved.control is not None and spec is not None and has_control_widget(spec):
                        controls[slot.name] = resolved.control
                    continue
                inputs[slot.name] = [resolved.origin, resolved.slot]
                controls.pop(slot.name, None)
                if slot.name not in inputs and node_def.input(slot.name) is None:
                    self.report.guessed.append(f"{label} input '{slot.name}' is not in the definition")
                if self._via_bypass:
                    self.report.expanded.append(
                        f"{label} input '{slot.name}' wired to {resolved.origin} output {resolved.slot} "
                        f"past bypassed node {', '.join(self._via_bypass)}"
                    )
            for name, mode in controls.items():
                self.seed_controls[(dto.exec_id, name)] = mode
            known = node.type in self.catalog
            output[dto.exec_id] = ApiNode(
                id=dto.exec_id,
                class_type=node.type if known else "",
                inputs=inputs,
                title=node.title or (node_def.title if known else ""),
            )
        # As the editor does: a link to a node that is not in the prompt (muted) is removed.
        for node_id, api_node in output.items():
            for name, value in list(api_node.inputs.items()):
                if (
                    isinstance(value, list)
                    and len(value) == 2
                    and isinstance(value[0], str)
                    and value[0] not in output
                ):
                    del api_node.inputs[name]
                    self.seed_controls.pop((node_id, name), None)
                    self.report.dropped.append(
                        f"node {node_id} ({api_node.class_type}) input '{name}' left unconnected: "
                        f"its source node {value[0]} is not executed"
                    )
        return output

    def report_primitives(self) -> None:
        for exec_id, uses in self.primitive_uses.items():
            node = self.dtos[exec_id].node
            title = f" '{node.title}'" if node.title else ""
            value = primitive_value(node)
            if uses:
                self.report.expanded.append(
                    f"node {exec_id} (PrimitiveNode{title}) inlined: value {short_repr(value)} written into "
                    + ", ".join(uses)
                )
            else:
                self.report.dropped.append(f"node {exec_id} (PrimitiveNode{title}) dropped: it feeds nothing")

    # ---- widgets

    def promoted_value(self, graph: UiGraph, port: SubgraphPort) -> _Resolved:
        """The value of a subgraph input nothing outside feeds: the inner widget it is promoted from."""
        for link_id in port.link_ids:
            link = graph.links.get(link_id)
            target = graph.nodes.get(str(link.target_id)) if link else None
            if link is None or target is None or link.target_slot >= len(target.inputs):
                continue
            slot = target.inputs[link.target_slot]
            node_def = self.catalog.get(target.type)
            if node_def is None:
                continue
            controls: dict[str, str] = {}
            values = widget_values(target, node_def, "", [], controls)  # its guesses are not reported twice
            name = slot.widget or slot.name
            if name in values:
                return _Value(values[name], control=controls.get(name))
        return None

    # ---- link resolution (the editor's ExecutableNodeDTO.resolveInput / resolveOutput)

    def fail(self, message: str) -> ConversionError:
        return ConversionError(message, source=self.source)

    def _hop(self, dto: _Dto, visited: set[tuple[str, str, str, int]]) -> None:
        if len(visited) >= 2 * MAX_LINK_HOPS:
            raise self.fail(
                f"node {dto.exec_id} ({dto.node.type}): a link passes through more than {MAX_LINK_HOPS} "
                "Reroutes, bypassed nodes or subgraph borders before it reaches its source"
            )

    def resolve_input(
        self, dto: _Dto, index: int, visited: set[tuple[str, str, str, int]], want: str | None
    ) -> _Resolved:
        node = dto.node
        key = (dto.graph.name, str(node.id), "I", index)
        if key in visited:
            raise self.fail(f"node {dto.exec_id} ({node.type}): its links go round in a circle")
        self._hop(dto, visited)
        visited.add(key)
        if index >= len(node.inputs):
            raise self.fail(f"node {dto.exec_id} ({node.type}) has no input #{index}")
        slot = node.inputs[index]
        if slot.link is None:
            return None
        link = dto.graph.links.get(slot.link)
        if link is None:
            raise self.fail(
                f"node {dto.exec_id} ({node.type}) input '{slot.name}' uses link {slot.link}, "
                "which the workflow does not have"
            )
        instance = dto.instance
        if instance is not None and link.origin_id == SUBGRAPH_INPUT_NODE:
            return self.resolve_from_instance(dto, instance, link, visited)
        origin = dto.graph.nodes.get(str(link.origin_id))
        if origin is None:
            raise self.fail(
                f"node {dto.exec_id} ({node.type}) input '{slot.name}' is linked (link {link.id}) from "
                f"node {link.origin_id}, which does not exist"
            )
        origin_dto = self.dtos.get(":".join((*dto.path, str(origin.id))))
        if origin_dto is None:  # pragma: no cover - every node of an expanded graph has a DTO
            raise self.fail(f"node {dto.exec_id}: source node {origin.id} was not expanded")
        return self.resolve_output(origin_dto, link.origin_slot, want or slot.type, visited)

    def resolve_from_instance(
        self, dto: _Dto, instance: _Dto, link: UiLink, visited: set[tuple[str, str, str, int]]
    ) -> _Resolved:
        """A link that comes in through the subgraph's input: follow it outside the instance."""
        ports = dto.graph.inputs
        if link.origin_slot >= len(ports):
            raise self.fail(
                f"node {dto.exec_id} ({dto.node.type}) is linked from input #{link.origin_slot} of "
                f"subgraph '{dto.graph.name}', which has {len(ports)} inputs"
            )
        port = ports[link.origin_slot]
        outer = next((i for i, s in enumerate(instance.node.inputs) if s.name == port.name), None)
        if outer is None or instance.node.inputs[outer].link is None:
            return self.promoted_value(dto.graph, port)
        return self.resolve_input(instance, outer, visited, None)

    def resolve_output(
        self, dto: _Dto, index: int, want: str, visited: set[tuple[str, str, str, int]]
    ) -> _Resolved:
        node = dto.node
        key = (dto.graph.name, str(node.id), "O", index)
        if key in visited:
            raise self.fail(f"node {dto.exec_id} ({node.type}): its links go round in a circle")
        self._hop(dto, visited)
        visited.add(key)
        if node.mode == MODE_BYPASS:
            match = bypass_slot(node, index, want)
            if match < 0:
                self.report.guessed.append(
                    f"node {dto.exec_id} ({node.type}) is bypassed but has no {want} input to pass "
                    "through; the link is left out"
                )
                return None
            self._via_bypass.append(dto.exec_id)
            return self.resolve_input(dto, match, visited, None)
        if node.type in self.subgraphs:
            if node.mode == MODE_NEVER:
                return _Ref(dto.exec_id, index)  # removed later with every other link to a muted node
            return self.resolve_subgraph_output(dto, index, want, visited)
        if node.type == "Reroute":
            if not node.inputs:
                return None
            self._via_reroute.append(dto.exec_id)
            return self.resolve_input(dto, 0, visited, want)
        if node.type == "PrimitiveNode":
            return _Value(primitive_value(node), primitive=dto.exec_id, control=primitive_control(node))
        if node.type in NOTE_TYPES:
            return None
        return _Ref(dto.exec_id, index)

    def resolve_subgraph_output(
        self, dto: _Dto, index: int, want: str, visited: set[tuple[str, str, str, int]]
    ) -> _Resolved:
        sub = self.subgraphs[dto.node.type]
        if index >= len(sub.outputs):
            raise self.fail(
                f"subgraph instance {dto.exec_id} has no output #{index} "
                f"('{sub.name}' has {len(sub.outputs)})"
            )
        inner_link = next(
            (
                link
                for link in sub.links.values()
                if link.target_id == SUBGRAPH_OUTPUT_NODE and link.target_slot == index
            ),
            None,
        )
        if inner_link is None:
            return None
        if inner_link.origin_id == SUBGRAPH_INPUT_NODE:  # an input wired straight to an output
            ports = sub.inputs
            name = ports[inner_link.origin_slot].name if inner_link.origin_slot < len(ports) else None
            outer = next((i for i, s in enumerate(dto.node.inputs) if s.name == name), None)
            return None if outer is None else self.resolve_input(dto, outer, visited, None)
        inner = sub.nodes.get(str(inner_link.origin_id))
        if inner is None:
            raise self.fail(
                f"subgraph '{sub.name}' output #{index} comes from node {inner_link.origin_id}, "
                "which does not exist"
            )
        inner_dto = self.dtos[f"{dto.exec_id}:{inner.id}"]
        return self.resolve_output(inner_dto, inner_link.origin_slot, want, visited)


def convert_ui_workflow(
    doc: Mapping[str, Any], catalog: NodeCatalog, *, source: str | None = None, lenient: bool = False
) -> ConversionResult:
    """Convert an editor (UI-format) workflow to the API format the way the ComfyUI editor queues it.

    Raises WorkflowFormatError for a broken structure, UnknownNodeTypeError naming every node type the
    catalog lacks (unless `lenient`: then such nodes are emitted as the editor does, without `class_type`,
    and reported), and ConversionError for links that cannot be followed.
    """
    if not isinstance(doc, Mapping):
        raise WorkflowFormatError(
            f"a UI-format workflow must be a JSON object, got {type(doc).__name__}", source=source
        )
    try:
        return _Converter(doc, catalog, source, lenient).run()
    except RecursionError:  # the bounds above should make this unreachable; never show a traceback
        raise ConversionError(
            "the workflow is nested too deeply to convert",
            source=source,
            hint="The file is damaged or was made to be hostile.",
        ) from None
