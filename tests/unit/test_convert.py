"""UI-format -> API-format conversion, checked against what the real ComfyUI frontend (1.35.9) produced."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from comfydesk.core.convert import (
    ConversionReport,
    ConversionResult,
    convert_ui_workflow,
    is_ui_workflow,
)
from comfydesk.core.errors import ConversionError, UnknownNodeTypeError, WorkflowFormatError
from comfydesk.core.graph import ApiGraph
from comfydesk.core.nodes import NodeCatalog
from tests.conftest import load_json

UI_FILES = [
    "01_get_started_text_to_image",
    "default",
    "flux_fill_inpaint_example",
    "flux_schnell",
    "sd3.5_simple_example",
    "sdxl_simple_example",
    "sdxlturbo_example",
    "text_to_video_wan",
]


def ui(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = load_json(f"workflows/ui/{name}.json")
    return doc


def reference(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = load_json(f"workflows/ui_reference_api/{name}.json")
    return doc


def same_value(a: Any, b: Any) -> bool:
    """JSON equality with numbers compared numerically (JS has no 8.0) but booleans kept apart."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def node_of(doc: dict[str, Any], node_id: int, graph: dict[str, Any] | None = None) -> dict[str, Any]:
    g = graph if graph is not None else doc
    found: dict[str, Any] = next(n for n in g["nodes"] if n["id"] == node_id)
    return found


def convert(doc: dict[str, Any], catalog: NodeCatalog, source: str | None = None) -> ConversionResult:
    return convert_ui_workflow(doc, catalog, source=source)


# ------------------------------------------------------------------------------------ the 8 references


@pytest.mark.parametrize("name", UI_FILES)
def test_matches_frontend_reference_node_by_node(name: str, catalog: NodeCatalog) -> None:
    result = convert(ui(name), catalog, source=f"{name}.json")
    got = result.graph.to_prompt()
    ref = reference(name)
    assert set(got) == set(ref)
    for node_id, want in ref.items():
        have = got[node_id]
        assert have["class_type"] == want["class_type"], node_id
        assert have["_meta"]["title"] == want["_meta"]["title"], node_id
        # widget inputs first in widget order, then linked inputs in slot order
        assert list(have["inputs"]) == list(want["inputs"]), node_id
        for key, value in want["inputs"].items():
            assert same_value(have["inputs"][key], value), (node_id, key, have["inputs"][key], value)


@pytest.mark.parametrize("name", UI_FILES)
def test_key_order_matches_reference(name: str, catalog: NodeCatalog) -> None:
    got = list(convert(ui(name), catalog).graph)
    ref = list(reference(name))
    assert [k for k in got if k.isdigit()] == [k for k in ref if k.isdigit()]
    assert got == ref  # "83:x" ids too, in the frontend's order


@pytest.mark.parametrize("name", UI_FILES)
def test_output_is_a_valid_api_graph(name: str, catalog: NodeCatalog) -> None:
    graph = convert(ui(name), catalog).graph
    again = ApiGraph.from_prompt(graph.to_prompt())
    assert again.to_prompt() == graph.to_prompt()
    for node in graph.values():
        assert node.class_type in catalog
        for value in node.inputs.values():
            if isinstance(value, list):  # every link points at a node of the output
                assert value[0] in graph and isinstance(value[1], int)


def test_seed_kept_and_control_value_skipped(catalog: NodeCatalog) -> None:
    inputs = convert(ui("default"), catalog).graph["3"].inputs
    assert inputs["seed"] == 685468484323813
    assert "control_after_generate" not in inputs
    assert "randomize" not in inputs.values()
    assert inputs["steps"] == 20 and inputs["sampler_name"] == "euler"


def test_load_image_upload_widget_not_emitted(catalog: NodeCatalog) -> None:
    inputs = convert(ui("flux_fill_inpaint_example"), catalog).graph["17"].inputs
    assert inputs == {"image": "flux_fill_inpaint_example_input_image.png"}


# ------------------------------------------------------------------------------------------- reports


