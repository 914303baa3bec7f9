"""Node definitions: ComfyUI's `object_info` (and the `/api/v1` node shape) parsed into typed values.

`parse_object_info(doc)` gives a `NodeCatalog`; a malformed class is skipped with a warning that names it
(`NodeCatalog.warnings`, also logged), and only a document that is not an object at all raises `CatalogError`.
Integers are kept exact (KSampler's seed max is 2**64-1), so never round-trip them through float.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Protocol, TypeVar, cast

from comfydesk.core.errors import CatalogError

__all__ = [
    "CACHE_FORMAT",
    "WIDGET_TYPES",
    "CategoryTree",
    "InputSpec",
    "NodeCatalog",
    "NodeDef",
    "NodeListing",
    "NodeSummary",
    "OutputSpec",
    "catalog_from_cache",
    "catalog_to_cache",
    "category_tree",
    "live_inputs",
    "parse_node_def",
    "parse_object_info",
    "parse_v1_nodes",
    "summaries_from_cache",
    "summaries_to_cache",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Types that get a widget (a value typed by the user) unless `forceInput` makes them a socket.
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
#: V3 dynamic input types (a combo whose options bring sub-inputs, growing inputs, a type matched on link).
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
AUTOGROW = "COMFY_AUTOGROW_V3"
MATCH_TYPE = "COMFY_MATCHTYPE_V3"
DYNAMIC_TYPES = frozenset({AUTOGROW, MATCH_TYPE, DYNAMIC_COMBO})
_UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "file_upload")
_SECTIONS = ("required", "optional", "hidden")


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One input of a node, as its definition describes it."""

    name: str
    type: str
    section: str = "required"
    default: Any = None
    min: int | float | None = None
    max: int | float | None = None
    step: int | float | None = None
    round: int | float | bool | None = None
    multiline: bool = False
    dynamic_prompts: bool = False
    tooltip: str = ""
    display_name: str = ""
    choices: tuple[Any, ...] | None = None
    upload: str | None = None
    control_after_generate: bool = False
    force_input: bool = False
    lazy: bool = False
    advanced: bool = False
    remote: bool = False
    multiselect: bool = False
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def required(self) -> bool:
        return self.section == "required"

    @property
    def hidden(self) -> bool:
        return self.section == "hidden"

    @property
    def is_dynamic(self) -> bool:
        return self.type in DYNAMIC_TYPES

    @property
    def is_widget(self) -> bool:
        """True when the value is typed by the user rather than linked from another node."""
        return (
            not self.hidden
            and not self.force_input
            and (self.type in WIDGET_TYPES or self.choices is not None)
        )

    @property
    def is_link_only(self) -> bool:
        """True for socket types such as MODEL, IMAGE, LATENT that only a link can fill."""
        return not self.hidden and not self.is_widget and not self.is_dynamic

    @property
    def label(self) -> str:
        return self.display_name or self.name

    @property
    def is_dynamic_combo(self) -> bool:
        return self.type == DYNAMIC_COMBO

    def dynamic_options(self) -> dict[str, tuple[InputSpec, ...]]:
        """A dynamic combo's options, each with its own sub-inputs (plain names, not yet `<input>.<sub>`).

        Empty for any other input. Malformed options are skipped.
        """
        if not self.is_dynamic_combo:
            return {}
        out: dict[str, tuple[InputSpec, ...]] = {}
        for option in _list(self.options.get("options")):
            if not isinstance(option, dict) or not isinstance(option.get("key"), str):
                continue
            sections = option.get("inputs")
            subs: list[InputSpec] = []
            for section in _SECTIONS:
                sec = sections.get(section) if isinstance(sections, dict) else None
                if not isinstance(sec, dict):
                    continue
                for sub_name, raw in sec.items():
                    try:
                        subs.append(_parse_input(sub_name, raw, section))
                    except ValueError:
                        continue
            out[option["key"]] = tuple(subs)
        return out


@dataclass(frozen=True, slots=True)
class OutputSpec:
    name: str
    type: str
    is_list: bool = False
    tooltip: str = ""


