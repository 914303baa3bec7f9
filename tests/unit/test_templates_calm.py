"""The calm form's model (issue 11) and V3 link notes (issue 10): titles, Advanced, linked inputs, size
presets, autogrow and match-type notes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from comfydesk.core.graph import ApiGraph
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.templates import build_form, model_family, size_presets
from comfydesk.core.workflow import Workflow, load_workflow
from tests.conftest import load_json


def form_of(prompt: dict[str, Any], catalog: NodeCatalog) -> Any:
    return build_form(Workflow(name="t", graph=ApiGraph.from_prompt(copy.deepcopy(prompt))), catalog)


@pytest.fixture(scope="module")
def tiny() -> dict[str, Any]:
    doc: dict[str, Any] = load_json("workflows/api/txt2img_tiny_sd15.json")
    return doc


def test_titles_are_names_a_person_says(tiny: dict[str, Any], catalog: NodeCatalog) -> None:
    doc = copy.deepcopy(tiny)
    doc["3"]["_meta"] = {"title": "My sampler"}  # a title the user gave wins
    doc["20"] = {
        "class_type": "ModelSamplingDiscrete",
        "inputs": {"model": ["4", 0], "sampling": "eps", "zsnr": False},
    }
    titles = {g.node_id: g.title for g in form_of(doc, catalog).groups}
    assert titles["3"] == "My sampler"
    assert (titles["6"], titles["7"], titles["5"]) == ("Prompt", "Negative prompt", "Image size")
    assert titles["20"] == "Model sampling discrete"  # a bare class name, split into words
    assert not any("#" in t for t in titles.values())


def test_a_second_group_of_one_name_is_numbered(tiny: dict[str, Any], catalog: NodeCatalog) -> None:
    doc = copy.deepcopy(tiny)
    doc["8b"] = copy.deepcopy(doc["3"])
    titles = [g.title for g in form_of(doc, catalog).groups]
    assert titles.count("Sampler") == 1 and "Sampler 2" in titles


def test_plumbing_is_advanced(tiny: dict[str, Any], catalog: NodeCatalog) -> None:
    spec = form_of(tiny, catalog)
    advanced = {f.key for f in spec.fields() if f.advanced}
    assert "9.filename_prefix" in advanced
    assert ("4.ckpt_name" in advanced) == (len(spec.field("4.ckpt_name").choices or ()) <= 1)
    assert not {"3.seed", "3.steps", "3.cfg", "5.width", "6.text"} & advanced


def test_equal_sizes_are_linked_and_fill_sets_both(tiny: dict[str, Any], catalog: NodeCatalog) -> None:
    doc = copy.deepcopy(tiny)
    w, h = doc["5"]["inputs"]["width"], doc["5"]["inputs"]["height"]
    doc["12"] = {"class_type": "EmptyImage", "inputs": {"width": w, "height": h, "batch_size": 2, "color": 0}}
    spec = form_of(doc, catalog)
    assert spec.field("5.width").linked == (("12", "width"),)
    assert spec.field("5.height").linked == (("12", "height"),)
    assert spec.field_for("12", "width") is spec.field("5.width")
    assert not spec.field("5.batch_size").linked  # 1 and 2 differ: two fields
    with pytest.raises(KeyError):
        spec.field("12.width")
    graph = spec.fill({"5.width": 320, "5.height": 192})
    assert graph["5"].inputs["width"] == graph["12"].inputs["width"] == 320
    assert graph["5"].inputs["height"] == graph["12"].inputs["height"] == 192


def test_a_linked_value_out_of_range_names_the_field(tiny: dict[str, Any], catalog: NodeCatalog) -> None:
    doc = copy.deepcopy(tiny)
    w = doc["5"]["inputs"]["width"]
    doc["12"] = {"class_type": "EmptyImage", "inputs": {"width": w, "height": 7, "batch_size": 1, "color": 0}}
    spec = form_of(doc, catalog)
    issues = spec.validate({"5.width": 10**9})
    assert [i.field_key for i in issues] == ["5.width"]


def test_primitive_links_of_a_ui_file(catalog: NodeCatalog) -> None:
    wf = load_workflow(load_json("workflows/ui/sdxl_simple_example.json"), catalog=catalog)
    spec = build_form(wf, catalog)
    assert spec.field("10.steps").linked == (("11", "steps"),)
    assert spec.field("10.end_at_step").linked == (("11", "start_at_step"),)
    assert spec.field_for("11", "start_at_step") is spec.field("10.end_at_step")


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("sd_xl_base_1.0.safetensors", ("SDXL", 1024)),
        ("v1-5-pruned-emaonly.safetensors", ("SD1.5", 512)),
        ("tiny-random-sd15.safetensors", ("SD1.5", 512)),
        ("flux1-dev-fp8.safetensors", ("Flux", 1024)),
        ("sd3.5_large.safetensors", ("SD3", 1024)),
        ("v2-1_768-ema-pruned.safetensors", ("SD2", 768)),
        ("mystery.ckpt", None),
        (None, None),
    ],
)
def test_model_family_from_the_file_name(name: str | None, family: tuple[str, int] | None) -> None:
    assert model_family(name) == family


def test_size_presets() -> None:
    sd15 = size_presets("v1-5-pruned-emaonly.safetensors")
    assert (sd15[0].label, sd15[0].width, sd15[0].height) == ("SD1.5 1:1 · 512×512", 512, 512)
    assert all(p.width % 64 == 0 and p.height % 64 == 0 for p in sd15)
    wide = next(p for p in size_presets("sd_xl_base_1.0.safetensors") if "16:9" in p.label)
    assert (wide.width, wide.height) == (1344, 768)
    assert abs(wide.width * wide.height - 1024 * 1024) / (1024 * 1024) < 0.05  # about the native pixel count
    unknown = size_presets("mystery.ckpt")
    assert unknown[0].label == "1:1 · 1024×1024"
    assert [p.label for p in unknown if "native" in p.label] == [
        "SD1.5 native · 512×512",
        "SD2 native · 768×768",
    ]


def test_autogrow_and_match_type_notes(catalog: NodeCatalog) -> None:
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "4": {
            "class_type": "BatchImagesNode",
            "inputs": {"images.image0": ["1", 0], "images.image1": ["1", 0]},
        },
        "5": {
            "class_type": "ComfySwitchNode",
            "inputs": {"switch": True, "on_false": ["1", 1], "on_true": ["4", 0]},
        },
    }
    spec = form_of(prompt, catalog)
    notes = {g.node_id: g.notes for g in spec.groups}
    assert notes["4"] == ("Images: 2 connected (image0, image1)",)
    assert notes["5"] == ("On false: MASK", "On true: IMAGE")
    empty = form_of({"4": {"class_type": "BatchImagesNode", "inputs": {}}}, catalog)
    assert empty.groups[0].notes == ("Images: nothing connected",)