def test_report_sdxl_primitives_and_notes(catalog: NodeCatalog) -> None:
    report = convert(ui("sdxl_simple_example"), catalog).report
    notes = [n for n in ui("sdxl_simple_example")["nodes"] if n["type"] in ("Note", "MarkdownNote")]
    assert len(report.dropped) == len(notes) == 10
    for note in notes:
        assert any(
            line.startswith(f"node {note['id']} ({note['type']}) dropped") and "not executable" in line
            for line in report.dropped
        )
    by_node = {line.split(" ")[1]: line for line in report.expanded}
    assert set(by_node) == {"45", "47", "50", "51"}
    assert "node 10 'steps'" in by_node["45"] and "node 11 'steps'" in by_node["45"]
    assert "node 10 'end_at_step'" in by_node["47"] and "node 11 'start_at_step'" in by_node["47"]
    assert "node 6 'text'" in by_node["51"] and "node 15 'text'" in by_node["51"]
    assert report.guessed == []
    assert report.lines() == report.dropped + report.expanded + report.guessed


def test_primitive_value_is_inlined_not_the_target_widget(catalog: NodeCatalog) -> None:
    doc = ui("sdxl_simple_example")
    node_of(doc, 45)["widgets_values"] = [31, "fixed"]
    node_of(doc, 51)["widgets_values"] = ["a red fox"]
    graph = convert(doc, catalog).graph
    assert graph["10"].inputs["steps"] == 31 and graph["11"].inputs["steps"] == 31
    assert graph["6"].inputs["text"] == "a red fox" and graph["15"].inputs["text"] == "a red fox"
    assert "45" not in graph and "51" not in graph
    assert list(graph["10"].inputs)[:3] == ["add_noise", "noise_seed", "steps"]  # still at widget position


def test_report_get_started_subgraph_and_nested_bypass(catalog: NodeCatalog) -> None:
    result = convert(ui("01_get_started_text_to_image"), catalog)
    report = result.report
    assert any(line.startswith("node 84 (MarkdownNote) dropped") for line in report.dropped)
    assert any(
        line.startswith("node 83:11 (ModelSamplingAuraFlow) dropped") and "bypassed" in line
        for line in report.dropped
    )
    assert any(line.startswith("subgraph instance 83 ") and "83:<id>" in line for line in report.expanded)
    assert any("83:3 (KSampler) input 'model'" in line and "83:28" in line for line in report.expanded)
    assert "83:11" not in result.graph and "83" not in result.graph
    assert result.graph["83:3"].inputs["model"] == ["83:28", 0]
    assert result.graph["60"].inputs["images"] == ["83:8", 0]


def test_report_flux_fill_subgraph(catalog: NodeCatalog) -> None:
    result = convert(ui("flux_fill_inpaint_example"), catalog)
    assert [line for line in result.report.dropped if "45" in line] == [
        "node 45 (MarkdownNote) dropped: notes are not executable"
    ]
    assert any(line.startswith("subgraph instance 47 ") for line in result.report.expanded)
    assert result.report.guessed == []
    # links entering the subgraph point straight at the real outer node
    assert result.graph["47:38"].inputs["pixels"] == ["17", 0]
    assert result.graph["47:38"].inputs["mask"] == ["17", 1]


def test_unlinked_subgraph_input_takes_the_promoted_widget_value(catalog: NodeCatalog) -> None:
    doc = ui("flux_fill_inpaint_example")
    sub = doc["definitions"]["subgraphs"][0]
    node_of(doc, 3, sub)["widgets_values"][0] = 1234
    inputs = convert(doc, catalog).graph["47:3"].inputs
    assert inputs["seed"] == 1234
    assert next(iter(inputs)) == "seed"


def test_unlinked_subgraph_input_gives_one_value_to_every_inner_widget(catalog: NodeCatalog) -> None:
    doc = ui("flux_fill_inpaint_example")
    sub = doc["definitions"]["subgraphs"][0]
    sampler = node_of(doc, 3, sub)
    sampler["widgets_values"][0] = 1234  # seed, the first widget the "seed" subgraph input feeds
    sampler["inputs"].append({"name": "steps", "type": "INT", "widget": {"name": "steps"}, "link": 104})
    sub["links"].append(
        {"id": 104, "origin_id": -10, "origin_slot": 2, "target_id": 3, "target_slot": 5, "type": "INT"}
    )
    sub["inputs"][2]["linkIds"].append(104)
    inputs = convert(doc, catalog).graph["47:3"].inputs
    assert inputs["seed"] == 1234
    assert inputs["steps"] == 1234  # the instance has one widget for that input, not the inner 20