@dataclass(frozen=True, slots=True)
class NodeDef:
    """A node type the server offers."""

    id: str
    display_name: str = ""
    description: str = ""
    category: str = ""
    python_module: str = ""
    output_node: bool = False
    deprecated: bool = False
    experimental: bool = False
    api_node: bool = False
    inputs: tuple[InputSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()

    @property
    def title(self) -> str:
        return self.display_name or self.id

    def input(self, name: str) -> InputSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None

    @property
    def widget_inputs(self) -> tuple[InputSpec, ...]:
        return tuple(i for i in self.inputs if i.is_widget)

    @property
    def visible_inputs(self) -> tuple[InputSpec, ...]:
        return tuple(i for i in self.inputs if not i.hidden)

    def to_v1(self) -> dict[str, Any]:
        """Render in the `/api/v1/comfyui/nodes` shape: `type` is the ComfyUI type in lower case (as the spec
        writes it), `comfy_type` ComfyUI's own spelling."""
        inputs: list[dict[str, Any]] = []
        for spec in self.visible_inputs:
            item: dict[str, Any] = {
                "name": spec.name,
                "type": spec.type.lower(),
                "comfy_type": spec.type,
                "required": spec.required,
            }
            for key, value in (
                ("default", spec.default),
                ("min", spec.min),
                ("max", spec.max),
                ("step", spec.step),
            ):
                if value is not None:
                    item[key] = value
            if spec.choices is not None:
                item["options"] = list(spec.choices)
            if spec.multiline:
                item["multiline"] = True
            if spec.tooltip:
                item["tooltip"] = spec.tooltip
            inputs.append(item)
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.title,
            "description": self.description,
            "inputs": inputs,
            "outputs": [{"name": o.name, "type": o.type.lower(), "comfy_type": o.type} for o in self.outputs],
        }
        if self.category:
            out["category"] = self.category
        if self.output_node:
            out["output_node"] = True
        return out


def _fast_constructor(cls: type[_T]) -> Callable[..., _T]:
    """`cls(*values)` with every field given in declared order, for a frozen slots dataclass, about five times
    faster: the result is a real `cls`, equal to the one its own `__init__` makes.

    A frozen dataclass sets each field through `object.__setattr__`, which made building the specs half the
    cost of parsing a catalog. The builder class has the very same slots, so a built object can take `cls`
    as its class; its `__init__` stores the fields directly (generated like dataclasses' own `__init__`).
    """
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    if names != getattr(cls, "__slots__", None):
        raise TypeError(f"{cls.__name__} is not a slots dataclass")
    namespace: dict[str, Any] = {}
    body = "".join(f"\n    self.{n} = {n}" for n in names)
    exec(f"def __init__(self, {', '.join(names)}):{body}", namespace)  # source made from fields() above
    builder = type(f"_{cls.__name__}Builder", (), {"__slots__": names, "__init__": namespace["__init__"]})
    set_class = object.__setattr__

    def make(*values: Any) -> _T:
        obj = builder(*values)
        set_class(obj, "__class__", cls)
        return cast(_T, obj)

    return make


_input_spec = _fast_constructor(InputSpec)
_output_spec = _fast_constructor(OutputSpec)
_node_def = _fast_constructor(NodeDef)
_EMPTY_OPTIONS: Mapping[str, Any] = MappingProxyType({})
#: Option keys that set an InputSpec field besides `options`: an input whose options have none of them gets
#: every field's default (the fast path of `_parse_input`; most link inputs have only a tooltip).
_FIELD_KEYS = frozenset(
    {
        "default",
        "min",
        "max",
        "step",
        "round",
        "multiline",
        "dynamicPrompts",
        "tooltip",
        "display_name",
        "control_after_generate",
        "forceInput",
        "lazy",
        "advanced",
        "remote",
        "multiselect",
        *_UPLOAD_FLAGS,
    }
)


