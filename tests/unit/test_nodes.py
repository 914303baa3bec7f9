"""Node definitions parsed from the real server's object_info captures."""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfydesk.core.errors import CatalogError
from comfydesk.core.nodes import NodeCatalog, NodeDef, parse_node_def, parse_object_info, parse_v1_nodes
from tests.conftest import load_json

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "comfyui-api.md"


def test_every_class_parses_without_warnings(catalog: NodeCatalog, api_catalog: NodeCatalog) -> None:
    assert len(catalog) == 449
    assert catalog.warnings == ()
    assert len(api_catalog) == 567
    assert api_catalog.warnings == ()
    raw = load_json("object_info.json")
    assert set(catalog) == set(raw)
    # input order follows input_order, every section included
    for name, node in catalog.items():
        want = [n for sec in ("required", "optional", "hidden") for n in raw[name]["input"].get(sec, {})]
        assert sorted(i.name for i in node.inputs) == sorted(want), name


@pytest.mark.parametrize("name", ["KSampler", "LoadImage", "TestSlowSteps"])
def test_per_class_capture_matches_full_document(catalog: NodeCatalog, name: str) -> None:
    single = parse_object_info(load_json(f"object_info_{name}.json"))
    assert list(single) == [name]
    assert single[name] == catalog[name]


def test_ksampler(catalog: NodeCatalog) -> None:
    ks = catalog["KSampler"]
    assert ks.display_name == "KSampler" and ks.category == "sampling"
    assert [i.name for i in ks.inputs] == [
        "model",
        "seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "positive",
        "negative",
        "latent_image",
        "denoise",
    ]
    seed = ks.input("seed")
    assert seed is not None
    assert seed.type == "INT" and seed.control_after_generate and seed.is_widget
    assert seed.max == 18446744073709551615 and isinstance(seed.max, int) and seed.max == 2**64 - 1
    assert seed.min == 0 and seed.default == 0
    cfg = ks.input("cfg")
    assert cfg is not None
    assert (cfg.type, cfg.default, cfg.min, cfg.max, cfg.step, cfg.round) == (
        "FLOAT",
        8.0,
        0.0,
        100.0,
        0.1,
        0.01,
    )
    steps = ks.input("steps")
    assert steps is not None and (steps.default, steps.min, steps.max) == (20, 1, 10000)
    sampler = ks.input("sampler_name")
    assert sampler is not None and sampler.type == "COMBO" and sampler.choices is not None
    assert sampler.choices[0] == "euler" and "dpmpp_2m" in sampler.choices
    model = ks.input("model")
    assert model is not None and model.is_link_only and not model.is_widget
    assert model.tooltip == "The model used for denoising the input latent."
    assert [(o.name, o.type, o.is_list) for o in ks.outputs] == [("LATENT", "LATENT", False)]
    assert ks.outputs[0].tooltip == "The denoised latent."
    assert not ks.output_node


def test_load_image_upload_and_choices(catalog: NodeCatalog) -> None:
    li = catalog["LoadImage"]
    image = li.input("image")
    assert image is not None
    assert image.type == "COMBO" and image.choices == ("example.png",) and image.upload == "image"
    assert image.is_widget
    assert [o.type for o in li.outputs] == ["IMAGE", "MASK"]
    after = parse_object_info(load_json("object_info_LoadImage_after_upload.json"))["LoadImage"].input(
        "image"
    )
    assert after is not None and after.choices is not None and "fixture_gradient.png" in after.choices


def test_test_slow_steps_custom_node(catalog: NodeCatalog) -> None:
    node = catalog["TestSlowSteps"]
    assert node.display_name == "Test: Slow Steps (progress + previews)"
    assert node.category == "testing/comfydesk"
    assert node.python_module == "custom_nodes.comfy_test_nodes"
    preview = node.input("preview")
    assert preview is not None and preview.section == "optional" and not preview.required
    assert preview.type == "BOOLEAN" and preview.default is True
    delay = node.input("delay")
    assert delay is not None and (delay.min, delay.max, delay.step) == (0.0, 10.0, 0.05)
    assert delay.tooltip == "Seconds to sleep per step."
    assert node.outputs[0].name == "image"


def test_spot_checks_in_object_info(catalog: NodeCatalog) -> None:
    ckpt = catalog["CheckpointLoaderSimple"]
    assert ckpt.title == "Load Checkpoint" and ckpt.category == "loaders"
    assert [o.type for o in ckpt.outputs] == ["MODEL", "CLIP", "VAE"]
    assert ckpt.outputs[2].tooltip.startswith("The VAE model")
    name = ckpt.input("ckpt_name")
    assert name is not None and name.choices == ("tiny-random-sd15.safetensors",) and name.upload is None

    clip = catalog["CLIPTextEncode"]
    text = clip.input("text")
    assert text is not None and text.type == "STRING" and text.multiline and text.dynamic_prompts
    clip_in = clip.input("clip")
    assert clip_in is not None and clip_in.is_link_only

    empty = catalog["EmptyImage"]
    assert empty.display_name == "EmptyImage"
    color = empty.input("color")
    assert color is not None and (color.default, color.min, color.max, color.step) == (0, 0, 16777215, 1)
    assert color.options["display"] == "color"
    batch = empty.input("batch_size")
    assert batch is not None and batch.step is None

    save = catalog["SaveImage"]
    assert save.output_node and save.outputs == ()
    prompt = save.input("prompt")
    assert prompt is not None and prompt.hidden and prompt.type == "PROMPT"
    assert not prompt.is_widget and not prompt.is_link_only
    assert [i.name for i in save.visible_inputs] == ["images", "filename_prefix"]
    prefix = save.input("filename_prefix")
    assert prefix is not None and prefix.default == "ComfyUI"