def test_subgraph_input_fed_from_outside_by_a_primitive(catalog: NodeCatalog) -> None:
    doc = ui("flux_fill_inpaint_example")
    doc["nodes"].append(
        {
            "id": 90,
            "type": "PrimitiveNode",
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "INT", "type": "INT", "links": [200]}],
            "widgets_values": [42, "fixed"],
        }
    )
    node_of(doc, 47)["inputs"].append(
        {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 200}
    )
    doc["links"].append([200, 90, 0, 47, 2, "INT"])
    result = convert(doc, catalog)
    assert result.graph["47:3"].inputs["seed"] == 42
    assert any(line.startswith("node 90 (PrimitiveNode)") for line in result.report.expanded)


# ------------------------------------------------------------------------------- muted, bypass, reroute


def test_muted_node_dropped_and_consumers_disconnected(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 7)["mode"] = 2
    result = convert(doc, catalog)
    assert "7" not in result.graph
    assert "negative" not in result.graph["3"].inputs
    assert result.graph["3"].inputs["positive"] == ["6", 0]
    assert "node 7 (CLIPTextEncode) dropped: muted" in result.report.dropped
    assert any(
        "node 3 (KSampler) input 'negative' left unconnected" in line for line in result.report.dropped
    )


def test_bypassed_node_rewires_consumer_to_input_of_matching_type(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 3)["mode"] = 4  # KSampler: LATENT out, LATENT is its 4th input
    result = convert(doc, catalog)
    assert "3" not in result.graph
    assert result.graph["8"].inputs["samples"] == ["5", 0]
    assert any(line.startswith("node 3 (KSampler) dropped: bypassed") for line in result.report.dropped)
    assert any("node 8 (VAEDecode) input 'samples' wired to 5" in line for line in result.report.expanded)


def test_muted_and_bypassed_in_one_workflow(catalog: NodeCatalog) -> None:
    doc = ui("default")
    # an ImageInvert spliced between VAEDecode 8 and SaveImage 9, bypassed; the negative prompt muted
    doc["nodes"].append(
        {
            "id": 20,
            "type": "ImageInvert",
            "mode": 4,
            "inputs": [{"name": "image", "type": "IMAGE", "link": 9}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [300]}],
            "widgets_values": [],
        }
    )
    doc["links"] = [lk for lk in doc["links"] if lk[0] != 9] + [
        [9, 8, 0, 20, 0, "IMAGE"],
        [300, 20, 0, 9, 0, "IMAGE"],
    ]
    node_of(doc, 9)["inputs"][0]["link"] = 300
    node_of(doc, 7)["mode"] = 2
    result = convert(doc, catalog)
    assert set(result.graph) == {"3", "4", "5", "6", "8", "9"}
    assert result.graph["9"].inputs == {"filename_prefix": "SD1.5", "images": ["8", 0]}
    assert "negative" not in result.graph["3"].inputs
    dropped = "\n".join(result.report.dropped)
    assert (
        "node 20 (ImageInvert) dropped: bypassed" in dropped
        and "node 7 (CLIPTextEncode) dropped: muted" in dropped
    )


def test_bypassed_node_without_matching_input_leaves_input_out(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 8)["mode"] = 4  # VAEDecode has no IMAGE input to pass on
    result = convert(doc, catalog)
    assert "images" not in result.graph["9"].inputs
    assert any("node 8 (VAEDecode) is bypassed but has no IMAGE input" in g for g in result.report.guessed)


def test_muted_subgraph_instance_drops_its_inner_nodes(catalog: NodeCatalog) -> None:
    doc = ui("01_get_started_text_to_image")
    node_of(doc, 83)["mode"] = 2
    result = convert(doc, catalog)
    assert list(result.graph) == ["60"]
    assert result.graph["60"].inputs == {"filename_prefix": "z-image-turbo"}
    assert any(line.startswith("subgraph instance 83 ") for line in result.report.dropped)


