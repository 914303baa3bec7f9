"""Check an API graph against the node definitions before sending it, as ComfyUI's `validate_prompt` does.

Each problem becomes a `ValidationIssue` placed on its node and input. The `kind` is ComfyUI's error type
where ComfyUI has one (`required_input_missing`, `value_bigger_than_max`, `value_not_in_list`, ...); where
ComfyUI only raises (`exception_during_validation` for a link to a missing node or a bad output index) we
name the cause (`link_to_missing_node`, `bad_output_index`); `unknown_node_type` stands for `invalid_prompt`.

Unlike ComfyUI, which stops at the first unknown node type and only checks nodes an output depends on, this
reports every problem in every node, so a form can mark all of them at once.
"""

from __future__ import annotations

import math
from typing import Any

from comfydesk.core.errors import ValidationError, ValidationIssue
from comfydesk.core.graph import ApiGraph, ApiNode, is_link
from comfydesk.core.nodes import DYNAMIC_TYPES, InputSpec, NodeCatalog, NodeDef, live_inputs
from comfydesk.core.workflow import PLACEHOLDER_RE

__all__ = ["ISSUE_KINDS", "types_compatible", "validate_graph", "validate_or_raise"]

#: Every `ValidationIssue.kind` this module produces.
ISSUE_KINDS = frozenset(
    {
        "unknown_node_type",
        "prompt_no_outputs",
        "required_input_missing",
        "link_to_missing_node",
        "bad_output_index",
        "bad_linked_input",
        "link_type_mismatch",
        "link_required",
        "invalid_input_type",
        "value_smaller_than_min",
        "value_bigger_than_max",
        "value_not_in_list",
    }
)