def test_hidden_input_as_list(catalog: NodeCatalog) -> None:
    prompt = catalog["MaskPreview"].input("prompt")
    assert prompt is not None and prompt.hidden and prompt.type == "PROMPT"


def test_v3_combo_and_remote(api_catalog: NodeCatalog) -> None:
    dim = api_catalog["LatentConcat"].input("dim")
    assert dim is not None
    assert dim.type == "COMBO" and dim.choices == ("x", "-x", "y", "-y", "t", "-t") and dim.is_widget
    behaviour = api_catalog["LatentBatchSeedBehavior"].input("seed_behavior")
    assert behaviour is not None and behaviour.default == "fixed" and behaviour.choices == ("random", "fixed")
    remote = api_catalog["LoadImageOutput"].input("image")
    assert remote is not None and remote.remote and remote.upload == "image" and remote.choices == ()
    assert api_catalog["LoadImageOutput"].experimental


def test_dynamic_v3_types_kept_opaque(catalog: NodeCatalog) -> None:
    images = catalog["BatchImagesNode"].input("images")
    assert images is not None and images.type == "COMFY_AUTOGROW_V3"
    assert images.is_dynamic and not images.is_widget and not images.is_link_only
    assert images.options["template"]["prefix"] == "image"
    resize = catalog["ResizeImageMaskNode"]
    kinds = {i.name: i.type for i in resize.inputs}
    assert kinds["input"] == "COMFY_MATCHTYPE_V3" and kinds["resize_type"] == "COMFY_DYNAMICCOMBO_V3"
    assert resize.outputs[0].type == "COMFY_MATCHTYPE_V3"


def test_flags_and_list_outputs(catalog: NodeCatalog, api_catalog: NodeCatalog) -> None:
    assert catalog["ImageBatch"].deprecated
    assert not catalog["KSampler"].deprecated and not catalog["KSampler"].experimental
    assert api_catalog["IdeogramV1"].api_node and "IdeogramV1" not in catalog
    assert sum(n.api_node for n in api_catalog.values()) == 109
    assert sum(n.api_node for n in catalog.values()) == 0
    rebatch = catalog["RebatchLatents"]
    assert rebatch.outputs[0].is_list


def test_control_after_generate_counts(catalog: NodeCatalog, api_catalog: NodeCatalog) -> None:
    with_control = [i for n in catalog.values() for i in n.inputs if i.control_after_generate]
    assert len(with_control) == 6
    assert all(i.type == "INT" for i in with_control)


def test_v1_round_trip(catalog: NodeCatalog) -> None:
    nodes = [catalog[n] for n in ("KSampler", "LoadImage", "CLIPTextEncode", "SaveImage", "EmptyImage")]
    doc = {"status": "success", "data": {"nodes": [n.to_v1() for n in nodes]}}
    back = parse_v1_nodes(json.loads(json.dumps(doc)))
    assert back.warnings == ()
    for orig in nodes:
        again = back[orig.id]
        assert again.title == orig.title and again.category == orig.category
        assert again.description == orig.description
        assert [i.name for i in again.inputs] == [i.name for i in orig.visible_inputs]
        for a, o in zip(again.inputs, orig.visible_inputs, strict=True):
            assert (a.type, a.required, a.default, a.min, a.max, a.step, a.choices, a.multiline) == (
                o.type,
                o.required,
                o.default,
                o.min,
                o.max,
                o.step,
                o.choices,
                o.multiline,
            )
        assert [(x.name, x.type) for x in again.outputs] == [(x.name, x.type) for x in orig.outputs]
    assert back["SaveImage"].output_node
    seed = back["KSampler"].input("seed")
    assert seed is not None and seed.max == 2**64 - 1


def _spec_json_blocks() -> list[Any]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", SPEC.read_text(encoding="utf-8"), re.S)]


def test_spec_example_node_parses() -> None:
    doc = next(b for b in _spec_json_blocks() if "nodes" in b.get("data", {}))
    cat = parse_v1_nodes(doc)
    node = cat["text_to_image"]
    assert node.title == "Text to Image" and node.description == "Generate image from text prompt"
    prompt, negative = node.inputs
    assert (prompt.name, prompt.type, prompt.required, prompt.is_widget) == ("prompt", "STRING", True, True)
    assert (negative.name, negative.required) == ("negative_prompt", False)
    assert [(o.name, o.type) for o in node.outputs] == [("image", "IMAGE")]
    assert node.output_node  # an IMAGE output is what the v1 API runs for