def _num(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _parse_input(name: str, raw: Any, section: str) -> InputSpec:
    # Hot: a server has thousands of inputs. Fields are passed by position (InputSpec's field order) and
    # options without any field key skip the lookups; tests/unit/test_nodes_fast.py checks that the result
    # is the same as the plain field-by-field reading.
    if isinstance(raw, str):  # hidden inputs such as "PROMPT"
        return InputSpec(name, raw, section)
    if not isinstance(raw, list | tuple) or not raw:
        raise ValueError(f"input '{name}' is not a [type, options] list")
    head = raw[0]
    opts_raw = raw[1] if len(raw) > 1 else None
    opts: dict[str, Any] = dict(opts_raw) if isinstance(opts_raw, dict) else {}
    choices: tuple[Any, ...] | None = None
    if isinstance(head, str):
        type_name = head
        if head == "COMBO":
            options = opts.get("options")
            choices = tuple(options) if isinstance(options, list | tuple) else ()
    elif isinstance(head, list | tuple):  # V1 COMBO: [[choices...], {...}]
        type_name = "COMBO"
        choices = tuple(head)
    else:
        raise ValueError(f"input '{name}' has a type of {type(head).__name__}")
    if not opts or _FIELD_KEYS.isdisjoint(opts):
        return _input_spec(
            name,
            type_name,
            section,
            None,
            None,
            None,
            None,
            None,
            False,
            False,
            "",
            "",
            choices,
            None,
            False,
            False,
            False,
            False,
            False,
            False,
            MappingProxyType(opts) if opts else _EMPTY_OPTIONS,
        )
    default: Any = None
    low: Any = None
    high: Any = None
    step: Any = None
    rnd: Any = None
    tooltip: Any = ""
    display_name: Any = ""
    multiline = dynamic_prompts = control = force_input = lazy = advanced = remote = multiselect = False
    upload = None
    for key, value in opts.items():  # usually a handful of keys: cheaper than a lookup per field
        if key == "tooltip":
            tooltip = value
        elif key == "default":
            default = value
        elif key == "min":
            low = value
        elif key == "max":
            high = value
        elif key == "step":
            step = value
        elif key == "display_name":
            display_name = value
        elif key == "round":
            rnd = value
        elif key == "multiline":
            multiline = bool(value)
        elif key == "dynamicPrompts":
            dynamic_prompts = bool(value)
        elif key == "control_after_generate":
            control = bool(value)
        elif key == "forceInput":
            force_input = bool(value)
        elif key == "lazy":
            lazy = bool(value)
        elif key == "advanced":
            advanced = bool(value)
        elif key == "remote":
            remote = isinstance(value, dict)
        elif key == "multiselect":
            multiselect = bool(value)
        elif key in _UPLOAD_FLAGS and value and upload is None:
            upload = next(f for f in _UPLOAD_FLAGS if opts.get(f)).split("_")[0]  # the first in flag order
    return _input_spec(
        name,
        type_name,
        section,
        default,
        low if isinstance(low, int | float) and not isinstance(low, bool) else None,
        high if isinstance(high, int | float) and not isinstance(high, bool) else None,
        step if isinstance(step, int | float) and not isinstance(step, bool) else None,
        rnd if isinstance(rnd, int | float) else None,
        multiline,
        dynamic_prompts,
        tooltip if isinstance(tooltip, str) else "",
        display_name if isinstance(display_name, str) else "",
        choices,
        upload,
        control,
        force_input,
        lazy,
        advanced,
        remote,
        multiselect,
        MappingProxyType(opts),
    )


def live_inputs(specs: tuple[InputSpec, ...], values: Mapping[str, Any], prefix: str = "") -> list[InputSpec]:
    """The inputs a node really has once its V3 dynamic inputs are expanded for `values` (a prompt's inputs).

    As ComfyUI's server does it: a dynamic combo is a combo of its option keys followed by the sub-inputs of
    the option `values` holds, named `<combo>.<sub>`; an autogrow input becomes its slots `<input>.<name>`
    (the first `min` required when the template input is required, the rest optional); a match-type input
    takes the types its template allows.
    """
    out: list[InputSpec] = []
    for spec in specs:
        name = prefix + spec.name
        if spec.type == DYNAMIC_COMBO:
            options = spec.dynamic_options()
            known = isinstance(spec.default, str) and spec.default in options  # a server may send any JSON
            default = spec.default if known else next(iter(options), None)
            out.append(replace(spec, name=name, type="COMBO", choices=tuple(options), default=default))
            chosen = values.get(name)
            if isinstance(chosen, str) and chosen in options:
                out.extend(live_inputs(options[chosen], values, name + "."))
        elif spec.type == AUTOGROW:
            out.extend(_autogrow_slots(spec, name))
        elif spec.type == MATCH_TYPE:
            template = spec.options.get("template")
            allowed = template.get("allowed_types") if isinstance(template, dict) else None
            out.append(
                replace(spec, name=name, type=allowed if isinstance(allowed, str) and allowed else "*")
            )
        else:
            out.append(replace(spec, name=name) if prefix else spec)
    return out


MAX_AUTOGROW_SLOTS = 1_000
"""Slots one autogrow input expands to, at most (real nodes have up to 50; a server's `"max": 10**9` must
not make a billion inputs)."""


def _autogrow_slots(spec: InputSpec, name: str) -> list[InputSpec]:
    template = spec.options.get("template")
    if not isinstance(template, dict):
        return []
    inner = template.get("input")
    first: InputSpec | None = None
    for section in _SECTIONS:
        sec = inner.get(section) if isinstance(inner, dict) else None
        if isinstance(sec, dict) and sec:
            sub_name, raw = next(iter(sec.items()))
            try:
                first = _parse_input(sub_name, raw, section)
            except ValueError:
                return []
            break
    if first is None:
        return []
    names = template.get("names")
    if isinstance(names, list):
        slot_names = [str(n) for n in names[:MAX_AUTOGROW_SLOTS]]
    else:
        top = template.get("max")
        count = top if isinstance(top, int) and not isinstance(top, bool) else 0
        slot_names = [f"{_str(template.get('prefix'))}{i}" for i in range(min(count, MAX_AUTOGROW_SLOTS))]
    low = template.get("min")
    minimum = low if isinstance(low, int) and not isinstance(low, bool) else 0
    return [
        replace(
            first,
            name=f"{name}.{slot}",
            section="required" if i < minimum and first.required else "optional",
        )
        for i, slot in enumerate(slot_names)
    ]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_node_def(node_id: str, raw: Any) -> NodeDef:
    """Parse one object_info entry; raises ValueError with the reason when it is malformed."""
    if not isinstance(raw, dict):
        raise ValueError("definition is not an object")
    inputs_raw = raw.get("input", {})
    if not isinstance(inputs_raw, dict):
        raise ValueError("'input' is not an object")
    order = raw.get("input_order") if isinstance(raw.get("input_order"), dict) else {}
    inputs: list[InputSpec] = []
    for section in _SECTIONS:
        sec = inputs_raw.get(section)
        if sec is None:
            continue
        if not isinstance(sec, dict):
            raise ValueError(f"'input.{section}' is not an object")
        names = list(sec)
        wanted = order.get(section) if isinstance(order, dict) else None
        if isinstance(wanted, list):  # input_order is authoritative; keep strays at the end
            names = [n for n in wanted if n in sec] + [n for n in sec if n not in wanted]
        for n in names:
            inputs.append(_parse_input(n, sec[n], section))
    out_types = raw.get("output", [])
    if not isinstance(out_types, list):
        raise ValueError("'output' is not a list")
    out_names = _list(raw.get("output_name"))
    is_list = _list(raw.get("output_is_list"))
    tips = _list(raw.get("output_tooltips"))
    outputs = []
    for i, t in enumerate(out_types):
        type_name = ",".join(map(str, t)) if isinstance(t, list) else str(t)
        name = out_names[i] if i < len(out_names) and isinstance(out_names[i], str) else type_name
        outputs.append(
            _output_spec(
                name,
                type_name if not isinstance(t, list) else "COMBO",
                bool(is_list[i]) if i < len(is_list) else False,
                _str(tips[i]) if i < len(tips) else "",
            )
        )
    get = raw.get
    return _node_def(
        node_id,
        _str(get("display_name")),
        _str(get("description")),
        _str(get("category")),
        _str(get("python_module")),
        bool(get("output_node")),
        bool(get("deprecated")),
        bool(get("experimental")),
        bool(get("api_node")),
        tuple(inputs),
        tuple(outputs),
    )


def parse_object_info(doc: Any) -> NodeCatalog:
    """Parse a whole object_info document; malformed entries are skipped with a named warning."""
    if not isinstance(doc, dict):
        raise CatalogError(
            f"node definitions must be a JSON object keyed by node type, got {type(doc).__name__}",
            hint="Is the address a ComfyUI server? Its /object_info answer was not usable.",
        )
    nodes: list[NodeDef] = []
    warnings: list[str] = []
    for node_id, raw in doc.items():
        try:
            nodes.append(parse_node_def(str(node_id), raw))
        except (ValueError, TypeError, AttributeError) as exc:
            msg = f"skipped node definition '{node_id}': {exc}"
            log.warning(msg)
            warnings.append(msg)
    return NodeCatalog(nodes, warnings=warnings)


def parse_v1_nodes(doc: Any) -> NodeCatalog:
    """Parse the `/api/v1/comfyui/nodes` shape: a list of `{id, name, description, inputs, outputs}`."""
    if isinstance(doc, dict) and isinstance(doc.get("data"), dict):
        doc = doc["data"].get("nodes")
    if isinstance(doc, dict) and "nodes" in doc:
        doc = doc["nodes"]
    if not isinstance(doc, list):
        raise CatalogError("the node list must be a JSON array of node objects")
    nodes: list[NodeDef] = []
    warnings: list[str] = []
    for idx, item in enumerate(doc):
        label = item.get("id") if isinstance(item, dict) else None
        try:
            nodes.append(_parse_v1_node(item))
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            msg = f"skipped node definition '{label or f'#{idx}'}': {exc}"
            log.warning(msg)
            warnings.append(msg)
    return NodeCatalog(nodes, warnings=warnings)


def _parse_v1_node(item: Any) -> NodeDef:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise ValueError("node is not an object with a string 'id'")
    inputs = []
    for raw in item.get("inputs", []):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ValueError("an input is not an object with a 'name'")
        comfy_type = raw.get("comfy_type")
        type_name = (
            comfy_type if isinstance(comfy_type, str) and comfy_type else str(raw.get("type", "*")).upper()
        )
        options = raw.get("options")
        choices = tuple(options) if isinstance(options, list) else None
        if choices is not None:
            type_name = "COMBO"
        inputs.append(
            InputSpec(
                name=raw["name"],
                type=type_name,
                section="required" if raw.get("required", False) else "optional",
                default=raw.get("default"),
                min=_num(raw.get("min")),
                max=_num(raw.get("max")),
                step=_num(raw.get("step")),
                multiline=bool(raw.get("multiline")),
                tooltip=_str(raw.get("tooltip")),
                choices=choices,
                options=MappingProxyType(dict(raw)),
            )
        )
    outputs = tuple(
        OutputSpec(name=str(o.get("name", "")), type=str(o.get("comfy_type") or o.get("type", "*")).upper())
        for o in item.get("outputs", [])
        if isinstance(o, dict)
    )
    return NodeDef(
        id=item["id"],
        display_name=_str(item.get("name")),
        description=_str(item.get("description")),
        category=_str(item.get("category")),
        output_node=bool(item.get("output_node")) or any(o.type == "IMAGE" for o in outputs),
        inputs=tuple(inputs),
        outputs=outputs,
    )


class NodeListing(Protocol):
    """What a list of node types shows of each: a `NodeDef`, or a `NodeSummary` before the definitions."""

    @property
    def id(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def deprecated(self) -> bool: ...
    @property
    def experimental(self) -> bool: ...
    @property
    def title(self) -> str: ...


@dataclass(frozen=True, slots=True)
class NodeSummary:
    """A node type as a list shows it, without its inputs and outputs: the node cache keeps these apart from
    the definitions, so that a window can list a server's nodes before it has read their definitions."""

    id: str
    display_name: str = ""
    description: str = ""
    category: str = ""
    deprecated: bool = False
    experimental: bool = False

    @property
    def title(self) -> str:
        return self.display_name or self.id


def listing_key(node: NodeListing) -> tuple[str, str, str, str, bool, bool]:
    """Everything a list shows of `node`: two lists with equal keys look the same."""
    return (node.id, node.display_name, node.description, node.category, node.deprecated, node.experimental)


@dataclass
class CategoryTree:
    """Categories as a tree: `children` by path segment, `nodes` directly in this category."""

    name: str = ""
    path: str = ""
    children: dict[str, CategoryTree] = field(default_factory=dict)
    nodes: list[NodeListing] = field(default_factory=list)

    def count(self) -> int:
        return len(self.nodes) + sum(c.count() for c in self.children.values())


def category_tree(nodes: Iterable[NodeListing]) -> CategoryTree:
    """`nodes` by category ("a/b" nested), each category's nodes by display name."""
    root = CategoryTree()
    for node in sorted(nodes, key=lambda n: n.title.lower()):
        here = root
        for part in [p for p in node.category.split("/") if p] or ["uncategorized"]:
            path = f"{here.path}/{part}" if here.path else part
            here = here.children.setdefault(part, CategoryTree(name=part, path=path))
        here.nodes.append(node)
    return root


class NodeCatalog(Mapping[str, NodeDef]):
    """Every node type a server offers, by id, by category, and searchable."""

    def __init__(self, nodes: Iterable[NodeDef], *, warnings: Sequence[str] = ()) -> None:
        self._nodes: dict[str, NodeDef] = {n.id: n for n in nodes}
        self.warnings: tuple[str, ...] = tuple(warnings)

    def __getitem__(self, node_id: str) -> NodeDef:
        return self._nodes[node_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def nodes(self) -> list[NodeDef]:
        return list(self._nodes.values())

    def category_tree(self) -> CategoryTree:
        return category_tree(self._nodes.values())

    def search(self, text: str, *, limit: int | None = None) -> list[NodeDef]:
        """Ranked, case-insensitive search over display name, id, category and description.

        Display-name matches come first (exact, then prefix, then word prefix, then substring), then id
        matches, then category, then description. Every word of `text` must match somewhere.
        """
        words = text.lower().split()
        if not words:
            found = sorted(self._nodes.values(), key=lambda n: n.title.lower())
            return found[:limit] if limit else found
        scored: list[tuple[int, str, NodeDef]] = []
        for node in self._nodes.values():
            score = 0
            fields = (
                (node.title.lower(), 1000),
                (node.id.lower(), 600),
                (node.category.lower(), 200),
                (node.description.lower(), 50),
            )
            for word in words:
                best = 0
                for value, weight in fields:
                    if not value or word not in value:
                        continue
                    if value == word or value == " ".join(words):
                        s = weight * 4
                    elif value.startswith(word):
                        s = weight * 3
                    elif any(part.startswith(word) for part in value.replace("/", " ").split()):
                        s = weight * 2
                    else:
                        s = weight
                    best = max(best, s)
                if best == 0:
                    break
                score += best
            else:
                scored.append((-score, node.title.lower(), node))
        scored.sort(key=lambda t: (t[0], t[1]))
        result = [t[2] for t in scored]
        return result[:limit] if limit else result


CACHE_FORMAT = 1
"""Version of `catalog_to_cache`'s document; `catalog_from_cache` refuses any other."""


def catalog_to_cache(catalog: NodeCatalog) -> dict[str, Any]:
    """A JSON-ready document of every field of every node, read back by `catalog_from_cache` into an equal
    catalog (the node cache keeps the last session's catalog of a server)."""

    def spec_row(spec: InputSpec) -> list[Any]:
        row = [getattr(spec, f) for f in InputSpec.__slots__]
        row[12] = None if spec.choices is None else list(spec.choices)
        row[20] = dict(spec.options)
        return row

    return {
        "format": CACHE_FORMAT,
        "warnings": list(catalog.warnings),
        "nodes": [
            [
                *(getattr(node, f) for f in NodeDef.__slots__[:9]),
                [spec_row(i) for i in node.inputs],
                [[o.name, o.type, o.is_list, o.tooltip] for o in node.outputs],
            ]
            for node in catalog.nodes()
        ],
    }


def summaries_to_cache(catalog: NodeCatalog) -> list[list[Any]]:
    """What a list shows of each node of `catalog`, JSON-ready; `summaries_from_cache` reads it back."""
    return [list(listing_key(node)) for node in catalog.nodes()]


def summaries_from_cache(rows: Any) -> list[NodeSummary]:
    """The summaries `summaries_to_cache` wrote; raises CatalogError for anything else."""
    if not isinstance(rows, list):
        raise CatalogError("the cached node list is not in a format this version reads")
    try:
        out = [NodeSummary(*row) for row in rows]
    except TypeError as exc:
        raise CatalogError(f"the cached node list is damaged: {exc}") from None
    if not all(isinstance(n.id, str) and isinstance(n.category, str) for n in out):
        raise CatalogError("the cached node list is damaged: a node without a name or category")
    return out


def catalog_from_cache(doc: Any) -> NodeCatalog:
    """The catalog `catalog_to_cache` wrote; raises CatalogError for anything else (an older format too)."""
    rows = doc.get("nodes") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT or not isinstance(rows, list):
        raise CatalogError("the cached node list is not in a format this version reads")
    nodes: list[NodeDef] = []
    try:
        for row in doc["nodes"]:
            *head, inputs, outputs = row
            specs = []
            for values in inputs:
                values[12] = None if values[12] is None else tuple(values[12])
                values[20] = MappingProxyType(values[20]) if values[20] else _EMPTY_OPTIONS
                specs.append(_input_spec(*values))
            nodes.append(_node_def(*head, tuple(specs), tuple(_output_spec(*o) for o in outputs)))
    except (TypeError, ValueError, IndexError) as exc:
        raise CatalogError(f"the cached node list is damaged: {exc}") from None
    return NodeCatalog(nodes, warnings=[str(w) for w in doc.get("warnings", [])])