def test_reroute_collapsed(catalog: NodeCatalog) -> None:
    doc = ui("default")
    doc["nodes"].append(
        {
            "id": 30,
            "type": "Reroute",
            "mode": 0,
            "inputs": [{"name": "", "type": "*", "link": 100}],
            "outputs": [{"name": "", "type": "VAE", "links": [101]}],
        }
    )
    doc["links"] = [lk for lk in doc["links"] if lk[0] != 8] + [
        [100, 4, 2, 30, 0, "VAE"],
        [101, 30, 0, 8, 1, "VAE"],
    ]
    node_of(doc, 8)["inputs"][1]["link"] = 101
    result = convert(doc, catalog)
    assert result.graph["8"].inputs["vae"] == ["4", 2]
    assert "30" not in result.graph
    assert any(line.startswith("node 30 (Reroute) collapsed") for line in result.report.expanded)


def test_widget_input_linked_from_a_real_node_takes_the_link(catalog: NodeCatalog) -> None:
    doc = ui("default")
    doc["nodes"].append(
        {
            "id": 20,
            "type": "PrimitiveInt",
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "INT", "type": "INT", "links": [200]}],
            "widgets_values": [7, "fixed"],
        }
    )
    node_of(doc, 3)["inputs"].append({"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 200})
    doc["links"].append([200, 20, 0, 3, 4, "INT"])
    graph = convert(doc, catalog).graph
    assert graph["3"].inputs["seed"] == ["20", 0]
    assert next(iter(graph["3"].inputs)) == "seed"  # keeps its widget position
    assert graph["20"].inputs == {"value": 7}
    assert graph["20"].title == "Int"


# ------------------------------------------------------------------------------------- widget values


def test_dict_widgets_values_mapped_by_name(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 3)["widgets_values"] = {
        "seed": 5,
        "control_after_generate": "fixed",
        "steps": 12,
        "cfg": 6.5,
        "sampler_name": "dpmpp_2m",
        "scheduler": "karras",
    }
    result = convert(doc, catalog)
    inputs = result.graph["3"].inputs
    assert list(inputs)[:6] == ["seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"]
    assert (inputs["seed"], inputs["steps"], inputs["cfg"], inputs["scheduler"]) == (5, 12, 6.5, "karras")
    assert inputs["denoise"] == 1.0  # not saved: the definition's default
    assert any("node 3 (KSampler) 'denoise' not saved" in g for g in result.report.guessed)


def test_widget_values_without_control_value_are_realigned(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 3)["widgets_values"] = [99, 20, 8, "euler", "normal", 1]
    result = convert(doc, catalog)
    inputs = result.graph["3"].inputs
    assert (inputs["seed"], inputs["steps"], inputs["cfg"], inputs["denoise"]) == (99, 20, 8, 1)
    assert any("without the seed-control values" in g for g in result.report.guessed)


def test_too_few_widget_values_fall_back_to_defaults(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 5)["widgets_values"] = [768]
    result = convert(doc, catalog)
    assert result.graph["5"].inputs == {"width": 768, "height": 512, "batch_size": 1}
    assert any("node 5 (EmptyLatentImage) has 1 widget values" in g for g in result.report.guessed)


def test_legacy_seed_name_gets_a_control_value(catalog: NodeCatalog) -> None:
    assert not catalog["RandomCropImages"].input("seed").control_after_generate  # type: ignore[union-attr]
    doc = {
        "nodes": [
            {
                "id": 1,
                "type": "RandomCropImages",
                "mode": 0,
                "inputs": [{"name": "images", "type": "IMAGE", "link": None}],
                "outputs": [],
                "widgets_values": [256, 128, 77, "randomize"],
            }
        ],
        "links": [],
    }
    result = convert(doc, catalog)
    assert result.graph["1"].inputs == {"width": 256, "height": 128, "seed": 77}
    assert result.report.guessed == []


def test_list_widget_value_is_boxed(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 6)["widgets_values"] = [["a", "b"]]
    assert convert(doc, catalog).graph["6"].inputs["text"] == {"__value__": ["a", "b"]}


def test_conversion_does_not_alias_the_document(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 6)["widgets_values"] = [["a"]]
    before = copy.deepcopy(doc)
    graph = convert(doc, catalog).graph
    graph["6"].inputs["text"]["__value__"].append("x")
    assert doc == before


# -------------------------------------------------------------------------------------------- errors


def test_unknown_node_types_are_all_named(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 5)["type"] = "FancyLatent"
    node_of(doc, 8)["type"] = "MysteryDecode"
    with pytest.raises(UnknownNodeTypeError) as info:
        convert(doc, catalog, source="default.json")
    err = info.value
    assert err.node_types == ("FancyLatent", "MysteryDecode")
    assert str(err).startswith("default.json: unknown node types FancyLatent, MysteryDecode")
    assert "node 5" in str(err) and "node 8" in str(err)


def test_unknown_node_type_inside_a_subgraph_is_named_with_its_path(catalog: NodeCatalog) -> None:
    doc = ui("01_get_started_text_to_image")
    node_of(doc, 30, doc["definitions"]["subgraphs"][0])["type"] = "QwenLoaderX"
    with pytest.raises(UnknownNodeTypeError, match=r"QwenLoaderX at node 83:30"):
        convert(doc, catalog)


def test_unknown_type_on_a_muted_node_is_only_reported(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 7).update(type="OldCustomNode", mode=2)
    result = convert(doc, catalog)
    assert "7" not in result.graph
    assert "node 7 (OldCustomNode) dropped: muted" in result.report.dropped


def test_not_a_ui_workflow(catalog: NodeCatalog) -> None:
    with pytest.raises(WorkflowFormatError, match="must be a JSON object"):
        convert_ui_workflow([], catalog)  # type: ignore[arg-type]
    with pytest.raises(WorkflowFormatError, match=r"x\.json: workflow: 'nodes' must be a list"):
        convert({"nodes": {"1": {}}, "links": []}, catalog, source="x.json")
    with pytest.raises(WorkflowFormatError, match="'links' must be a list"):
        convert({"nodes": [], "links": {}}, catalog)


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda d: d["nodes"].append("node"), r"node #\d+ is not an object"),
        (lambda d: node_of(d, 5).pop("type"), r"node 5 has no 'type'"),
        (lambda d: node_of(d, 5).update(id=None), r"node #\d+ has no usable 'id'"),
        (lambda d: node_of(d, 8).update(id=5), r"node id 5 is used twice"),
        (
            lambda d: node_of(d, 5).update(widgets_values="512"),
            r"node 5 \(EmptyLatentImage\): 'widgets_values'",
        ),
        (
            lambda d: node_of(d, 3).update(inputs={"model": 1}),
            r"node 3 \(KSampler\): 'inputs' must be a list",
        ),
        (lambda d: node_of(d, 3)["inputs"][0].update(link="one"), r"node 3 \(KSampler\) input #0 'model'"),
        (lambda d: d["links"].append([1, 2]), r"link #\d+ is neither"),
        (lambda d: d["links"].append([77, 4, "x", 3, 0, "MODEL"]), r"link #\d+ has a missing or non-numeric"),
        (lambda d: node_of(d, 3).update(mode="always"), r"node 3 \(KSampler\): 'mode' is not a number"),
    ],
)
def test_malformed_structure_names_the_node(catalog: NodeCatalog, mutate: Any, pattern: str) -> None:
    doc = ui("default")
    mutate(doc)
    with pytest.raises(WorkflowFormatError, match=pattern):
        convert(doc, catalog)


