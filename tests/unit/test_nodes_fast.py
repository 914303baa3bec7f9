"""`parse_object_info`'s fast path (positional construction, one pass over the options) gives exactly the
catalog the plain field-by-field reading gave: the reference below is that reading, as it was."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest

from comfydesk.core.errors import CatalogError
from comfydesk.core.nodes import InputSpec, NodeCatalog, NodeDef, OutputSpec, parse_object_info
from tests.conftest import load_json

_UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "file_upload")
_SECTIONS = ("required", "optional", "hidden")


def _num(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def ref_input(name: str, raw: Any, section: str) -> InputSpec:
    if isinstance(raw, str):
        return InputSpec(name=name, type=raw, section=section)
    if not isinstance(raw, list | tuple) or not raw:
        raise ValueError(f"input '{name}' is not a [type, options] list")
    head = raw[0]
    opts_raw = raw[1] if len(raw) > 1 else {}
    opts: dict[str, Any] = dict(opts_raw) if isinstance(opts_raw, dict) else {}
    choices: tuple[Any, ...] | None = None
    if isinstance(head, list | tuple):
        type_name = "COMBO"
        choices = tuple(head)
    elif isinstance(head, str):
        type_name = head
        if head == "COMBO":
            options = opts.get("options")
            choices = tuple(options) if isinstance(options, list | tuple) else ()
    else:
        raise ValueError(f"input '{name}' has a type of {type(head).__name__}")
    upload = next((f.split("_")[0] for f in _UPLOAD_FLAGS if opts.get(f)), None)
    tooltip = opts.get("tooltip")
    display_name = opts.get("display_name")
    rnd = opts.get("round")
    return InputSpec(
        name=name,
        type=type_name,
        section=section,
        default=opts.get("default"),
        min=_num(opts.get("min")),
        max=_num(opts.get("max")),
        step=_num(opts.get("step")),
        round=rnd if isinstance(rnd, int | float) else None,
        multiline=bool(opts.get("multiline")),
        dynamic_prompts=bool(opts.get("dynamicPrompts")),
        tooltip=tooltip if isinstance(tooltip, str) else "",
        display_name=display_name if isinstance(display_name, str) else "",
        choices=choices,
        upload=upload,
        control_after_generate=bool(opts.get("control_after_generate")),
        force_input=bool(opts.get("forceInput")),
        lazy=bool(opts.get("lazy")),
        advanced=bool(opts.get("advanced")),
        remote=isinstance(opts.get("remote"), dict),
        multiselect=bool(opts.get("multiselect")),
        options=MappingProxyType(opts),
    )


def ref_node(node_id: str, raw: Any) -> NodeDef:
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
        if isinstance(wanted, list):
            names = [n for n in wanted if n in sec] + [n for n in sec if n not in wanted]
        inputs.extend(ref_input(n, sec[n], section) for n in names)
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
            OutputSpec(
                name=name,
                type=type_name if not isinstance(t, list) else "COMBO",
                is_list=bool(is_list[i]) if i < len(is_list) else False,
                tooltip=_str(tips[i]) if i < len(tips) else "",
            )
        )
    return NodeDef(
        id=node_id,
        display_name=_str(raw.get("display_name")),
        description=_str(raw.get("description")),
        category=_str(raw.get("category")),
        python_module=_str(raw.get("python_module")),
        output_node=bool(raw.get("output_node")),
        deprecated=bool(raw.get("deprecated")),
        experimental=bool(raw.get("experimental")),
        api_node=bool(raw.get("api_node")),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
    )


def ref_catalog(doc: Mapping[str, Any]) -> NodeCatalog:
    nodes: list[NodeDef] = []
    warnings: list[str] = []
    for node_id, raw in doc.items():
        try:
            nodes.append(ref_node(str(node_id), raw))
        except (ValueError, TypeError, AttributeError) as exc:
            warnings.append(f"skipped node definition '{node_id}': {exc}")
    return NodeCatalog(nodes, warnings=warnings)


def fields_of(value: Any) -> list[tuple[str, Any, type]]:
    """Every field with its value and the value's exact type (True == 1, but a bool is not an int here)."""
    return [(f.name, getattr(value, f.name), type(getattr(value, f.name))) for f in dataclasses.fields(value)]


