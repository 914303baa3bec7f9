"""V3 dynamic inputs (dynamic combo, autogrow, match type) in validation and the fake's prompt validation,
built from the real object_info entries that use them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from comfydesk.core.errors import ValidationError
from comfydesk.core.graph import ApiGraph
from comfydesk.core.nodes import NodeCatalog, live_inputs
from comfydesk.core.templates import FieldKind, build_form
from comfydesk.core.validate import validate_graph
from comfydesk.testing.validation import validate_prompt
from tests.conftest import load_json

RESIZE = {
    "resize_type": "scale dimensions",
    "resize_type.width": 640,
    "resize_type.height": 480,
    "resize_type.crop": "center",
    "scale_method": "area",
    "input": ["1", 0],
}


def prompt_with(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "5": node,
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
    }


def core_kinds(prompt: dict[str, Any], catalog: NodeCatalog) -> list[tuple[str, str, str | None]]:
    issues = validate_graph(ApiGraph.from_prompt(copy.deepcopy(prompt)), catalog)
    return [(i.node_id, i.kind, i.input_name) for i in issues if i.node_id == "5"]


def fake_errors(prompt: dict[str, Any], object_info: dict[str, Any]) -> list[tuple[str, str]]:
    result = validate_prompt(copy.deepcopy(prompt), object_info, image_exists=lambda _: True)
    errors = result.node_errors.get("5", {}).get("errors", [])
    return [(e["type"], e["extra_info"].get("input_name", "")) for e in errors]


# ------------------------------------------------------------------------------------- live inputs


def test_dynamic_combo_expands_to_the_chosen_option(catalog: NodeCatalog) -> None:
    specs = live_inputs(catalog["ResizeImageMaskNode"].inputs, RESIZE)
    names = [(s.name, s.type) for s in specs]
    assert names == [
        ("input", "IMAGE,MASK"),
        ("resize_type", "COMBO"),
        ("resize_type.width", "INT"),
        ("resize_type.height", "INT"),
        ("resize_type.crop", "COMBO"),
        ("scale_method", "COMBO"),
    ]
    assert specs[1].choices is not None and "match size" in specs[1].choices
    other = live_inputs(catalog["ResizeImageMaskNode"].inputs, {"resize_type": "match size"})
    assert [s.name for s in other if s.name.startswith("resize_type.")] == [
        "resize_type.match",
        "resize_type.crop",
    ]


def test_autogrow_slots_first_min_required(catalog: NodeCatalog) -> None:
    specs = live_inputs(catalog["BatchImagesNode"].inputs, {})
    assert len(specs) == 50
    assert [(s.name, s.type, s.required) for s in specs[:3]] == [
        ("images.image0", "IMAGE", True),
        ("images.image1", "IMAGE", True),
        ("images.image2", "IMAGE", False),
    ]


def test_match_type_takes_its_allowed_types(catalog: NodeCatalog) -> None:
    specs = {s.name: s.type for s in live_inputs(catalog["ComfySwitchNode"].inputs, {})}
    assert specs == {"switch": "BOOLEAN", "on_false": "*", "on_true": "*"}


def test_api_catalog_v3_entries_expand(api_catalog: NodeCatalog) -> None:
    for node_def in api_catalog.values():
        for spec in node_def.inputs:
            if spec.is_dynamic_combo:
                options = spec.dynamic_options()
                assert options, (node_def.id, spec.name)
                key = next(iter(options))
                names = [s.name for s in live_inputs(node_def.inputs, {spec.name: key})]
                assert all(f"{spec.name}.{sub.name}" in names for sub in options[key])


# ----------------------------------------------------------------------------- core validation / fake


def test_valid_resize_passes_core_and_fake(catalog: NodeCatalog, object_info: dict[str, Any]) -> None:
    prompt = prompt_with({"class_type": "ResizeImageMaskNode", "inputs": dict(RESIZE)})
    assert core_kinds(prompt, catalog) == []
    assert fake_errors(prompt, object_info) == []


@pytest.mark.parametrize(
    ("change", "core", "fake"),
    [
        (
            {"resize_type.width": 99999},
            ("value_bigger_than_max", "resize_type.width"),
            ("value_bigger_than_max", "resize_type.width"),
        ),
        (
            {"resize_type.crop": "nope"},
            ("value_not_in_list", "resize_type.crop"),
            ("value_not_in_list", "resize_type.crop"),
        ),
        (
            {"resize_type": "scale sideways"},
            ("value_not_in_list", "resize_type"),
            ("value_not_in_list", "resize_type"),
        ),
    ],
)
def test_bad_resize_values(
    change: dict[str, Any],
    core: tuple[str, str],
    fake: tuple[str, str],
    catalog: NodeCatalog,
    object_info: dict[str, Any],
) -> None:
    prompt = prompt_with({"class_type": "ResizeImageMaskNode", "inputs": {**RESIZE, **change}})
    assert ("5", *core) in core_kinds(prompt, catalog)
    assert fake in fake_errors(prompt, object_info)


def test_missing_sub_input_of_the_chosen_option(catalog: NodeCatalog, object_info: dict[str, Any]) -> None:
    inputs = {k: v for k, v in RESIZE.items() if k != "resize_type.height"}
    prompt = prompt_with({"class_type": "ResizeImageMaskNode", "inputs": inputs})
    assert ("5", "required_input_missing", "resize_type.height") in core_kinds(prompt, catalog)
    assert ("required_input_missing", "resize_type.height") in fake_errors(prompt, object_info)


def test_autogrow_needs_its_minimum(catalog: NodeCatalog, object_info: dict[str, Any]) -> None:
    ok = prompt_with(
        {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["1", 0], "images.image1": ["2", 0]}}
    )
    assert core_kinds(ok, catalog) == []
    assert fake_errors(ok, object_info) == []
    short = prompt_with({"class_type": "BatchImagesNode", "inputs": {"images.image0": ["1", 0]}})
    assert ("5", "required_input_missing", "images.image1") in core_kinds(short, catalog)
    assert ("required_input_missing", "images.image1") in fake_errors(short, object_info)


def test_match_type_switch_accepts_any_type(catalog: NodeCatalog, object_info: dict[str, Any]) -> None:
    prompt = prompt_with(
        {
            "class_type": "ComfySwitchNode",
            "inputs": {"switch": True, "on_false": ["1", 0], "on_true": ["2", 0]},
        }
    )
    assert core_kinds(prompt, catalog) == []
    assert fake_errors(prompt, object_info) == []  # and its COMFY_MATCHTYPE_V3 output feeds PreviewImage
    assert validate_prompt(copy.deepcopy(prompt), object_info, image_exists=lambda _: True).ok


# ---------------------------------------------------------------------------------------- forms


def ltx_form(catalog: NodeCatalog) -> Any:
    """The LTX template's Resize node with its two linked PrimitiveInts, fed by a LoadImage."""
    from comfydesk.core.convert import convert_ui_workflow
    from comfydesk.core.workflow import Workflow

    doc = load_json("workflows/ui/video_ltx2_pose_to_video.json")
    full = convert_ui_workflow(doc, catalog, lenient=True).graph.to_prompt()
    prompt = {k: full[k] for k in ("166", "167", "164")}
    prompt["164"]["inputs"]["input"] = ["1", 0]
    prompt["1"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
    prompt["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["164", 0]}}
    return build_form(Workflow(name="ltx", graph=ApiGraph.from_prompt(prompt)), catalog)


def resize_form(catalog: NodeCatalog, inputs: dict[str, Any]) -> Any:
    from comfydesk.core.workflow import Workflow

    prompt = prompt_with({"class_type": "ResizeImageMaskNode", "inputs": inputs})
    return build_form(Workflow(name="r", graph=ApiGraph.from_prompt(prompt)), catalog)


def test_form_dynamic_combo_is_one_choice_with_sub_fields(catalog: NodeCatalog) -> None:
    form = resize_form(catalog, dict(RESIZE))
    combo = form.field("5.resize_type")
    assert combo.kind is FieldKind.CHOICE and combo.is_dynamic_combo
    assert combo.value == "scale dimensions" and combo.choices is not None and "match size" in combo.choices
    assert [(s.key, s.kind, s.value) for s in combo.sub_fields()] == [
        ("5.resize_type.width", FieldKind.INT, 640),
        ("5.resize_type.height", FieldKind.INT, 480),
        ("5.resize_type.crop", FieldKind.CHOICE, "center"),
    ]
    assert [s.key for s in combo.sub_fields("scale by multiplier")] == ["5.resize_type.multiplier"]
    assert [s.key for s in combo.sub_fields("match size")] == ["5.resize_type.crop"]  # `match` is a socket
    assert form.field("5.resize_type.multiplier").value == 1.0
    assert [k for k in form.defaults() if k.startswith("5.")] == [
        "5.resize_type",
        "5.resize_type.width",
        "5.resize_type.height",
        "5.resize_type.crop",
        "5.scale_method",
    ]


def test_form_fill_writes_only_the_chosen_options_flat_keys(
    catalog: NodeCatalog, object_info: dict[str, Any]
) -> None:
    form = resize_form(catalog, dict(RESIZE))
    graph = form.fill({"5.resize_type": "scale by multiplier", "5.resize_type.multiplier": 2.5})
    assert graph["5"].inputs == {
        "resize_type": "scale by multiplier",
        "resize_type.multiplier": 2.5,
        "scale_method": "area",
        "input": ["1", 0],
    }
    assert fake_errors(graph.to_prompt(), object_info) == []
    same = form.fill({"5.resize_type.width": 800})
    assert same["5"].inputs["resize_type.width"] == 800 and same["5"].inputs["resize_type.crop"] == "center"


def test_form_sub_field_checked_against_its_spec(catalog: NodeCatalog) -> None:
    form = resize_form(catalog, dict(RESIZE))
    issues = form.validate({"5.resize_type": "scale dimensions", "5.resize_type.width": 10**6})
    assert [(i.field_key, i.kind) for i in issues] == [("5.resize_type.width", "value_bigger_than_max")]
    with pytest.raises(ValidationError):
        form.fill({"5.resize_type": "nope"})


def test_form_ltx_linked_sub_inputs_have_no_field_and_stay_linked(catalog: NodeCatalog) -> None:
    form = ltx_form(catalog)
    combo = form.field("164.resize_type")
    assert [s.input_name for s in combo.sub_fields()] == ["resize_type.crop"]  # width/height are linked
    graph = form.fill({"164.resize_type.crop": "disabled"})
    assert graph["164"].inputs == {
        "resize_type": "scale dimensions",
        "resize_type.width": ["166", 0],
        "resize_type.height": ["167", 0],
        "resize_type.crop": "disabled",
        "scale_method": "lanczos",
        "input": ["1", 0],
    }
    switched = form.fill({"164.resize_type": "scale longer dimension", "164.resize_type.longer_size": 1024})
    assert switched["164"].inputs == {
        "resize_type": "scale longer dimension",
        "resize_type.longer_size": 1024,
        "scale_method": "lanczos",
        "input": ["1", 0],
    }