def test_input_using_a_missing_link_names_the_node(catalog: NodeCatalog) -> None:
    doc = ui("default")
    doc["links"] = [lk for lk in doc["links"] if lk[0] != 2]
    with pytest.raises(ConversionError, match=r"node 3 \(KSampler\) input 'latent_image' uses link 2"):
        convert(doc, catalog, source="default.json")


def test_link_from_a_missing_node_names_the_node(catalog: NodeCatalog) -> None:
    doc = ui("default")
    next(lk for lk in doc["links"] if lk[0] == 9)[1] = 999
    with pytest.raises(
        ConversionError, match=r"node 9 \(SaveImage\) input 'images' .* node 999, which does not"
    ):
        convert(doc, catalog)


def test_reroute_cycle_is_an_error_not_a_hang(catalog: NodeCatalog) -> None:
    doc = ui("default")
    for rid, link_in, link_out in ((30, 101, 100), (31, 100, 101)):
        doc["nodes"].append(
            {
                "id": rid,
                "type": "Reroute",
                "mode": 0,
                "inputs": [{"name": "", "type": "*", "link": link_in}],
                "outputs": [{"name": "", "type": "*", "links": [link_out]}],
            }
        )
    doc["links"] += [[100, 30, 0, 31, 0, "*"], [101, 31, 0, 30, 0, "*"], [102, 30, 0, 9, 0, "*"]]
    node_of(doc, 9)["inputs"][0]["link"] = 102
    with pytest.raises(ConversionError, match="circle"):
        convert(doc, catalog)