def assert_same(fast: NodeCatalog, ref: NodeCatalog) -> None:
    assert list(fast) == list(ref)
    assert fast.warnings == ref.warnings
    for node_id, want in ref.items():
        got = fast[node_id]
        assert type(got) is NodeDef
        assert got == want, node_id
        assert fields_of(got)[:9] == fields_of(want)[:9]
        for g, w in zip(got.inputs, want.inputs, strict=True):
            assert type(g) is InputSpec
            assert fields_of(g) == fields_of(w), (node_id, w.name)
            assert dict(g.options) == dict(w.options)
        for g2, w2 in zip(got.outputs, want.outputs, strict=True):
            assert type(g2) is OutputSpec
            assert fields_of(g2) == fields_of(w2)


@pytest.mark.parametrize("name", ["object_info.json", "object_info_with_api_nodes.json"])
def test_fast_path_gives_the_same_catalog_as_the_plain_reading(name: str) -> None:
    doc = load_json(name)
    assert_same(parse_object_info(doc), ref_catalog(doc))


EDGE_CASES: dict[str, Any] = {
    "Edges": {
        "input": {
            "required": {
                "empty_opts": ["MODEL", {}],
                "no_opts": ["LATENT"],
                "only_unknown": ["FOO", {"something": 1}],
                "bool_limits": ["INT", {"min": True, "max": False, "step": True, "round": True}],
                "float_limits": ["FLOAT", {"min": -1.5, "max": 2**64 - 1, "step": 0.01, "round": 0.001}],
                "bad_texts": ["STRING", {"tooltip": 5, "display_name": ["x"], "multiline": "yes"}],
                "flags": [
                    "STRING",
                    {
                        "dynamicPrompts": 1,
                        "control_after_generate": True,
                        "forceInput": True,
                        "lazy": True,
                        "advanced": True,
                        "multiselect": True,
                        "remote": {"route": "/x"},
                    },
                ],
                "remote_not_dict": ["COMBO", {"remote": "yes", "options": ["a", "b"]}],
                "combo_no_options": ["COMBO", {"options": "abc"}],
                "v1_combo": [["a", "b"], {"default": "a", "image_upload": True}],
                "uploads": ["STRING", {"file_upload": True, "video_upload": True, "audio_upload": 0}],
                "uploads_false": ["STRING", {"image_upload": False}],
                "opts_not_dict": ["INT", ["not", "a", "dict"]],
            },
            "optional": {"later": ["IMAGE", {"tooltip": "t"}]},
            "hidden": {"prompt": "PROMPT", "extra": "EXTRA_PNGINFO"},
        },
        "input_order": {"required": ["flags", "missing", "empty_opts"]},
        "output": ["IMAGE", ["a", "b"], 3],
        "output_name": ["out", 5],
        "output_is_list": [1],
        "output_tooltips": ["tip", None, "x"],
        "display_name": 7,
        "output_node": "yes",
    },
    "NotADict": ["x"],
    "BadInput": {"input": {"required": {"x": 5}}},
    "BadHead": {"input": {"required": {"x": [5, {}]}}},
    "EmptyList": {"input": {"required": {"x": []}}},
    "BadSection": {"input": {"optional": []}},
    "BadOutput": {"input": {}, "output": "IMAGE"},
    "UnhashableOrder": {"input": {"required": {"a": ["INT"]}}, "input_order": {"required": [["a"]]}},
}


def test_fast_path_agrees_on_odd_and_malformed_definitions() -> None:
    fast = parse_object_info(EDGE_CASES)
    assert_same(fast, ref_catalog(EDGE_CASES))
    assert list(fast) == ["Edges"]
    assert len(fast.warnings) == 7
    edges = fast["Edges"]
    assert edges.input("uploads") is not None and edges.input("uploads").upload == "video"  # type: ignore[union-attr]
    assert edges.input("bool_limits").min is None  # type: ignore[union-attr]


def test_built_specs_are_real_frozen_dataclasses() -> None:
    spec = parse_object_info(EDGE_CASES)["Edges"].inputs[0]
    assert isinstance(spec, InputSpec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    assert dataclasses.replace(spec, name="x").name == "x"
    assert repr(spec).startswith("InputSpec(name='flags', type='STRING'")
    with pytest.raises(TypeError):  # the options mapping is read-only, as before
        spec.options["x"] = 1  # type: ignore[index]


def test_not_an_object_still_raises() -> None:
    with pytest.raises(CatalogError):
        parse_object_info(["not", "an", "object"])
