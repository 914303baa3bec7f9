"""Graph validation against node definitions, checked against what the real server said."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from comfydesk.core.errors import ValidationError, ValidationIssue
from comfydesk.core.graph import ApiGraph
from comfydesk.core.nodes import NodeCatalog, parse_object_info
from comfydesk.core.validate import ISSUE_KINDS, types_compatible, validate_graph, validate_or_raise
from tests.conftest import FIXTURES, load_json

API_WORKFLOWS = sorted(p.stem for p in (FIXTURES / "workflows" / "api").glob("*.json"))
# Workflows naming input files this capture's LoadImage list does not have (uploaded during the session).
NEEDS_UPLOADED_FILES = {"load_invert_scale_save"}


def graph_of(rel: str) -> ApiGraph:
    return ApiGraph.from_prompt(load_json(rel))


def kinds(issues: list[ValidationIssue]) -> list[tuple[str, str, str | None]]:
    return [(i.kind, i.node_id, i.input_name) for i in issues]


@pytest.fixture(scope="module")
def catalog_after_upload(catalog: NodeCatalog) -> NodeCatalog:
    fresh = parse_object_info(load_json("object_info_LoadImage_after_upload.json"))
    return NodeCatalog([*(n for n in catalog.values() if n.id != "LoadImage"), fresh["LoadImage"]])


@pytest.mark.parametrize("name", API_WORKFLOWS)
def test_captured_workflows_validate_clean(
    name: str, catalog: NodeCatalog, catalog_after_upload: NodeCatalog
) -> None:
    graph = graph_of(f"workflows/api/{name}.json")
    issues = validate_graph(graph, catalog)
    if name in NEEDS_UPLOADED_FILES:
        assert kinds(issues) == [("value_not_in_list", "10", "image")]
        assert "fixture_gradient.png" in issues[0].message
        assert validate_graph(graph, catalog_after_upload) == []
    else:
        assert issues == []
        validate_or_raise(graph, catalog)


def test_there_are_captured_workflows() -> None:
    assert len(API_WORKFLOWS) == 15


# The server's error type -> ours. ComfyUI only raises (exception_during_validation) for broken links, and
# reports a LoadImage file it does not have through LoadImage's own check; we see it in the option list.
_SERVER_KIND = {
    ("exception_during_validation", "KeyError"): "link_to_missing_node",
    ("exception_during_validation", "IndexError"): "bad_output_index",
    ("custom_validation_failed", None): "value_not_in_list",
}
NODE_ERROR_CASES = [
    "combo_value_not_in_list",
    "int_out_of_range",
    "int_wrong_type",
    "link_bad_output_index",
    "link_to_missing_node",
    "loadimage_missing_file",
    "missing_required_input",
]


@pytest.mark.parametrize("case", NODE_ERROR_CASES)
def test_server_node_errors_are_found(case: str, catalog_after_upload: NodeCatalog) -> None:
    captured = load_json(f"errors/{case}.json")
    assert captured["status"] == 400
    graph = ApiGraph.from_prompt(captured["request"]["json"]["prompt"])
    issues = validate_graph(graph, catalog_after_upload)
    node_errors: dict[str, Any] = captured["body"]["node_errors"]
    assert node_errors
    expected = set()
    for node_id, entry in node_errors.items():
        for err in entry["errors"]:
            exc_type = err["extra_info"].get("exception_type")
            kind = _SERVER_KIND.get(
                (err["type"], exc_type), _SERVER_KIND.get((err["type"], None), err["type"])
            )
            input_name = err["extra_info"].get("input_name")
            if input_name is None:  # the server's traceback does not name the input: the only link of node 3
                input_name = "images"
            expected.add((kind, node_id, input_name))
    assert set(kinds(issues)) == expected
    for issue in issues:
        assert issue.kind in ISSUE_KINDS and issue.node_title and issue.message.endswith(".")


def test_server_messages_carry_the_facts(catalog: NodeCatalog) -> None:
    prompt = load_json("errors/int_out_of_range.json")["request"]["json"]["prompt"]
    (issue,) = validate_graph(ApiGraph.from_prompt(prompt), catalog)
    assert issue.node_title == "Image Blur" and "999" in issue.message and "31" in issue.message
    assert issue.received == 999


@pytest.mark.parametrize("case", ["no_output_node", "empty_prompt"])
def test_no_outputs(case: str, catalog: NodeCatalog) -> None:
    captured = load_json(f"errors/{case}.json")
    assert captured["body"]["error"]["type"] == "prompt_no_outputs"
    issues = validate_graph(ApiGraph.from_prompt(captured["request"]["json"]["prompt"]), catalog)
    assert kinds(issues) == [("prompt_no_outputs", "", None)]


def test_unknown_class_type(catalog: NodeCatalog) -> None:
    captured = load_json("errors/unknown_class_type.json")
    assert captured["body"]["error"]["details"] == "Node ID '#2'"
    issues = validate_graph(ApiGraph.from_prompt(captured["request"]["json"]["prompt"]), catalog)
    assert kinds(issues) == [("unknown_node_type", "2", None)]
    assert "NoSuchNodeClass" in issues[0].message


def test_every_unknown_node_is_reported(catalog: NodeCatalog) -> None:
    graph = graph_of("workflows/api/empty_blur_save.json").copy()
    prompt = graph.to_prompt()
    prompt["1"]["class_type"] = "Nope1"
    prompt["2"]["class_type"] = "Nope2"
    issues = validate_graph(ApiGraph.from_prompt(prompt), catalog)
    assert kinds(issues) == [("unknown_node_type", "1", None), ("unknown_node_type", "2", None)]


def _txt2img() -> dict[str, Any]:
    return copy.deepcopy(load_json("workflows/api/txt2img_tiny_sd15.json"))  # type: ignore[no-any-return]


def _issues(prompt: dict[str, Any], catalog: NodeCatalog) -> list[ValidationIssue]:
    return validate_graph(ApiGraph.from_prompt(prompt), catalog)


def test_value_smaller_than_min(catalog: NodeCatalog) -> None:
    p = _txt2img()
    p["3"]["inputs"]["steps"] = 0
    (issue,) = _issues(p, catalog)
    assert (issue.kind, issue.node_id, issue.input_name, issue.node_title) == (
        "value_smaller_than_min",
        "3",
        "steps",
        "KSampler",
    )


def test_seed_range_is_exact(catalog: NodeCatalog) -> None:
    p = _txt2img()
    p["3"]["inputs"]["seed"] = 2**64 - 1
    assert _issues(p, catalog) == []
    p["3"]["inputs"]["seed"] = 2**64
    assert kinds(_issues(p, catalog)) == [("value_bigger_than_max", "3", "seed")]


def test_numbers_convert_like_comfyui(catalog: NodeCatalog) -> None:
    p = _txt2img()
    p["3"]["inputs"]["steps"] = "12"  # int("12") works on the server
    p["3"]["inputs"]["cfg"] = 7  # an int is a fine FLOAT
    p["5"]["inputs"]["width"] = 64.0
    assert _issues(p, catalog) == []
    p["3"]["inputs"]["cfg"] = "7.5"
    assert _issues(p, catalog) == []
    p["3"]["inputs"]["cfg"] = "lots"
    p["3"]["inputs"]["steps"] = "2.5"  # int("2.5") fails on the server
    p["5"]["inputs"]["height"] = None
    assert kinds(_issues(p, catalog)) == [
        ("invalid_input_type", "5", "height"),
        ("invalid_input_type", "3", "steps"),
        ("invalid_input_type", "3", "cfg"),
    ]


def test_boolean_must_be_bool(catalog: NodeCatalog) -> None:
    p = copy.deepcopy(load_json("workflows/api/slow_steps.json"))
    node_id = next(k for k, v in p.items() if v["class_type"] == "TestSlowSteps")
    p[node_id]["inputs"]["preview"] = "false"
    assert kinds(_issues(p, catalog)) == [("invalid_input_type", node_id, "preview")]
    p[node_id]["inputs"]["preview"] = False
    assert _issues(p, catalog) == []


def test_value_not_in_list(catalog: NodeCatalog) -> None:
    p = _txt2img()
    p["3"]["inputs"]["sampler_name"] = "euler_banana"
    (issue,) = _issues(p, catalog)
    assert issue.kind == "value_not_in_list" and "euler_banana" in issue.message and "euler" in issue.message


def test_empty_and_remote_choices_are_not_checked(api_catalog: NodeCatalog, catalog: NodeCatalog) -> None:
    # LoadImageOutput's options come from a remote route; UNETLoader's folder is empty on this server.
    unet = catalog["UNETLoader"].input("unet_name")
    assert unet is not None and unet.choices == ()
    prompt = {
        "1": {"class_type": "LoadImageOutput", "inputs": {"image": "whatever.png [output]"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        "3": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": "flux.safetensors", "weight_dtype": "default"},
        },
    }
    assert _issues(prompt, api_catalog) == []


def test_required_input_missing(catalog: NodeCatalog) -> None:
    p = _txt2img()
    del p["3"]["inputs"]["positive"]
    del p["3"]["inputs"]["cfg"]
    assert kinds(_issues(p, catalog)) == [
        ("required_input_missing", "3", "cfg"),
        ("required_input_missing", "3", "positive"),
    ]


def test_optional_input_may_be_missing(catalog: NodeCatalog) -> None:
    p = copy.deepcopy(load_json("workflows/api/slow_steps.json"))
    for node in p.values():
        node["inputs"].pop("preview", None)
    assert _issues(p, catalog) == []


def test_link_type_mismatch(catalog: NodeCatalog) -> None:
    p = _txt2img()
    p["3"]["inputs"]["model"] = ["4", 1]  # CLIP into MODEL
    (issue,) = _issues(p, catalog)
    assert issue.kind == "link_type_mismatch" and issue.input_name == "model"
    assert "MODEL" in issue.message and "CLIP" in issue.message


def test_link_into_widget_input(catalog: NodeCatalog) -> None:
    p = _txt2img()
    p["20"] = {"class_type": "PrimitiveInt", "inputs": {"value": 5}}
    p["3"]["inputs"]["steps"] = ["20", 0]
    assert _issues(p, catalog) == []
    p["21"] = {"class_type": "PrimitiveFloat", "inputs": {"value": 5.0}}
    p["3"]["inputs"]["steps"] = ["21", 0]
    assert kinds(_issues(p, catalog)) == [("link_type_mismatch", "3", "steps")]


def test_link_only_input_given_a_literal(catalog: NodeCatalog) -> None:
    p = _txt2img()
    p["3"]["inputs"]["latent_image"] = "latent.png"
    (issue,) = _issues(p, catalog)
    assert (issue.kind, issue.input_name) == ("link_required", "latent_image")
    assert "LATENT" in issue.message


def test_bad_linked_input(catalog: NodeCatalog) -> None:
    p = _txt2img()
    p["8"]["inputs"]["vae"] = ["4", 2, 0]
    assert kinds(_issues(p, catalog)) == [("bad_linked_input", "8", "vae")]


@pytest.mark.parametrize(
    ("received", "expected", "ok"),
    [
        ("IMAGE", "IMAGE", True),
        ("IMAGE", "MASK", False),
        ("*", "MODEL", True),
        ("LATENT", "*", True),
        ("IMAGE,MASK", "MASK", True),
        ("INT", "FLOAT,STRING", False),
        ("COMBO", "COMBO", True),
    ],
)
def test_types_compatible(received: str, expected: str, ok: bool) -> None:
    assert types_compatible(received, expected) is ok


def test_combo_output_feeds_combo_input(catalog: NodeCatalog) -> None:
    # A custom node whose output is a V1 option list (as "switch" nodes declare) parses as a COMBO output.
    picker = parse_object_info(
        {
            "SamplerPicker": {
                "input": {"required": {}},
                "output": [["euler", "heun"]],
                "output_name": ["sampler"],
            }
        }
    )["SamplerPicker"]
    assert picker.outputs[0].type == "COMBO"
    both = NodeCatalog([*catalog.values(), picker])
    p = _txt2img()
    p["30"] = {"class_type": "SamplerPicker", "inputs": {}}
    p["3"]["inputs"]["sampler_name"] = ["30", 0]
    assert _issues(p, both) == []
    p["3"]["inputs"]["steps"] = ["30", 0]
    assert kinds(_issues(p, both)) == [("link_type_mismatch", "3", "steps")]


def test_validate_or_raise_lists_everything(catalog: NodeCatalog) -> None:
    p = _txt2img()
    p["3"]["inputs"]["steps"] = -1
    p["5"]["inputs"]["width"] = "wide"
    with pytest.raises(ValidationError) as info:
        validate_or_raise(ApiGraph.from_prompt(p), catalog)
    err = info.value
    assert len(err.issues) == 2
    assert "node 5 (Empty Latent Image), input 'width'" in err.lines()[0]
    assert "and 1 more" in str(err)


def test_placeholders_allowed_for_templates(catalog: NodeCatalog) -> None:
    p = _txt2img()
    p["3"]["inputs"]["steps"] = "{steps}"
    p["6"]["inputs"]["text"] = "a photo of {subject}"
    p["3"]["inputs"]["latent_image"] = "{latent}"
    graph = ApiGraph.from_prompt(p)
    assert kinds(validate_graph(graph, catalog)) == [
        ("invalid_input_type", "3", "steps"),
        ("link_required", "3", "latent_image"),
    ]
    assert kinds(validate_graph(graph, catalog, allow_placeholders=True)) == [
        ("link_required", "3", "latent_image")
    ]


def test_fixture_path_exists() -> None:
    assert Path(FIXTURES, "errors").is_dir()