def test_subgraph_containing_itself_is_an_error(catalog: NodeCatalog) -> None:
    doc = ui("01_get_started_text_to_image")
    sub = doc["definitions"]["subgraphs"][0]
    sub["nodes"].append({"id": 99, "type": sub["id"], "mode": 0, "inputs": [], "outputs": []})
    with pytest.raises(ConversionError, match="contains itself"):
        convert(doc, catalog)


# --------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize("name", UI_FILES)
def test_is_ui_workflow_on_ui_files(name: str) -> None:
    assert is_ui_workflow(ui(name))


def test_is_ui_workflow_rejects_other_shapes() -> None:
    assert not is_ui_workflow(reference("default"))
    assert not is_ui_workflow(load_json("workflows/api/empty_blur_save.json"))
    assert not is_ui_workflow({"nodes": [{"id": 1, "type": "KSampler", "inputs": {"seed": 1}}]})  # /api/v1
    assert not is_ui_workflow([{"nodes": [], "links": []}])
    assert not is_ui_workflow(None)
    assert not is_ui_workflow({"nodes": "x", "links": []})


def test_report_lines_concatenates_in_order() -> None:
    report = ConversionReport(dropped=["a"], expanded=["b", "c"], guessed=["d"])
    assert report.lines() == ["a", "b", "c", "d"]
    assert ConversionReport().lines() == []


# -------------------------------------------------------------------------- seed control modes


@pytest.mark.parametrize(
    ("name", "controls"),
    [
        ("01_get_started_text_to_image", {("83:3", "seed"): "randomize"}),
        ("default", {("3", "seed"): "randomize"}),
        ("flux_fill_inpaint_example", {("47:3", "seed"): "randomize"}),
        ("flux_schnell", {("31", "seed"): "randomize"}),
        ("sd3.5_simple_example", {("3", "seed"): "randomize"}),
        ("sdxl_simple_example", {("10", "noise_seed"): "randomize", ("11", "noise_seed"): "fixed"}),
        ("sdxlturbo_example", {("13", "noise_seed"): "fixed"}),
        ("text_to_video_wan", {("3", "seed"): "randomize"}),
    ],
)
def test_seed_controls_of_the_references(name: str, controls: dict[Any, str], catalog: NodeCatalog) -> None:
    result = convert(ui(name), catalog)
    assert result.seed_controls == controls
    for node_id, input_name in result.seed_controls:  # only seeds the graph carries as values
        assert isinstance(result.graph[node_id].inputs[input_name], int)


@pytest.mark.parametrize("mode", ["fixed", "increment", "decrement", "randomize"])
def test_seed_control_saved_after_the_seed_is_collected(mode: str, catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 3)["widgets_values"][1] = mode
    result = convert(doc, catalog)
    assert result.seed_controls == {("3", "seed"): mode}
    assert (
        result.graph["3"].inputs["seed"] == 685468484323813 and mode not in result.graph["3"].inputs.values()
    )


