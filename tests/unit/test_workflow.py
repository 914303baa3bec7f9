"""Loading workflows in every shape they come in."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from comfydesk.core.errors import WorkflowError, WorkflowFormatError
from comfydesk.core.graph import ApiGraph, ApiNode
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.workflow import (
    Workflow,
    find_placeholders,
    load_workflow,
    load_workflow_file,
    workflow_to_v1,
)
from tests.conftest import FIXTURES, load_json

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "comfyui-api.md"
API_FILES = sorted((FIXTURES / "workflows" / "api").glob("*.json"))


def spec_workflow() -> dict[str, Any]:
    blocks = re.findall(r"```json\n(.*?)```", SPEC.read_text(encoding="utf-8"), re.S)
    return json.loads(blocks[0])["data"]["workflows"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", API_FILES, ids=[p.stem for p in API_FILES])
def test_every_api_file_loads(path: Path) -> None:
    wf = load_workflow_file(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert (wf.name, wf.format, wf.source, wf.report) == (path.stem, "api", str(path), None)
    for node_id, node in raw.items():
        loaded = wf.graph[node_id]
        assert (loaded.class_type, loaded.inputs) == (node["class_type"], node["inputs"])
        assert loaded.title == node.get("_meta", {}).get("title", "")
    assert list(wf.graph) == list(raw)


def test_api_from_bytes_text_and_mapping() -> None:
    path = FIXTURES / "workflows" / "api" / "txt2img_tiny_sd15.json"
    data = path.read_bytes()
    by_bytes = load_workflow(data, name="T")
    by_text = load_workflow(data.decode())
    by_bom = load_workflow(b"\xef\xbb\xbf" + data)
    by_map = load_workflow(json.loads(data))
    assert by_bytes.name == "T" and by_text.name == "Untitled workflow"
    assert by_bytes.graph.to_prompt() == by_text.graph.to_prompt() == by_map.graph.to_prompt()
    assert by_bom.graph.to_prompt() == by_map.graph.to_prompt()
    assert by_map.graph["3"].inputs["model"] == ["4", 0]


def test_post_prompt_body_is_accepted() -> None:
    body = load_json("prompts/txt2img_tiny_sd15.request.json")
    wf = load_workflow(body)
    assert wf.format == "api" and wf.graph["3"].class_type == "KSampler"


def test_titles_from_meta() -> None:
    body = load_json("errors/int_out_of_range.json")["request"]["json"]["prompt"]
    wf = load_workflow(body)
    assert wf.graph["2"].title == "Image Blur"


def test_spec_v1_workflow_loads_and_renders_back() -> None:
    doc = spec_workflow()
    wf = load_workflow(doc)
    assert (wf.name, wf.description, wf.format, wf.workflow_id) == (
        "Blog Post Image",
        "Generate blog post header image",
        "v1",
        "1",
    )
    node = wf.graph["text_to_image"]
    assert node.class_type == "text_to_image"
    assert node.inputs == {"prompt": "{prompt}", "negative_prompt": "{negative_prompt}"}
    rendered = workflow_to_v1(wf)
    assert rendered == {k: v for k, v in doc.items() if k not in ("created_at", "updated_at")}
    assert load_workflow(rendered).graph.to_prompt() == wf.graph.to_prompt()


def test_v1_ids_become_strings_and_links_survive() -> None:
    doc: dict[str, Any] = {
        "id": 7,
        "name": "two",
        "nodes": [
            {"id": 1, "type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
            {"id": 2, "type": "PreviewImage", "inputs": {"images": [1, 0]}},
        ],
    }
    wf = load_workflow(doc)
    assert list(wf.graph) == ["1", "2"] and wf.graph["2"].inputs["images"] == ["1", 0]
    assert workflow_to_v1(wf)["nodes"][1] == {
        "id": "2",
        "type": "PreviewImage",
        "inputs": {"images": ["1", 0]},
    }
    assert workflow_to_v1(wf)["id"] == 7
    assert load_workflow(doc["nodes"]).format == "v1"  # a bare node list


def test_v1_duplicate_node_ids() -> None:
    doc = {
        "name": "dup",
        "nodes": [{"id": 1, "type": "A", "inputs": {}}, {"id": "1", "type": "B", "inputs": {}}],
    }
    with pytest.raises(WorkflowFormatError, match="node id 1 appears twice"):
        load_workflow(doc)


def test_workflow_to_v1_of_api_graph() -> None:
    wf = load_workflow_file(FIXTURES / "workflows" / "api" / "empty_blur_save.json")
    out = workflow_to_v1(wf)
    assert "id" not in out and out["name"] == "empty_blur_save" and out["description"] == ""
    assert [n["type"] for n in out["nodes"]] == [n.class_type for n in wf.graph.values()]
    assert out["nodes"][1]["inputs"]["image"] == ["1", 0]


def test_malformed_json_names_file_and_position(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{\n  "1": {"class_type": "EmptyImage",\n    "inputs": {,}\n}\n', encoding="utf-8")
    with pytest.raises(WorkflowFormatError) as info:
        load_workflow_file(bad)
    msg = str(info.value)
    assert str(bad) in msg and "line 3, column 16" in msg
    assert info.value.source == str(bad)


def test_malformed_json_text_without_source() -> None:
    with pytest.raises(WorkflowFormatError, match="line 1, column 2"):
        load_workflow("{oops")


@pytest.mark.parametrize(
    ("doc", "found"),
    [
        ({"foo": 1, "bar": [2]}, "a JSON object with keys 'foo', 'bar'"),
        ([1, 2], "a JSON array of 2 items"),
        ("42", "a JSON int"),
        ('"text"', "a JSON str"),
        ({"nodes": "x"}, "a JSON object with keys 'nodes'"),
    ],
)
def test_not_a_workflow(doc: Any, found: str) -> None:
    with pytest.raises(WorkflowFormatError) as info:
        load_workflow(doc, source="thing.json")
    assert f"not a ComfyUI workflow: found {found}" in str(info.value)
    assert str(info.value).startswith("thing.json: ")


def test_empty_object_and_binary_junk() -> None:
    with pytest.raises(WorkflowFormatError, match="empty"):
        load_workflow({})
    with pytest.raises(WorkflowFormatError, match="neither UTF-8 JSON nor a PNG"):
        load_workflow(b"\xff\xfe\x00garbage")


def test_broken_api_graph_is_a_format_error() -> None:
    with pytest.raises(WorkflowFormatError, match="'inputs' is not an object"):
        load_workflow({"1": {"class_type": "X", "inputs": [1]}})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="cannot read the file") as info:
        load_workflow_file(tmp_path / "nope.json")
    assert info.value.source == str(tmp_path / "nope.json")


def test_find_placeholders() -> None:
    graph = ApiGraph(
        {
            "1": ApiNode("1", "A", {"text": "a {subject} in {style}, {subject}", "n": 3, "link": ["2", 0]}),
            "2": ApiNode(
                "2", "B", {"json": '{"a": {"b": 1}} {x y} {1abc} {{style}} {}', "neg": "{negative}"}
            ),
            "3": ApiNode("3", "C", {"t": "{style}"}),
        }
    )
    found = find_placeholders(graph)
    assert list(found) == ["subject", "style", "negative"]
    assert found["subject"] == [("1", "text")]
    assert found["style"] == [("1", "text"), ("2", "json"), ("3", "t")]
    assert found["negative"] == [("2", "neg")]


def test_spec_placeholders() -> None:
    assert find_placeholders(load_workflow(spec_workflow()).graph) == {
        "prompt": [("text_to_image", "prompt")],
        "negative_prompt": [("text_to_image", "negative_prompt")],
    }


# ------------------------------------------------------------------------------- UI format and images


def test_ui_workflow_needs_node_definitions() -> None:
    doc = load_json("workflows/ui/default.json")
    with pytest.raises(WorkflowError) as info:
        load_workflow(doc, source="default.json")
    assert not isinstance(info.value, WorkflowFormatError)
    assert "node definitions" in str(info.value) and "default.json" in str(info.value)


def test_ui_workflow_converts_with_catalog(catalog: NodeCatalog) -> None:
    wf = load_workflow_file(FIXTURES / "workflows" / "ui" / "default.json", catalog=catalog)
    reference = load_json("workflows/ui_reference_api/default.json")
    assert wf.format == "ui" and wf.report is not None and wf.name == "default"
    assert set(wf.graph) == set(reference)
    assert {k: n.class_type for k, n in wf.graph.items()} == {
        k: v["class_type"] for k, v in reference.items()
    }
    assert wf.seed_controls == {("3", "seed"): "randomize"}


def test_ui_workflow_carries_saved_seed_controls(catalog: NodeCatalog) -> None:
    doc = load_json("workflows/ui/sdxl_simple_example.json")
    wf = load_workflow(doc, catalog=catalog)
    assert wf.seed_controls == {("10", "noise_seed"): "randomize", ("11", "noise_seed"): "fixed"}
    sub = load_workflow(load_json("workflows/ui/01_get_started_text_to_image.json"), catalog=catalog)
    assert sub.seed_controls == {("83:3", "seed"): "randomize"}


def test_api_and_v1_workflows_have_no_seed_controls() -> None:
    assert load_workflow(load_json("workflows/api/txt2img_tiny_sd15.json")).seed_controls == {}
    assert load_workflow(spec_workflow()).seed_controls == {}


def _png(text: dict[str, str] | None = None) -> bytes:
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


@pytest.fixture(scope="module")
def png_both() -> bytes:
    prompt = load_json("workflows/api/txt2img_tiny_sd15.json")
    ui = load_json("workflows/ui/default.json")
    return _png({"prompt": json.dumps(prompt), "workflow": json.dumps(ui)})


def test_png_without_catalog_uses_prompt(png_both: bytes, tmp_path: Path) -> None:
    pytest.importorskip("comfydesk.core.pngmeta")
    path = tmp_path / "result_00001_.png"
    path.write_bytes(png_both)
    wf = load_workflow_file(path)
    assert (wf.format, wf.name, wf.report) == ("png", "result_00001_", None)
    assert wf.seed_controls == {}  # converted from the API prompt: no modes saved
    assert (
        wf.graph.to_prompt()
        == load_workflow(load_json("workflows/api/txt2img_tiny_sd15.json")).graph.to_prompt()
    )


def test_png_with_catalog_prefers_ui_workflow(png_both: bytes, catalog: NodeCatalog) -> None:
    pytest.importorskip("comfydesk.core.pngmeta")
    wf = load_workflow(png_both, catalog=catalog, source="x.png")
    assert wf.format == "png" and wf.report is not None
    assert set(wf.graph) == set(load_json("workflows/ui_reference_api/default.json"))
    assert wf.graph["6"].title  # titles come along from the UI workflow
    assert wf.seed_controls == {("3", "seed"): "randomize"}


def test_png_with_only_ui_workflow_needs_catalog() -> None:
    pytest.importorskip("comfydesk.core.pngmeta")
    data = _png({"workflow": json.dumps(load_json("workflows/ui/default.json"))})
    with pytest.raises(WorkflowError, match="node definitions"):
        load_workflow(data)


def test_png_without_workflow() -> None:
    pytest.importorskip("comfydesk.core.pngmeta")
    with pytest.raises(WorkflowError):
        load_workflow(_png({"Software": "paint"}), source="plain.png")


def test_webp_with_prompt_in_exif() -> None:
    pytest.importorskip("comfydesk.core.pngmeta")
    prompt = load_json("workflows/api/empty_blur_save.json")
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + json.dumps(prompt)  # where ComfyUI's SaveAnimatedWEBP puts it
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="WEBP", exif=exif)
    wf = load_workflow(buf.getvalue(), name="anim")
    assert (wf.format, wf.name) == ("png", "anim")
    assert [n.class_type for n in wf.graph.values()] == [v["class_type"] for v in prompt.values()]


def test_workflow_dataclass_defaults() -> None:
    wf = Workflow(name="n", graph=ApiGraph())
    assert (wf.description, wf.source, wf.format, wf.report, wf.workflow_id) == ("", None, "api", None, None)
    assert wf.seed_controls == {}
    assert Workflow(name="m", graph=ApiGraph()).seed_controls is not wf.seed_controls  # not shared