def types_compatible(received: str, expected: str) -> bool:
    """ComfyUI's `validate_node_input`: equal, a `*` on either side, or overlapping comma-separated types."""
    if received == expected:
        return True
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    if "*" in got or "*" in want:
        return True
    return bool(got & want)


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    def __init__(self, graph: ApiGraph, catalog: NodeCatalog, *, allow_placeholders: bool = False) -> None:
        self.graph = graph
        self.catalog = catalog
        self.allow_placeholders = allow_placeholders
        self.issues: list[ValidationIssue] = []

    def add(
        self, node: ApiNode, kind: str, message: str, *, input_name: str | None = None, received: Any = None
    ) -> None:
        title = node.title
        if not title:
            ndef = self.catalog.get(node.class_type)
            title = ndef.title if ndef else node.class_type
        self.issues.append(
            ValidationIssue(
                node_id=node.id,
                node_title=title,
                input_name=input_name,
                message=message,
                kind=kind,
                received=received,
            )
        )

    def run(self) -> list[ValidationIssue]:
        has_output = False
        for node in self.graph.values():
            ndef = self.catalog.get(node.class_type)
            if ndef is None:
                self.add(
                    node,
                    "unknown_node_type",
                    f"The server has no node type '{node.class_type}'; install the custom nodes that "
                    "provide it.",
                )
                continue
            has_output = has_output or ndef.output_node
            self.check_node(node, ndef)
        if not has_output and not any(i.kind == "unknown_node_type" for i in self.issues):
            self.issues.insert(
                0,
                ValidationIssue(
                    node_id="",
                    message="The workflow has no output node (such as Save Image or Preview Image), "
                    "so running it would produce nothing.",
                    kind="prompt_no_outputs",
                ),
            )
        return self.issues

    def check_node(self, node: ApiNode, ndef: NodeDef) -> None:
        # V3 dynamic inputs are expanded as the server does: the chosen option's `<combo>.<sub>` inputs,
        # autogrow slots such as "images.image0", match-type inputs typed by what they allow.
        for spec in live_inputs(ndef.inputs, node.inputs):
            if spec.hidden:  # filled by the server
                continue
            if spec.name not in node.inputs:
                if spec.required:
                    self.add(
                        node,
                        "required_input_missing",
                        f"The required input '{spec.label}' is missing.",
                        input_name=spec.name,
                    )
                continue
            value = node.inputs[spec.name]
            if isinstance(value, list | tuple):
                self.check_link(node, spec, value)
            else:
                self.check_literal(node, spec, value)

    def check_link(self, node: ApiNode, spec: InputSpec, value: list[Any] | tuple[Any, ...]) -> None:
        if not is_link(value):
            self.add(
                node,
                "bad_linked_input",
                f"'{spec.label}' holds {_fmt(value)}, which is not a link [node id, output index].",
                input_name=spec.name,
                received=value,
            )
            return
        src_id, index = str(value[0]), value[1]
        src = self.graph.get(src_id)
        if src is None:
            self.add(
                node,
                "link_to_missing_node",
                f"'{spec.label}' is linked to node {src_id}, which is not in the workflow.",
                input_name=spec.name,
                received=list(value),
            )
            return
        src_def = self.catalog.get(src.class_type)
        if src_def is None:  # reported on the source node already
            return
        if not 0 <= index < len(src_def.outputs):
            self.add(
                node,
                "bad_output_index",
                f"'{spec.label}' is linked to output {index} of node {src_id} ({src_def.title}), "
                f"which has {len(src_def.outputs)} output{'s' if len(src_def.outputs) != 1 else ''}.",
                input_name=spec.name,
                received=list(value),
            )
            return
        out_type = src_def.outputs[index].type
        if out_type in DYNAMIC_TYPES:  # resolved by the server from what flows in
            return
        if not types_compatible(out_type, spec.type):
            self.add(
                node,
                "link_type_mismatch",
                f"'{spec.label}' takes {spec.type} but is linked to output {index} of node {src_id} "
                f"({src_def.title}), which gives {out_type}.",
                input_name=spec.name,
                received=list(value),
            )

    def check_literal(self, node: ApiNode, spec: InputSpec, value: Any) -> None:
        if isinstance(value, dict) and "__value__" in value:  # ComfyUI's wrapper for list-valued widgets
            value = value["__value__"]
        if spec.is_link_only:
            self.add(
                node,
                "link_required",
                f"'{spec.label}' needs a link from a node that gives {spec.type}, "
                f"not the value {_fmt(value)}.",
                input_name=spec.name,
                received=value,
            )
            return
        if self.allow_placeholders and isinstance(value, str) and PLACEHOLDER_RE.search(value):
            return  # a template: the form fills it before it is sent
        converted = self.convert(node, spec, value)
        if converted is None:
            return
        if spec.type in ("INT", "FLOAT") and isinstance(converted, int | float):
            if spec.min is not None and converted < spec.min:
                self.add(
                    node,
                    "value_smaller_than_min",
                    f"'{spec.label}' is {converted}, smaller than the minimum of {spec.min}.",
                    input_name=spec.name,
                    received=value,
                )
                return
            if spec.max is not None and converted > spec.max:
                self.add(
                    node,
                    "value_bigger_than_max",
                    f"'{spec.label}' is {converted}, bigger than the maximum of {spec.max}.",
                    input_name=spec.name,
                    received=value,
                )
                return
        # Remote combos fetch their options from elsewhere, and an empty list means we do not know what the
        # server has (e.g. a model folder we were not shown), so neither can prove a value wrong.
        if spec.choices and not spec.remote and not spec.multiselect:
            try:
                found = converted in spec.choices
            except TypeError:  # unhashable/uncomparable value
                found = False
            if not found:
                shown = ", ".join(map(str, spec.choices[:8])) + (", ..." if len(spec.choices) > 8 else "")
                self.add(
                    node,
                    "value_not_in_list",
                    f"'{spec.label}' is {_fmt(value)}, which is not one of the server's options ({shown}).",
                    input_name=spec.name,
                    received=value,
                )

    def convert(self, node: ApiNode, spec: InputSpec, value: Any) -> Any:
        """Convert as ComfyUI does (`int()`, `float()`); None after reporting when that fails."""
        try:
            if spec.type == "INT":
                # ComfyUI runs int(value): numeric strings pass, text does not. Booleans and None do not make
                # sense here even where Python would convert them, so they are refused.
                if value is None or isinstance(value, bool | dict):
                    raise ValueError(f"{type(value).__name__} is not a number")
                return int(value)
            if spec.type == "FLOAT":
                if value is None or isinstance(value, bool | dict):
                    raise ValueError(f"{type(value).__name__} is not a number")
                result = float(value)
                if math.isnan(result):
                    raise ValueError("not a number")
                return result
            if spec.type == "BOOLEAN":
                # ComfyUI runs bool(value), which makes the text "false" True; refuse anything but a bool.
                if not isinstance(value, bool):
                    raise ValueError(f"{_fmt(value)} is not true or false")
                return value
            if spec.type == "STRING" and isinstance(value, dict):
                raise ValueError("an object is not text")
        except (ValueError, TypeError, OverflowError) as exc:
            kind_word = {"INT": "a whole number", "FLOAT": "a number", "BOOLEAN": "true or false"}
            self.add(
                node,
                "invalid_input_type",
                f"'{spec.label}' must be {kind_word.get(spec.type, 'text')}, got {_fmt(value)} ({exc}).",
                input_name=spec.name,
                received=value,
            )
            return None
        return value


def validate_graph(
    graph: ApiGraph, catalog: NodeCatalog, *, allow_placeholders: bool = False
) -> list[ValidationIssue]:
    """Every problem of `graph` against `catalog`, in graph order (a missing output node comes first).

    With `allow_placeholders`, a literal holding a `{name}` placeholder is not checked (stored templates).
    """
    return _Checker(graph, catalog, allow_placeholders=allow_placeholders).run()


def validate_or_raise(graph: ApiGraph, catalog: NodeCatalog, *, allow_placeholders: bool = False) -> None:
    """Raise `ValidationError` listing every problem, or return when the graph is fine."""
    issues = validate_graph(graph, catalog, allow_placeholders=allow_placeholders)
    if issues:
        raise ValidationError(issues)
