"""Forms for workflows: one field per `{placeholder}` and per widget input, typed by the node definitions.

`build_form(workflow, catalog)` gives a `FormSpec`; `FormSpec.defaults()` holds the workflow's own values, and
`FormSpec.fill(values)` turns edited values back into the API graph to submit (checked field by field, then
against the node definitions). `next_seed` applies a seed's control mode after a run, as ComfyUI's frontend
does.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from comfydesk.core.errors import UnknownNodeTypeError, ValidationError, ValidationIssue
from comfydesk.core.graph import ApiGraph, is_link
from comfydesk.core.nodes import AUTOGROW, MATCH_TYPE, InputSpec, NodeCatalog, live_inputs
from comfydesk.core.validate import validate_graph
from comfydesk.core.workflow import PLACEHOLDER_RE, Workflow, find_placeholders

__all__ = [
    "FieldKind",
    "FormField",
    "FormGroup",
    "FormSpec",
    "SeedControl",
    "SizePreset",
    "build_form",
    "humanize",
    "model_family",
    "next_seed",
    "size_presets",
]

SEED_MAX = 2**64 - 1
_SEED_NAMES = frozenset({"seed", "noise_seed"})
_ACRONYMS = {
    "cfg": "CFG",
    "vae": "VAE",
    "clip": "CLIP",
    "id": "ID",
    "url": "URL",
    "lora": "LoRA",
    "ckpt": "checkpoint",
}


class FieldKind(StrEnum):
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    TEXT = "text"  # multi-line string
    BOOLEAN = "boolean"
    CHOICE = "choice"
    IMAGE = "image"  # a choice of uploaded images (COMBO with image upload)
    SEED = "seed"  # INT with a control mode applied after each run


class SeedControl(StrEnum):
    FIXED = "fixed"
    RANDOMIZE = "randomize"
    INCREMENT = "increment"
    DECREMENT = "decrement"


@dataclass(frozen=True)
class FormField:
    """One value the user can set: a placeholder, or a widget input of one node."""

    key: str
    label: str
    kind: FieldKind
    node_id: str | None = None
    input_name: str | None = None
    default: Any = None
    value: Any = None
    min: int | float | None = None
    max: int | float | None = None
    step: int | float | None = None
    round: int | float | bool | None = None
    multiline: bool = False
    choices: tuple[Any, ...] | None = None
    tooltip: str = ""
    required: bool = False
    is_placeholder: bool = False
    targets: tuple[tuple[str, str], ...] = ()
    control: SeedControl | None = None
    display: str = ""  # the definition's display hint, e.g. "color" for an INT holding 0xRRGGBB
    #: A V3 dynamic combo: each option with the fields of its sub-inputs (input names `<combo>.<sub>`, keys
    #: `<node>.<combo>.<sub>`). Sub-inputs fed by links in the workflow have no field.
    options_fields: tuple[tuple[str, tuple[FormField, ...]], ...] = ()
    #: Starts in the form's collapsed "Advanced" section: an input only the graph cares about.
    advanced: bool = False
    #: Other inputs the workflow keeps at this field's value (width fed to two nodes): `fill` sets them too.
    linked: tuple[tuple[str, str], ...] = ()

    @property
    def is_dynamic_combo(self) -> bool:
        return bool(self.options_fields)

    def sub_fields(self, option: Any = None) -> tuple[FormField, ...]:
        """The sub-fields shown for `option` (default: the field's current value)."""
        chosen = self.value if option is None else option
        return next((subs for key, subs in self.options_fields if key == chosen), ())


@dataclass(frozen=True)
class FormGroup:
    """The fields of one node."""

    node_id: str
    title: str
    class_type: str
    fields: tuple[FormField, ...]
    #: Read-only lines about inputs fed by links: an autogrow's connected slots, a match type's type.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FormSpec:
    """The form of a workflow; `graph` and `catalog` are what `fill` builds on."""

    workflow_name: str
    placeholders: tuple[FormField, ...]
    groups: tuple[FormGroup, ...]
    graph: ApiGraph = field(repr=False, compare=False)
    catalog: NodeCatalog = field(repr=False, compare=False)

    def fields(self) -> list[FormField]:
        """Placeholder fields first, then every node's fields in graph order (a dynamic combo's sub-fields
        are under it, in `sub_fields`)."""
        return [*self.placeholders, *(f for g in self.groups for f in g.fields)]

    def field(self, key: str) -> FormField:
        for f in self.fields():
            if f.key == key:
                return f
            for _, subs in f.options_fields:
                for sub in subs:
                    if sub.key == key:
                        return sub
        raise KeyError(key)

    def field_for(self, node_id: str, input_name: str | None) -> FormField | None:
        """The field that sets `input_name` of `node_id` (a placeholder's when it sits there), if any."""
        for f in self.fields():
            spot = (node_id, input_name)
            if (f.node_id, f.input_name) == spot or spot in f.targets or spot in f.linked:
                return f
        return None

    def defaults(self) -> dict[str, Any]:
        """Each field's current value in the workflow (a placeholder's: its input's default, or ""); a
        dynamic combo's sub-fields for its current option follow it."""
        out: dict[str, Any] = {}
        for f in self.fields():
            out[f.key] = copy.deepcopy(f.value)
            out.update((sub.key, copy.deepcopy(sub.value)) for sub in f.sub_fields())
        return out

    def _title_of(self, f: FormField) -> str:
        node_id = f.node_id or (f.targets[0][0] if f.targets else None)
        if node_id is None or node_id not in self.graph:
            return ""
        node = self.graph[node_id]
        ndef = self.catalog.get(node.class_type)
        return node.title or (ndef.title if ndef else node.class_type)

    def _spec_of(self, f: FormField, values: Mapping[str, Any] | None = None) -> InputSpec | None:
        node_id, input_name = (f.node_id, f.input_name) if not f.targets else f.targets[0]
        if node_id is None or input_name is None or node_id not in self.graph:
            return None
        ndef = self.catalog.get(self.graph[node_id].class_type)
        if ndef is None:
            return None
        if "." in input_name and values is not None:  # a dynamic combo's sub-input
            return next((s for s in live_inputs(ndef.inputs, values) if s.name == input_name), None)
        spec = ndef.input(input_name)
        if spec is not None and spec.is_dynamic_combo:
            return next((s for s in live_inputs((spec,), {}) if s.name == input_name), None)
        return spec

    def validate(self, values: Mapping[str, Any]) -> list[ValidationIssue]:
        """Problems of `values` (typed, as a form gives them), one issue per field with `field_key` set."""
        issues: list[ValidationIssue] = []
        for f in self.fields():
            if f.key not in values:
                if f.is_placeholder and f.required:
                    issues.append(self._issue(f, "required_input_missing", f"{f.label} is required.", None))
                continue
            problem = _check_value(f, values[f.key], self._spec_of(f))
            if problem is not None:
                issues.append(self._issue(f, problem[0], problem[1], values[f.key]))
                continue
            if f.is_dynamic_combo and f.input_name is not None:
                chosen = {f.input_name: values[f.key]}
                for sub in f.sub_fields(values[f.key]):
                    if sub.key in values:
                        problem = _check_value(sub, values[sub.key], self._spec_of(sub, chosen))
                        if problem is not None:
                            issues.append(self._issue(sub, problem[0], problem[1], values[sub.key]))
        return issues

    def _issue(self, f: FormField, kind: str, message: str, received: Any) -> ValidationIssue:
        node_id, input_name = (f.node_id, f.input_name) if not f.targets else f.targets[0]
        return ValidationIssue(
            node_id=node_id or "",
            node_title=self._title_of(f),
            input_name=input_name,
            message=message,
            kind=kind,
            field_key=f.key,
            received=received,
        )

    def fill(self, values: Mapping[str, Any], *, catalog: NodeCatalog | None = None) -> ApiGraph:
        """The graph to submit with `values` applied; raises ValidationError whose issues carry `field_key`.

        Unknown keys are ignored and missing keys keep the workflow's value. A placeholder that is a whole
        input value takes the typed value; inside longer text it is replaced by the value as text.
        `catalog` replaces the form's catalog for the final check (e.g. after uploads refreshed LoadImage).
        """
        issues = self.validate(values)
        if issues:
            raise ValidationError(
                issues, message=f"{len(issues)} field(s) of '{self.workflow_name}' need fixing"
            )
        graph = self.graph.copy()
        by_name = {
            f.key: copy.deepcopy(values[f.key]) if f.key in values else f.default for f in self.placeholders
        }
        owner: dict[tuple[str, str], str] = {}
        for f in self.placeholders:
            for node_id, input_name in f.targets:
                owner.setdefault((node_id, input_name), f.key)
                original = self.graph[node_id].inputs[input_name]
                whole = PLACEHOLDER_RE.fullmatch(original)
                if whole and whole.group(1) in by_name:
                    graph[node_id].inputs[input_name] = by_name[whole.group(1)]
                else:
                    graph[node_id].inputs[input_name] = _substitute(original, by_name)
        for group in self.groups:
            for f in group.fields:
                assert f.node_id is not None and f.input_name is not None
                owner[(f.node_id, f.input_name)] = f.key
                if f.is_dynamic_combo:
                    self._fill_dynamic(graph, f, values, owner)
                elif f.key in values:
                    graph[f.node_id].inputs[f.input_name] = copy.deepcopy(values[f.key])
                for node_id, input_name in f.linked:
                    owner[(node_id, input_name)] = f.key
                    if f.key in values:
                        graph[node_id].inputs[input_name] = copy.deepcopy(values[f.key])
        problems = validate_graph(graph, catalog or self.catalog)
        if problems:
            placed = [
                ValidationIssue(
                    node_id=i.node_id,
                    message=i.message,
                    kind=i.kind,
                    node_title=i.node_title,
                    input_name=i.input_name,
                    field_key=owner.get((i.node_id, i.input_name or "")),
                    received=i.received,
                )
                for i in problems
            ]
            raise ValidationError(placed)
        return graph

    def _fill_dynamic(
        self, graph: ApiGraph, f: FormField, values: Mapping[str, Any], owner: dict[tuple[str, str], str]
    ) -> None:
        """Write a dynamic combo's option and the flat `<combo>.<sub>` inputs of that option only."""
        assert f.node_id is not None and f.input_name is not None
        chosen = values.get(f.key, f.value)
        prefix = f.input_name + "."
        old = graph[f.node_id].inputs
        kept_links = chosen == f.value  # sub-inputs linked in the workflow stay linked for its option
        subs: dict[str, Any] = {}
        for sub in f.sub_fields(chosen):
            assert sub.input_name is not None
            owner[(f.node_id, sub.input_name)] = sub.key
            subs[sub.input_name] = copy.deepcopy(values.get(sub.key, sub.value))
        new: dict[str, Any] = {}
        for name, value in old.items():
            if name == f.input_name:
                new[name] = copy.deepcopy(chosen)
                if kept_links:
                    new.update((k, v) for k, v in old.items() if k.startswith(prefix) and k not in subs)
                new.update(subs)
            elif not name.startswith(prefix):
                new[name] = value
        old.clear()
        old.update(new)


def _substitute(text: str, values: Mapping[str, Any]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            return m.group(0)
        v = values[name]
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    return PLACEHOLDER_RE.sub(repl, text)


def _describe_got(value: Any) -> str:
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    return repr(value)


def _check_value(f: FormField, value: Any, spec: InputSpec | None) -> tuple[str, str] | None:
    """(kind, message) for a value that does not fit the field, else None."""
    bad = "invalid_input_type"
    if f.kind in (FieldKind.INT, FieldKind.SEED):
        if not isinstance(value, int) or isinstance(value, bool):
            return bad, f"{f.label} must be a whole number, got {_describe_got(value)}."
    elif f.kind is FieldKind.FLOAT:
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            return bad, f"{f.label} must be a number, got {_describe_got(value)}."
    elif f.kind in (FieldKind.STRING, FieldKind.TEXT):
        if not isinstance(value, str):
            return bad, f"{f.label} must be text, got {_describe_got(value)}."
    elif f.kind is FieldKind.BOOLEAN:
        if not isinstance(value, bool):
            return bad, f"{f.label} must be on or off, got {_describe_got(value)}."
    elif f.kind in (FieldKind.CHOICE, FieldKind.IMAGE):
        # Remote and empty option lists cannot prove a value wrong (we do not know what the server has).
        remote = spec is not None and (spec.remote or spec.multiselect)
        if f.choices and not remote and value not in f.choices:
            return (
                "value_not_in_list",
                f"{f.label} must be one of the listed options, got {_describe_got(value)}.",
            )
        if f.kind is FieldKind.IMAGE and not isinstance(value, str):
            return bad, f"{f.label} must be an image name, got {_describe_got(value)}."
    if isinstance(value, int | float) and not isinstance(value, bool):
        if f.min is not None and value < f.min:
            return "value_smaller_than_min", f"{f.label} must be at least {f.min}, got {value}."
        if f.max is not None and value > f.max:
            return "value_bigger_than_max", f"{f.label} must be at most {f.max}, got {value}."
    return None


def humanize(name: str) -> str:
    """ "negative_prompt" -> "Negative prompt", "cfg" -> "CFG"; labels with capitals are kept as they are."""
    words = name.replace("_", " ").split()
    if not words:
        return name
    words = [_ACRONYMS.get(w, w) if w.islower() else w for w in words]
    first = words[0]
    words[0] = first[:1].upper() + first[1:]
    return " ".join(words)


def _kind_of(spec: InputSpec) -> FieldKind:
    if spec.choices is not None:
        return FieldKind.IMAGE if spec.upload == "image" else FieldKind.CHOICE
    if spec.type == "INT":
        return FieldKind.SEED if spec.control_after_generate or spec.name in _SEED_NAMES else FieldKind.INT
    if spec.type == "FLOAT":
        return FieldKind.FLOAT
    if spec.type == "BOOLEAN":
        return FieldKind.BOOLEAN
    return FieldKind.TEXT if spec.multiline else FieldKind.STRING


def _seed_control(mode: object) -> SeedControl | None:
    """A saved "control after generate" mode as a SeedControl; None for anything else."""
    if isinstance(mode, str) and mode in SeedControl.__members__.values():
        return SeedControl(mode)
    return None


def _fallback_default(kind: FieldKind, spec: InputSpec | None) -> Any:
    if kind in (FieldKind.INT, FieldKind.SEED, FieldKind.FLOAT):
        return spec.min if spec is not None and spec.min is not None else 0
    if kind is FieldKind.BOOLEAN:
        return False
    if kind in (FieldKind.CHOICE, FieldKind.IMAGE) and spec is not None and spec.choices:
        return spec.choices[0]
    return ""


def _spec_field(
    spec: InputSpec, *, key: str, label: str, kind: FieldKind, value: Any, **extra: Any
) -> FormField:
    return FormField(
        key=key,
        label=label,
        kind=kind,
        default=spec.default,
        value=value,
        min=spec.min,
        max=spec.max,
        step=spec.step,
        round=spec.round,
        multiline=spec.multiline,
        choices=spec.choices,
        tooltip=spec.tooltip,
        required=spec.required,
        control=SeedControl.RANDOMIZE if kind is FieldKind.SEED else None,
        display=display if isinstance(display := spec.options.get("display"), str) else "",
        **extra,
    )


def _placeholder_field(
    name: str, targets: list[tuple[str, str]], graph: ApiGraph, catalog: NodeCatalog
) -> FormField:
    specs: list[InputSpec | None] = []
    for node_id, input_name in targets:
        ndef = catalog.get(graph[node_id].class_type)
        specs.append(ndef.input(input_name) if ndef else None)
    first_spec = specs[0]
    node_id, input_name = targets[0]
    is_whole = PLACEHOLDER_RE.fullmatch(graph[node_id].inputs[input_name]) is not None
    # A required input with only "{name}" in it cannot run without a value; one inside an optional input can.
    required = any(s is None or s.required for s in specs)
    label = humanize(name)
    if is_whole and first_spec is not None:
        kind = _kind_of(first_spec)
        default = (
            first_spec.default if first_spec.default is not None else _fallback_default(kind, first_spec)
        )
        base = _spec_field(first_spec, key=name, label=label, kind=kind, value=default, is_placeholder=True)
        return dataclasses.replace(base, default=default, required=required, targets=tuple(targets))
    multiline = any(s is not None and s.multiline for s in specs)
    tooltip = next((s.tooltip for s in specs if s is not None and s.tooltip), "")
    return FormField(
        key=name,
        label=label,
        kind=FieldKind.TEXT if multiline else FieldKind.STRING,
        default="",
        value="",
        multiline=multiline,
        tooltip=tooltip,
        required=required,
        is_placeholder=True,
        targets=tuple(targets),
    )


def build_form(workflow: Workflow, catalog: NodeCatalog) -> FormSpec:
    """The form of `workflow`; raises UnknownNodeTypeError naming every node type the catalog lacks.

    A seed field's control is the mode the workflow was saved with (`Workflow.seed_controls`), when it is
    one of the SeedControl values, else RANDOMIZE.
    """
    graph = workflow.graph
    unknown = [n.class_type for n in graph.values() if n.class_type not in catalog]
    if unknown:
        raise UnknownNodeTypeError(unknown, source=workflow.source, where=f"in '{workflow.name}'")
    placeholders = tuple(
        _placeholder_field(name, targets, graph, catalog)
        for name, targets in find_placeholders(graph).items()
    )
    groups: list[FormGroup] = []
    for node in graph.values():
        ndef = catalog[node.class_type]
        fields: list[FormField] = []
        for spec in ndef.inputs:
            if spec.is_dynamic_combo and spec.name in node.inputs:
                dynamic = _dynamic_field(node.id, spec, node.inputs)
                if dynamic is not None:
                    fields.append(dynamic)
                continue
            if not spec.is_widget or spec.name not in node.inputs:
                continue
            value = node.inputs[spec.name]
            if is_link(value) or isinstance(value, list):
                continue
            if isinstance(value, str) and PLACEHOLDER_RE.search(value):
                continue  # shown once, as its placeholder field
            kind = _kind_of(spec)
            made = _spec_field(
                spec,
                key=f"{node.id}.{spec.name}",
                label=humanize(spec.label),
                kind=kind,
                value=copy.deepcopy(value),
                node_id=node.id,
                input_name=spec.name,
                advanced=_is_advanced(spec, kind),
            )
            saved = _seed_control(workflow.seed_controls.get((node.id, spec.name)))
            if kind is FieldKind.SEED and saved is not None:
                made = dataclasses.replace(made, control=saved)  # the mode the workflow was saved with
            fields.append(made)
        notes = _link_notes(node.id, ndef.inputs, node.inputs, graph, catalog)
        if fields or notes:  # nodes with nothing to set (VAEDecode, SaveImage's images...) get no group
            groups.append(
                FormGroup(
                    node.id, _group_title(node.id, graph, catalog), node.class_type, tuple(fields), notes
                )
            )
    groups = _link_equal_fields(_unique_titles(groups), _primitive_links(workflow))
    return FormSpec(
        workflow_name=workflow.name,
        placeholders=placeholders,
        groups=tuple(groups),
        graph=graph.copy(),
        catalog=catalog,
    )


#: Names a person would give the common node types (a node title set in the workflow wins).
_FRIENDLY_TITLES = {
    "KSampler": "Sampler",
    "KSamplerAdvanced": "Sampler",
    "SamplerCustom": "Sampler",
    "SamplerCustomAdvanced": "Sampler",
    "EmptyLatentImage": "Image size",
    "EmptySD3LatentImage": "Image size",
    "EmptyHunyuanLatentVideo": "Video size",
    "EmptyLTXVLatentVideo": "Video size",
    "CheckpointLoaderSimple": "Model",
    "UNETLoader": "Model",
    "CLIPLoader": "Text encoder",
    "DualCLIPLoader": "Text encoders",
    "TripleCLIPLoader": "Text encoders",
    "VAELoader": "VAE",
    "LoraLoader": "LoRA",
    "LoraLoaderModelOnly": "LoRA",
    "LoadImage": "Input image",
    "SaveImage": "Save",
    "PreviewImage": "Preview",
    "DemoPattern": "Pattern",
    "DemoText": "Text",
    "FluxGuidance": "Guidance",
    "ModelSamplingSD3": "Model sampling",
}
_TEXT_ENCODERS = frozenset(
    {"CLIPTextEncode", "CLIPTextEncodeSDXL", "CLIPTextEncodeFlux", "TextEncodeHunyuanVideo"}
)
#: Inputs only the graph cares about, whatever their node.
_ADVANCED_INPUTS = frozenset({"filename_prefix", "weight_dtype", "device"})


def _is_advanced(spec: InputSpec, kind: FieldKind) -> bool:
    if spec.name in _ADVANCED_INPUTS or spec.advanced:
        return True
    # A choice with one sensible answer (a loader with one file, a single mode) is plumbing.
    return kind is FieldKind.CHOICE and spec.choices is not None and len(spec.choices) <= 1


def _feeds(node_id: str, graph: ApiGraph, depth: int = 3) -> set[str]:
    """The input names that `node_id`'s outputs reach, following up to `depth` links downstream."""
    names: set[str] = set()
    frontier = {node_id}
    for _ in range(depth):
        nxt: set[str] = set()
        for other in graph.values():
            for name, value in other.inputs.items():
                if is_link(value) and str(value[0]) in frontier:
                    names.add(name)
                    nxt.add(other.id)
        frontier = nxt
        if "positive" in names or "negative" in names:
            break
    return names


def _group_title(node_id: str, graph: ApiGraph, catalog: NodeCatalog) -> str:
    """The node's own title when the workflow gave it one, else a name a person would say; never an id."""
    node = graph[node_id]
    ndef = catalog.get(node.class_type)
    generic = {node.class_type, ndef.title if ndef else node.class_type}
    if node.title and node.title not in generic and "(Prompt)" not in node.title:
        return node.title
    if node.class_type in _TEXT_ENCODERS:
        feeds = _feeds(node_id, graph)
        return "Negative prompt" if "negative" in feeds and "positive" not in feeds else "Prompt"
    if node.class_type in _FRIENDLY_TITLES:
        return _FRIENDLY_TITLES[node.class_type]
    name = ndef.title if ndef else node.class_type
    if " " not in name:  # a bare class name: "ModelSamplingDiscrete" -> "Model sampling discrete"
        words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|\d+", name)
        if words:
            name = " ".join([words[0], *(w if w.isupper() else w.lower() for w in words[1:])])
    return humanize(name)


def _unique_titles(groups: list[FormGroup]) -> list[FormGroup]:
    """ "LoRA", "LoRA 2": a second group of the same name is numbered."""
    seen: dict[str, int] = {}
    out: list[FormGroup] = []
    for group in groups:
        n = seen[group.title] = seen.get(group.title, 0) + 1
        out.append(group if n == 1 else dataclasses.replace(group, title=f"{group.title} {n}"))
    return out


#: Inputs that a workflow keeps equal across nodes on purpose (a size fed to a latent and a resize).
_LINKABLE = frozenset({"width", "height", "length", "batch_size"})


_PRIMITIVE_RE = re.compile(r"\(PrimitiveNode[^)]*\) inlined: .* written into (.*)$")
_USE_RE = re.compile(r"node (\S+) '([^']+)'")


def _primitive_links(workflow: Workflow) -> list[set[tuple[str, str]]]:
    """The inputs each PrimitiveNode of a UI workflow fed (the conversion's report names them)."""
    out: list[set[tuple[str, str]]] = []
    for line in workflow.report.expanded if workflow.report is not None else ():
        m = _PRIMITIVE_RE.search(line)
        if m:
            uses = set(_USE_RE.findall(m.group(1)))
            if len(uses) > 1:
                out.append(uses)
    return out


def _link_equal_fields(groups: list[FormGroup], primitives: list[set[tuple[str, str]]]) -> list[FormGroup]:
    """Fields that hold one value in several nodes become one linked field (in the first node's group);
    setting it sets all of them. Linked are: the inputs one PrimitiveNode fed in the UI file, and size-like
    inputs (width, height, length, batch size) of the same name holding the same number."""
    first: dict[tuple[str, str], FormField] = {}
    linked: dict[str, list[tuple[str, str]]] = {}
    dropped: set[str] = set()
    for group in groups:
        for f in group.fields:
            if f.node_id is None or f.input_name is None or f.is_dynamic_combo:
                continue
            spot_of = next(
                (i for i, uses in enumerate(primitives) if (f.node_id, f.input_name) in uses), None
            )
            if spot_of is not None:
                spot = (f"primitive {spot_of}", "")
            elif f.input_name in _LINKABLE and f.kind is FieldKind.INT:
                spot = (f.input_name, repr(f.value))
            else:
                continue
            owner = first.setdefault(spot, f)
            if owner is not f:
                linked.setdefault(owner.key, []).append((f.node_id, f.input_name))
                dropped.add(f.key)
    if not linked:
        return groups
    out: list[FormGroup] = []
    for group in groups:
        fields = tuple(
            dataclasses.replace(f, linked=tuple(linked[f.key])) if f.key in linked else f
            for f in group.fields
            if f.key not in dropped
        )
        if fields or group.notes:
            out.append(dataclasses.replace(group, fields=fields))
    return out


def _link_notes(
    node_id: str,
    specs: tuple[InputSpec, ...],
    inputs: Mapping[str, Any],
    graph: ApiGraph,
    catalog: NodeCatalog,
) -> tuple[str, ...]:
    """What the form can say about V3 inputs fed by links: an autogrow input's connected slots, and the type
    a match-type input matched (the type of the output linked to it)."""
    notes: list[str] = []
    for spec in specs:
        if spec.type == AUTOGROW:
            slots = [
                name.removeprefix(spec.name + ".")
                for name, value in inputs.items()
                if name.startswith(spec.name + ".") and is_link(value)
            ]
            if slots:
                notes.append(f"{humanize(spec.label)}: {len(slots)} connected ({', '.join(slots)})")
            else:
                notes.append(f"{humanize(spec.label)}: nothing connected")
        elif spec.type == MATCH_TYPE:
            value = inputs.get(spec.name)
            matched = _linked_type(value, graph, catalog) if is_link(value) else None
            if matched:
                notes.append(f"{humanize(spec.label)}: {matched}")
    return tuple(notes)


def _linked_type(link: Any, graph: ApiGraph, catalog: NodeCatalog) -> str | None:
    source_id, slot = str(link[0]), link[1]
    if source_id not in graph or not isinstance(slot, int):
        return None
    ndef = catalog.get(graph[source_id].class_type)
    if ndef is None or not 0 <= slot < len(ndef.outputs):
        return None
    return ndef.outputs[slot].type


@dataclass(frozen=True)
class SizePreset:
    label: str
    width: int
    height: int


_RATIOS = (
    ("1:1", 1, 1),
    ("4:3", 4, 3),
    ("3:2", 3, 2),
    ("16:9", 16, 9),
    ("3:4", 3, 4),
    ("2:3", 2, 3),
    ("9:16", 9, 16),
)
#: (words in a model file name, family, native side): the first that matches wins.
_FAMILIES = (
    (("sdxl", "sd_xl", "xl_", "_xl", "xl-", "-xl", "pony", "illustrious", "juggernautxl"), "SDXL", 1024),
    (("flux",), "Flux", 1024),
    (("sd3", "sd_3", "sd3.5"), "SD3", 1024),
    (("v2-1_768", "sd2", "sd_2", "v2-"), "SD2", 768),
    (("v1-5", "sd15", "sd1.5", "sd_1.5", "v1-4", "sd-1", "1.5"), "SD1.5", 512),
)


def model_family(model_name: str | None) -> tuple[str, int] | None:
    """("SDXL", 1024) for "sd_xl_base_1.0.safetensors"; None when the name does not tell."""
    name = (model_name or "").lower()
    for words, family, side in _FAMILIES:
        if any(w in name for w in words):
            return family, side
    return None


def size_presets(model_name: str | None = None, *, step: int = 8) -> list[SizePreset]:
    """Sizes to offer for a width/height pair: the model family's native square and its aspect ratios at
    about the same pixel count (multiples of 64), then the other families' native squares."""
    family = model_family(model_name)
    side = family[1] if family else 1024
    name = family[0] if family else ""
    out: list[SizePreset] = []
    area = side * side
    for label, rw, rh in _RATIOS:
        w = round(math.sqrt(area * rw / rh) / 64) * 64
        h = round(math.sqrt(area * rh / rw) / 64) * 64
        prefix = f"{name} " if name else ""
        out.append(SizePreset(f"{prefix}{label} · {w}×{h}", max(step, w), max(step, h)))
    for other, native in (("SD1.5", 512), ("SD2", 768), ("SDXL", 1024)):
        if other != name and native != side:
            out.append(SizePreset(f"{other} native · {native}×{native}", native, native))
    return out


def _dynamic_field(node_id: str, spec: InputSpec, inputs: Mapping[str, Any]) -> FormField | None:
    """One choice field for a V3 dynamic combo, with the sub-fields of every option."""
    value = inputs[spec.name]
    if not isinstance(value, str) or PLACEHOLDER_RE.search(value):
        return None
    combo = next(s for s in live_inputs((spec,), {}) if s.name == spec.name)
    options: list[tuple[str, tuple[FormField, ...]]] = []
    for option, subs in spec.dynamic_options().items():
        made: list[FormField] = []
        for sub in subs:
            name = f"{spec.name}.{sub.name}"
            if not sub.is_widget:
                continue
            current = inputs.get(name) if option == value else None
            if option == value and (is_link(current) or isinstance(current, list)):
                continue  # fed by a link in the workflow
            kind = _kind_of(sub)
            if current is None:
                current = sub.default if sub.default is not None else _fallback_default(kind, sub)
            made.append(
                _spec_field(
                    sub,
                    key=f"{node_id}.{name}",
                    label=humanize(sub.label),
                    kind=kind,
                    value=copy.deepcopy(current),
                    node_id=node_id,
                    input_name=name,
                )
            )
        options.append((option, tuple(made)))
    return _spec_field(
        combo,
        key=f"{node_id}.{spec.name}",
        label=humanize(spec.label),
        kind=FieldKind.CHOICE,
        value=value,
        node_id=node_id,
        input_name=spec.name,
        options_fields=tuple(options),
    )


def next_seed(
    value: int,
    control: SeedControl | str,
    *,
    minimum: int = 0,
    maximum: int = SEED_MAX,
    rng: random.Random | None = None,
) -> int:
    """The seed for the next run: fixed keeps it, increment/decrement step by one and wrap around the range,
    randomize draws uniformly from [minimum, maximum]."""
    mode = SeedControl(control)
    if mode is SeedControl.FIXED:
        return value
    if mode is SeedControl.INCREMENT:
        return value + 1 if minimum <= value < maximum else minimum
    if mode is SeedControl.DECREMENT:
        return value - 1 if minimum < value <= maximum else maximum
    return (rng or random.Random()).randint(minimum, maximum)