def test_seed_control_inside_a_subgraph_uses_the_inner_id(catalog: NodeCatalog) -> None:
    doc = ui("01_get_started_text_to_image")
    sampler = node_of(doc, 3, doc["definitions"]["subgraphs"][0])
    sampler["widgets_values"][1] = "increment"
    assert convert(doc, catalog).seed_controls == {("83:3", "seed"): "increment"}


def test_seed_control_of_an_unknown_mode_is_kept_as_saved(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 3)["widgets_values"][1] = "sometimes"
    assert convert(doc, catalog).seed_controls == {("3", "seed"): "sometimes"}


def test_no_seed_control_without_a_saved_mode(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 3)["widgets_values"] = [99, 20, 8, "euler", "normal", 1]  # saved before the control widget
    result = convert(doc, catalog)
    assert result.seed_controls == {} and result.graph["3"].inputs["seed"] == 99
    node_of(doc, 3)["widgets_values"] = [99, None, 20, 8, "euler", "normal", 1]
    assert convert(doc, catalog).seed_controls == {}


def test_seed_control_from_dict_widget_values(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 3)["widgets_values"] = {"seed": 5, "control_after_generate": "fixed", "steps": 12}
    assert convert(doc, catalog).seed_controls == {("3", "seed"): "fixed"}
    node_of(doc, 3)["widgets_values"] = {"seed": 5, "steps": 12}
    assert convert(doc, catalog).seed_controls == {}


def test_seed_control_of_a_legacy_seed_name(catalog: NodeCatalog) -> None:
    doc = {
        "nodes": [
            {
                "id": 1,
                "type": "RandomCropImages",
                "mode": 0,
                "inputs": [{"name": "images", "type": "IMAGE", "link": None}],
                "outputs": [],
                "widgets_values": [256, 128, 77, "decrement"],
            }
        ],
        "links": [],
    }
    assert convert(doc, catalog).seed_controls == {("1", "seed"): "decrement"}


def test_no_seed_control_for_muted_or_bypassed_nodes(catalog: NodeCatalog) -> None:
    for mode in (2, 4):
        doc = ui("default")
        node_of(doc, 3)["mode"] = mode
        result = convert(doc, catalog)
        assert "3" not in result.graph and result.seed_controls == {}


def test_seed_control_of_a_primitive_feeding_the_seed(catalog: NodeCatalog) -> None:
    doc = ui("flux_fill_inpaint_example")
    doc["nodes"].append(
        {
            "id": 90,
            "type": "PrimitiveNode",
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "INT", "type": "INT", "links": [200]}],
            "widgets_values": [42, "increment"],
        }
    )
    node_of(doc, 47)["inputs"].append(
        {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 200}
    )
    doc["links"].append([200, 90, 0, 47, 2, "INT"])
    result = convert(doc, catalog)
    assert result.graph["47:3"].inputs["seed"] == 42
    # the primitive's mode, not the "randomize" the inner KSampler still carries
    assert result.seed_controls == {("47:3", "seed"): "increment"}


def test_primitive_control_on_a_plain_int_is_not_a_seed_control(catalog: NodeCatalog) -> None:
    doc = ui("sdxl_simple_example")
    node_of(doc, 45)["widgets_values"] = [31, "increment"]  # feeds 'steps' of nodes 10 and 11
    controls = convert(doc, catalog).seed_controls
    assert ("10", "steps") not in controls and ("11", "steps") not in controls