def test_search_ranking(catalog: NodeCatalog) -> None:
    found = catalog.search("ksampler")
    assert [n.id for n in found[:2]] == ["KSampler", "KSamplerAdvanced"]  # exact, then prefix
    assert catalog.search("KSAMPLER")[0].id == "KSampler"
    titles = [n.title.lower() for n in catalog.search("image")]
    prefix = [i for i, t in enumerate(titles) if t.startswith("image")]
    inner = [
        i for i, t in enumerate(titles) if "image" in t and not any(w.startswith("image") for w in t.split())
    ]
    assert prefix and inner and max(prefix) < min(inner)  # "Image Blur" before "SaveWEBM"-like inner matches
    # every display-name match ranks above every node that matches only by description
    desc_only = [
        n for n in catalog.search("image") if "image" not in n.title.lower() and "image" not in n.id.lower()
    ]
    name_hits = [n for n in catalog.search("image") if "image" in n.title.lower()]
    order = [n.id for n in catalog.search("image")]
    assert max(order.index(n.id) for n in name_hits) < min(order.index(n.id) for n in desc_only)
    assert catalog.search("load checkpoint")[0].id == "CheckpointLoaderSimple"
    assert catalog.search("zzzz-no-such") == []
    assert len(catalog.search("", limit=5)) == 5


def test_category_tree_counts(catalog: NodeCatalog) -> None:
    tree = catalog.category_tree()
    assert tree.count() == 449
    sampling = tree.children["sampling"]
    assert sampling.count() == sum(1 for n in catalog.values() if n.category.split("/")[0] == "sampling")
    assert any(n.id == "KSampler" for n in sampling.nodes)
    testing = tree.children["testing"].children["comfydesk"]
    assert testing.path == "testing/comfydesk"
    assert {n.id for n in testing.nodes} == {"TestSlowSteps", "TestFail", "TestTextOutput"}


def test_malformed_entry_skipped_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    doc = copy.deepcopy(load_json("object_info_KSampler.json"))
    doc["Broken"] = {"input": {"required": {"x": 42}}, "output": []}
    doc["AlsoBroken"] = "not a definition"
    with caplog.at_level(logging.WARNING, logger="comfydesk.core.nodes"):
        cat = parse_object_info(doc)
    assert list(cat) == ["KSampler"]
    assert len(cat.warnings) == 2
    assert "'Broken'" in cat.warnings[0] and "'x'" in cat.warnings[0]
    assert "'AlsoBroken'" in cat.warnings[1]
    assert "Broken" in caplog.text


@pytest.mark.parametrize("doc", [[], "text", 3, None])
def test_not_a_dict_raises_catalog_error(doc: Any) -> None:
    with pytest.raises(CatalogError):
        parse_object_info(doc)


# ------------------------------------------------------------------------------------------ fuzzing

_SAMPLE = ["KSampler", "LoadImage", "SaveImage", "EmptyImage", "ResizeImageMaskNode", "CLIPTextEncode"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def _mutate(value: Any, data: st.DataObject, depth: int = 0) -> Any:
    """Replace, delete or descend into one random place of a JSON value."""
    action = data.draw(st.sampled_from(["replace", "descend", "descend", "keep"]))
    if action == "replace" or (action == "descend" and not isinstance(value, dict | list)):
        return data.draw(json_values)
    if action == "keep" or not value or depth > 6:
        return value
    if isinstance(value, dict):
        key = data.draw(st.sampled_from(sorted(value)))
        if data.draw(st.booleans()):
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: _mutate(value[key], data, depth + 1)}
    idx = data.draw(st.integers(0, len(value) - 1))
    if data.draw(st.booleans()):
        return value[:idx] + value[idx + 1 :]
    return [*value[:idx], _mutate(value[idx], data, depth + 1), *value[idx + 1 :]]


@pytest.fixture(scope="module")
def sample_doc() -> dict[str, Any]:
    full = load_json("object_info.json")
    return {name: full[name] for name in _SAMPLE}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_parse_object_info_survives_mutations(sample_doc: dict[str, Any], data: st.DataObject) -> None:
    doc = copy.deepcopy(sample_doc)
    for _ in range(data.draw(st.integers(1, 4))):
        name = data.draw(st.sampled_from(_SAMPLE))
        doc[name] = _mutate(doc[name], data)
    logging.disable(logging.WARNING)
    try:
        cat = parse_object_info(doc)
    finally:
        logging.disable(logging.NOTSET)
    assert len(cat) + len(cat.warnings) == len(doc)
    for node in cat.values():
        assert isinstance(node, NodeDef)
        for spec in node.inputs:  # every parsed property is usable
            _ = (spec.is_widget, spec.is_link_only, spec.label, spec.required)
        node.to_v1()
    cat.search("a")
    cat.category_tree()


@settings(max_examples=50, deadline=None)
@given(raw=json_values)
def test_parse_node_def_raises_only_value_errors(raw: Any) -> None:
    try:
        node = parse_node_def("X", raw)
    except (ValueError, TypeError, AttributeError) as exc:  # parse_object_info turns these into warnings
        assert str(exc)
    else:
        assert node.id == "X" and isinstance(raw, dict)
