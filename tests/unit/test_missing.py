"""What a workflow needs that the server lacks, against the captured catalog and real UI files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from comfydesk.core.errors import WorkflowError
from comfydesk.core.missing import (
    MissingPieces,
    build_partial_form,
    form_inputs,
    format_size,
    open_workflow,
    open_workflow_file,
    ui_document,
    unavailable_fields,
    workflow_needs,
)
from comfydesk.core.nodes import NodeCatalog, parse_object_info
from comfydesk.core.pngmeta import embed_workflow_png
from comfydesk.core.templates import FieldKind, build_form
from comfydesk.core.workflow import load_workflow
from tests.conftest import FIXTURES, load_json

UI = FIXTURES / "workflows" / "ui"
TINY = "tiny-random-sd15.safetensors"


def _open(name: str, catalog: NodeCatalog) -> tuple[Any, Any, Any]:
    data = (UI / f"{name}.json").read_bytes()
    wf = open_workflow(data, catalog=catalog, source=name)
    doc = ui_document(data)
    return wf, doc, workflow_needs(wf, catalog, doc)


def test_template_models_missing_with_folder_and_url(catalog: NodeCatalog) -> None:
    _wf, _doc, needs = _open("sdxl_simple_example", catalog)
    pieces = needs.check()
    assert [(m.name, m.folder) for m in pieces.models] == [
        ("sd_xl_base_1.0.safetensors", "checkpoints"),
        ("sd_xl_refiner_1.0.safetensors", "checkpoints"),
    ]
    base = pieces.models[0]
    assert base.url.startswith("https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/")
    assert base.inputs == (("4", "ckpt_name"),)
    assert base.choices == (TINY,)  # what the server has, to pick instead
    assert not pieces.nodes and pieces.blocking
    assert pieces.summary() == "2 models are missing"


def test_models_of_empty_folders_and_subgraphs(catalog: NodeCatalog) -> None:
    _wf, _doc, needs = _open("01_get_started_text_to_image", catalog)
    pieces = needs.check()
    by_name = {m.name: m for m in pieces.models}
    assert set(by_name) == {"qwen_3_4b.safetensors", "ae.safetensors", "z_image_turbo_bf16.safetensors"}
    # The server has no diffusion models at all: an empty list still proves the file is missing.
    assert by_name["z_image_turbo_bf16.safetensors"].folder == "diffusion_models"
    assert by_name["z_image_turbo_bf16.safetensors"].choices == ()
    assert by_name["ae.safetensors"].inputs == (("83:29", "vae_name"),)  # inside subgraph instance 83


def test_unknown_node_grouped_by_pack_and_form_still_builds(catalog: NodeCatalog) -> None:
    wf, doc, needs = _open("video_ltx2_pose_to_video", catalog)
    assert wf.graph["184"].class_type == ""  # the editor's way: no class_type
    pieces = needs.check()
    assert [(n.pack, n.node_types, n.node_ids) for n in pieces.nodes] == [
        ("comfyui_controlnet_aux", ("DWPreprocessor",), ("184",))
    ]
    assert pieces.summary() == "1 custom node and 5 models are missing"
    assert [f.value for f in pieces.files] == ["women_with_paper.png", "woman_with_paper.mp4"]

    spec = build_partial_form(wf, catalog, needs, doc)
    group = next(g for g in spec.groups if g.node_id == "184")
    assert group.class_type == "DWPreprocessor"
    assert [f.value for f in group.fields] == [
        "enable",
        "enable",
        "disable",
        512,
        "yolox_l.onnx",
        "dw-ll_ucoco_384_bs5.torchscript.pt",
        "disable",
    ]
    unavailable = unavailable_fields(spec, needs)
    assert set(unavailable) == {f.key for f in group.fields}
    assert "comfyui_controlnet_aux" in unavailable["184.value 1"]
    # The nodes the server knows have their usual fields.
    assert spec.field("160.image").kind is FieldKind.IMAGE
    with pytest.raises(WorkflowError):
        load_workflow((UI / "video_ltx2_pose_to_video.json").read_bytes(), catalog=catalog)


def test_api_workflow_with_unknown_node(catalog: NodeCatalog) -> None:
    prompt = load_json("workflows/api/empty_blur_save.json")
    prompt["99"] = {
        "class_type": "FancyUpscaler",
        "inputs": {"strength": 0.5, "mode": "fast", "image": ["1", 0]},
    }
    wf = load_workflow(prompt, catalog=catalog)
    needs = workflow_needs(wf, catalog)
    assert [(n.pack, n.node_types) for n in needs.nodes] == [("", ("FancyUpscaler",))]
    assert needs.nodes[0].pack_label == "an unknown node pack"
    spec = build_partial_form(wf, catalog, needs)
    fields = {f.key: f for f in spec.fields()}
    assert fields["99.strength"].kind is FieldKind.FLOAT and fields["99.mode"].value == "fast"
    assert "99.image" not in fields  # a link is no field
    assert needs.check().summary() == "1 custom node is missing"


def test_nothing_missing_is_build_form(catalog: NodeCatalog) -> None:
    wf = load_workflow(load_json("workflows/api/txt2img_tiny_sd15.json"), catalog=catalog)
    needs = workflow_needs(wf, catalog)
    assert needs.check().empty
    assert build_partial_form(wf, catalog, needs) == build_form(wf, catalog)


def test_picking_a_server_model_clears_it(catalog: NodeCatalog) -> None:
    wf, doc, needs = _open("default", catalog)
    spec = build_partial_form(wf, catalog, needs, doc)
    values = spec.defaults()
    assert [m.name for m in needs.check(form_inputs(spec, values)).models] == [
        "v1-5-pruned-emaonly-fp16.safetensors"
    ]
    values["4.ckpt_name"] = TINY
    assert needs.check(form_inputs(spec, values)).empty


def test_missing_input_file_is_a_warning_and_a_local_file_clears_it(catalog: NodeCatalog) -> None:
    prompt = load_json("workflows/api/load_invert_scale_save.json")
    loader = next(k for k, n in prompt.items() if n["class_type"] == "LoadImage")
    prompt[loader]["inputs"]["image"] = "holiday.png"
    wf = load_workflow(prompt, catalog=catalog)
    needs = workflow_needs(wf, catalog)
    spec = build_partial_form(wf, catalog, needs)
    pieces = needs.check()
    assert [(f.value, f.kind, f.node_title) for f in pieces.files] == [("holiday.png", "file", "Load Image")]
    assert not pieces.blocking and pieces.summary() == ""
    assert "doesn't have this file" in pieces.field_inputs()[(loader, "image")]
    values = spec.defaults() | {f"{loader}.image": Path("/tmp/holiday.png")}
    assert needs.check(form_inputs(spec, values)).empty


def test_other_choices_and_placeholders(catalog: NodeCatalog) -> None:
    prompt = load_json("workflows/api/txt2img_tiny_sd15.json")
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "KSampler")
    prompt[sampler]["inputs"]["sampler_name"] = "euler_future"
    ckpt = next(k for k, n in prompt.items() if n["class_type"] == "CheckpointLoaderSimple")
    prompt[ckpt]["inputs"]["ckpt_name"] = "{model}"
    wf = load_workflow(prompt, catalog=catalog)
    needs = workflow_needs(wf, catalog)
    pieces = needs.check()
    assert [(c.value, c.input_name) for c in pieces.choices] == [("euler_future", "sampler_name")]
    assert not pieces.models  # a placeholder is filled by the form
    assert pieces.summary() == "1 setting is missing"
    spec = build_partial_form(wf, catalog, needs)
    values = spec.defaults() | {"model": "nothing_like_it.safetensors"}
    assert [m.name for m in needs.check(form_inputs(spec, values)).models] == ["nothing_like_it.safetensors"]


def test_summary_wording() -> None:
    assert MissingPieces().summary() == "" and MissingPieces().empty
    from comfydesk.core.missing import MissingModel, MissingNodes

    pieces = MissingPieces(
        nodes=(MissingNodes("pack", ("A", "B"), ("1", "2")),),
        models=(MissingModel("m.safetensors", "loras"),),
    )
    assert pieces.summary() == "2 custom nodes and 1 model are missing"


def test_format_size() -> None:
    assert format_size(None) == ""
    assert format_size(512) == "512 bytes"
    assert format_size(2_136_746_230) == "2.1 GB"
    assert format_size(1_500_000) == "1.5 MB"


def test_model_sizes_and_pack_from_aux_id(catalog: NodeCatalog) -> None:
    doc: dict[str, Any] = json.loads((UI / "default.json").read_text(encoding="utf-8"))
    loader = next(n for n in doc["nodes"] if n["type"] == "CheckpointLoaderSimple")
    loader["properties"]["models"][0]["size"] = 2_132_625_230
    extra = copy.deepcopy(loader)
    extra.update(id=900, type="MysteryLoader", properties={"aux_id": "someone/comfyui-mystery"})
    extra["outputs"] = [dict(o, links=[]) for o in extra["outputs"]]
    doc["nodes"].append(extra)
    wf = open_workflow(doc, catalog=catalog)
    needs = workflow_needs(wf, catalog, ui_document(doc))
    pieces = needs.check()
    assert [(n.pack, n.node_types) for n in pieces.nodes] == [("someone/comfyui-mystery", ("MysteryLoader",))]
    assert pieces.models[0].size == 2_132_625_230


def test_ui_document_from_png_and_bad_input(tmp_path: Path, catalog: NodeCatalog) -> None:
    doc = json.loads((UI / "sdxl_simple_example.json").read_text(encoding="utf-8"))
    png = embed_workflow_png((FIXTURES / "misc" / "upload_source.png").read_bytes(), workflow=doc)
    path = tmp_path / "from_web.png"
    path.write_bytes(png)
    wf, found = open_workflow_file(path, catalog)
    assert found is not None and found["nodes"] == doc["nodes"]
    models = workflow_needs(wf, catalog, found).check().models
    assert models[0].name == "sd_xl_base_1.0.safetensors"
    assert ui_document(b"not json") is None
    assert ui_document(load_json("workflows/api/empty_blur_save.json")) is None
    with pytest.raises(WorkflowError, match="cannot read the file"):
        open_workflow_file(tmp_path / "gone.json", catalog)


def test_muted_unknown_node_is_not_missing(catalog: NodeCatalog) -> None:
    doc: dict[str, Any] = json.loads((UI / "video_ltx2_pose_to_video.json").read_text(encoding="utf-8"))
    node = next(n for n in doc["nodes"] if n["type"] == "DWPreprocessor")
    node["mode"] = 2
    wf = open_workflow(doc, catalog=catalog)
    assert not workflow_needs(wf, catalog, ui_document(doc)).nodes


def test_fresh_catalog_with_the_model_clears_it(object_info: dict[str, Any]) -> None:
    info = copy.deepcopy(object_info)
    info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0].append("sd_xl_base_1.0.safetensors")
    fresh = parse_object_info(info)
    _wf, _doc, needs = _open("sdxl_simple_example", fresh)
    assert [m.name for m in needs.check().models] == ["sd_xl_refiner_1.0.safetensors"]