def test_no_seed_control_for_a_linked_seed(catalog: NodeCatalog) -> None:
    doc = ui("default")
    node_of(doc, 3)["inputs"].append({"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 300})
    node_of(doc, 5)["outputs"].append({"name": "x", "type": "INT", "links": [300]})
    doc["links"].append([300, 5, 1, 3, len(node_of(doc, 3)["inputs"]) - 1, "INT"])
    result = convert(doc, catalog)
    assert result.graph["3"].inputs["seed"] == ["5", 1]
    assert result.seed_controls == {}


# ------------------------------------------------------------------ V3 dynamic inputs (LTX-2 template)

V3_FILE = "video_ltx2_pose_to_video"


def test_v3_template_matches_frontend_reference_exactly(catalog: NodeCatalog) -> None:
    result = convert_ui_workflow(ui(V3_FILE), catalog, source=f"{V3_FILE}.json", lenient=True)
    got = result.graph.to_prompt()
    ref = reference(V3_FILE)
    assert list(got) == list(ref)
    for node_id, want in ref.items():
        assert list(got[node_id]) == list(want), node_id  # inputs, class_type, _meta
        assert list(got[node_id]["inputs"]) == list(want["inputs"]), node_id
        assert same_value(got[node_id], want), node_id


def test_v3_dynamic_combo_is_flat_with_linked_sub_inputs(catalog: NodeCatalog) -> None:
    got = convert_ui_workflow(ui(V3_FILE), catalog, lenient=True).graph.to_prompt()
    assert got["164"]["inputs"] == {
        "resize_type": "scale dimensions",
        "resize_type.width": ["166", 0],
        "resize_type.height": ["167", 0],
        "resize_type.crop": "center",
        "scale_method": "lanczos",
        "input": ["184", 0],
    }


def test_v3_unknown_custom_node_strict_names_it_lenient_emits_it(catalog: NodeCatalog) -> None:
    with pytest.raises(UnknownNodeTypeError, match="DWPreprocessor at node 184"):
        convert(ui(V3_FILE), catalog)
    result = convert_ui_workflow(ui(V3_FILE), catalog, lenient=True)
    assert result.graph.to_prompt()["184"] == {
        "inputs": {"UNKNOWN": "disable", "image": ["152", 0]},
        "_meta": {},
    }
    assert any("184 (DWPreprocessor)" in line and "class_type" in line for line in result.report.guessed)


def _resize_node(values: Any, inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "id": 1,
                "type": "ResizeImageMaskNode",
                "mode": 0,
                "inputs": inputs or [],
                "widgets_values": values,
            }
        ],
        "links": [],
    }


@pytest.mark.parametrize(
    ("values", "want"),
    [
        (
            ["scale by multiplier", 1.5, "area"],
            {"resize_type": "scale by multiplier", "resize_type.multiplier": 1.5, "scale_method": "area"},
        ),
        (
            ["scale width", 640, "bicubic"],
            {"resize_type": "scale width", "resize_type.width": 640, "scale_method": "bicubic"},
        ),
        # "match size": its IMAGE,MASK sub-input is a socket, only `crop` is a widget
        (
            ["match size", "disabled", "nearest-exact"],
            {"resize_type": "match size", "resize_type.crop": "disabled", "scale_method": "nearest-exact"},
        ),
        (
            {"resize_type": "scale height", "resize_type.height": 300, "scale_method": "area"},
            {"resize_type": "scale height", "resize_type.height": 300, "scale_method": "area"},
        ),
    ],
)
def test_v3_dynamic_combo_sub_widgets_follow_the_chosen_option(
    values: Any, want: dict[str, Any], catalog: NodeCatalog
) -> None:
    got = convert(_resize_node(values), catalog).graph.to_prompt()["1"]["inputs"]
    assert got == want
    assert list(got) == list(want)


def test_v3_dynamic_combo_unknown_option_falls_back_to_the_first(catalog: NodeCatalog) -> None:
    got = convert(_resize_node({}), catalog).graph.to_prompt()["1"]["inputs"]
    assert got == {
        "resize_type": "scale by multiplier",
        "resize_type.multiplier": 1.0,
        "scale_method": "area",
    }


def test_v3_dynamic_combo_inside_a_subgraph(catalog: NodeCatalog) -> None:
    inner = _resize_node(["scale dimensions", 100, 200, "center", "area"])
    doc = {
        "nodes": [{"id": 5, "type": "sg-1", "mode": 0, "inputs": [], "outputs": [], "widgets_values": []}],
        "links": [],
        "definitions": {
            "subgraphs": [{"id": "sg-1", "name": "Resize", "inputs": [], "outputs": [], **inner}]
        },
    }
    got = convert(doc, catalog).graph.to_prompt()
    assert got["5:1"]["inputs"] == {
        "resize_type": "scale dimensions",
        "resize_type.width": 100,
        "resize_type.height": 200,
        "resize_type.crop": "center",
        "scale_method": "area",
    }
