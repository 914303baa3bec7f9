"""Forms generated from node definitions, and filling them back into graphs."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from comfydesk.core.errors import UnknownNodeTypeError, ValidationError
from comfydesk.core.nodes import NodeCatalog, parse_v1_nodes
from comfydesk.core.templates import (
    FieldKind,
    FormSpec,
    SeedControl,
    build_form,
    humanize,
    next_seed,
)
from comfydesk.core.workflow import Workflow, load_workflow, load_workflow_file
from tests.conftest import FIXTURES, load_json

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "comfyui-api.md"


def _spec_blocks() -> list[Any]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", SPEC.read_text(encoding="utf-8"), re.S)]


@pytest.fixture(scope="module")
def txt2img() -> Workflow:
    return load_workflow_file(FIXTURES / "workflows" / "api" / "txt2img_tiny_sd15.json")


@pytest.fixture(scope="module")
def form(txt2img: Workflow, catalog: NodeCatalog) -> FormSpec:
    return build_form(txt2img, catalog)


@pytest.fixture(scope="module")
def v1_catalog() -> NodeCatalog:
    return parse_v1_nodes(next(b for b in _spec_blocks() if "nodes" in b.get("data", {})))


@pytest.fixture(scope="module")
def blog() -> Workflow:
    return load_workflow(
        next(b for b in _spec_blocks() if "workflows" in b.get("data", {}))["data"]["workflows"][0]
    )


def test_txt2img_form_shape(form: FormSpec) -> None:
    assert form.workflow_name == "txt2img_tiny_sd15" and form.placeholders == ()
    # nodes with nothing to set (VAEDecode 8) get no group; order is graph order
    assert [(g.node_id, g.title, g.class_type) for g in form.groups] == [
        ("4", "Model", "CheckpointLoaderSimple"),
        ("6", "Prompt", "CLIPTextEncode"),
        ("7", "Negative prompt", "CLIPTextEncode"),
        ("5", "Image size", "EmptyLatentImage"),
        ("3", "Sampler", "KSampler"),
        ("9", "Save", "SaveImage"),
    ]
    ks = form.groups[4]
    assert [f.key for f in ks.fields] == [
        "3.seed",
        "3.steps",
        "3.cfg",
        "3.sampler_name",
        "3.scheduler",
        "3.denoise",
    ]
    assert [f.key for f in form.fields()][:2] == ["4.ckpt_name", "6.text"]


def test_ksampler_fields(form: FormSpec) -> None:
    seed = form.field("3.seed")
    assert (seed.kind, seed.value, seed.default, seed.min, seed.max) == (FieldKind.SEED, 42, 0, 0, 2**64 - 1)
    assert isinstance(seed.max, int) and seed.control is SeedControl.RANDOMIZE
    assert (seed.node_id, seed.input_name, seed.label, seed.required) == ("3", "seed", "Seed", True)
    assert seed.tooltip == "The random seed used for creating the noise."
    steps = form.field("3.steps")
    assert (steps.kind, steps.value, steps.default, steps.min, steps.max) == (FieldKind.INT, 3, 20, 1, 10000)
    assert steps.control is None
    cfg = form.field("3.cfg")
    assert (cfg.kind, cfg.label, cfg.value, cfg.step, cfg.round, cfg.min, cfg.max) == (
        FieldKind.FLOAT,
        "CFG",
        7.0,
        0.1,
        0.01,
        0.0,
        100.0,
    )
    sampler = form.field("3.sampler_name")
    assert sampler.kind is FieldKind.CHOICE and sampler.label == "Sampler name" and sampler.value == "euler"
    assert sampler.choices is not None and "dpmpp_2m" in sampler.choices
    text = form.field("6.text")
    assert text.kind is FieldKind.TEXT and text.multiline and text.value == "a photo of a cat"
    assert form.field("5.width").step == 8
    assert form.field("4.ckpt_name").label == "Checkpoint name"
    assert form.field("9.filename_prefix").kind is FieldKind.STRING
    with pytest.raises(KeyError):
        form.field("3.model")  # a link, not a field


def test_image_and_boolean_fields(catalog: NodeCatalog) -> None:
    wf = load_workflow_file(FIXTURES / "workflows" / "api" / "load_invert_scale_save.json")
    f = build_form(wf, catalog)
    image = f.field("10.image")
    assert image.kind is FieldKind.IMAGE and image.choices == ("example.png",)
    slow = load_workflow_file(FIXTURES / "workflows" / "api" / "slow_steps.json")
    node_id = next(k for k, n in slow.graph.items() if n.class_type == "TestSlowSteps")
    # an optional widget input the workflow leaves out is not offered
    assert "preview" not in slow.graph[node_id].inputs
    assert all(x.input_name != "preview" for x in build_form(slow, catalog).fields())
    graph = slow.graph.copy()
    graph[node_id].inputs["preview"] = False
    preview = build_form(Workflow(name="s", graph=graph), catalog).field(f"{node_id}.preview")
    assert preview.kind is FieldKind.BOOLEAN and not preview.required
    assert (preview.default, preview.value) == (True, False)


def test_defaults_fill_round_trip(form: FormSpec, txt2img: Workflow) -> None:
    defaults = form.defaults()
    assert defaults["3.seed"] == 42 and defaults["3.cfg"] == 7.0 and len(defaults) == len(form.fields())
    graph = form.fill(defaults)
    assert graph.to_prompt() == txt2img.graph.to_prompt()
    assert json.dumps(graph.to_prompt()) == json.dumps(txt2img.graph.to_prompt())  # key order too
    assert graph is not txt2img.graph


def test_fill_with_edits(form: FormSpec, txt2img: Workflow) -> None:
    graph = form.fill(
        {"3.seed": 2**64 - 1, "3.steps": 25, "6.text": "a dog", "3.sampler_name": "heun", "nope.key": 1}
    )
    ks = graph["3"].inputs
    assert (ks["seed"], ks["steps"], ks["sampler_name"], ks["cfg"]) == (2**64 - 1, 25, "heun", 7.0)
    assert ks["model"] == ["4", 0]
    assert graph["6"].inputs["text"] == "a dog"
    assert txt2img.graph["3"].inputs["steps"] == 3  # the workflow itself is untouched
    assert form.defaults()["3.steps"] == 3


def test_field_validation_carries_field_keys(form: FormSpec) -> None:
    issues = form.validate(
        {
            "3.steps": 0,
            "3.cfg": 100.5,
            "3.sampler_name": "euler_banana",
            "5.width": "512",
            "6.text": 12,
            "3.seed": True,
        }
    )
    got = {(i.field_key, i.kind) for i in issues}
    assert got == {
        ("3.steps", "value_smaller_than_min"),
        ("3.cfg", "value_bigger_than_max"),
        ("3.sampler_name", "value_not_in_list"),
        ("5.width", "invalid_input_type"),
        ("6.text", "invalid_input_type"),
        ("3.seed", "invalid_input_type"),
    }
    width = next(i for i in issues if i.field_key == "5.width")
    assert width.message == "Width must be a whole number, got the text '512'."
    assert (width.node_id, width.input_name, width.node_title) == ("5", "width", "Empty Latent Image")
    assert form.validate(form.defaults()) == []


def test_fill_raises_with_field_keys(form: FormSpec) -> None:
    with pytest.raises(ValidationError) as info:
        form.fill({"3.steps": 10001})
    (issue,) = info.value.issues
    assert (issue.field_key, issue.kind) == ("3.steps", "value_bigger_than_max")


def test_fill_runs_graph_validation_with_fresh_catalog(catalog: NodeCatalog) -> None:
    from comfydesk.core.nodes import parse_object_info

    wf = load_workflow_file(FIXTURES / "workflows" / "api" / "load_invert_scale_save.json")
    f = build_form(wf, catalog)
    # the form's catalog predates the upload: fill refuses the new name and places it on the field
    with pytest.raises(ValidationError) as info:
        f.fill(f.defaults())
    assert [(i.field_key, i.kind) for i in info.value.issues] == [("10.image", "value_not_in_list")]
    fresh = parse_object_info(load_json("object_info_LoadImage_after_upload.json"))
    updated = NodeCatalog([*(n for n in catalog.values() if n.id != "LoadImage"), fresh["LoadImage"]])
    assert f.fill({}, catalog=updated)["10"].inputs["image"] == "fixture_gradient.png"


def test_v1_template_placeholders(blog: Workflow, v1_catalog: NodeCatalog) -> None:
    f = build_form(blog, v1_catalog)
    assert f.workflow_name == "Blog Post Image"
    assert [(p.key, p.label, p.kind, p.is_placeholder) for p in f.placeholders] == [
        ("prompt", "Prompt", FieldKind.STRING, True),
        ("negative_prompt", "Negative prompt", FieldKind.STRING, True),
    ]
    assert f.fields()[:2] == list(f.placeholders)
    assert f.groups == ()  # both inputs hold placeholders: not duplicated as node fields
    prompt, negative = f.placeholders
    assert prompt.targets == (("text_to_image", "prompt"),) and prompt.required
    assert not negative.required  # it sits in an optional input
    assert f.defaults() == {"prompt": "", "negative_prompt": ""}
    request = next(b for b in _spec_blocks() if "inputs" in b)["inputs"]
    graph = f.fill(request)
    assert graph["text_to_image"].inputs == {
        "prompt": "A beautiful landscape",
        "negative_prompt": "ugly, blurry",
    }
    missing = f.validate({"negative_prompt": "x"})
    assert [(i.field_key, i.kind, i.message) for i in missing] == [
        ("prompt", "required_input_missing", "Prompt is required.")
    ]
    assert f.fill({"prompt": "only"})["text_to_image"].inputs["negative_prompt"] == ""


def test_placeholders_typed_by_their_input(txt2img: Workflow, catalog: NodeCatalog) -> None:
    graph = txt2img.graph.copy()
    graph["6"].inputs["text"] = "a photo of {subject}, {style}"
    graph["7"].inputs["text"] = '{style} {"json": {"kept": true}} {subject}'
    graph["3"].inputs["steps"] = "{steps}"
    graph["3"].inputs["seed"] = "{seed}"
    graph["9"].inputs["filename_prefix"] = "out/{subject}"
    wf = Workflow(name="templ", graph=graph)
    f = build_form(wf, catalog)
    assert [p.key for p in f.placeholders] == ["subject", "style", "seed", "steps"]
    subject = f.field("subject")
    assert subject.kind is FieldKind.TEXT and subject.targets == (
        ("6", "text"),
        ("7", "text"),
        ("9", "filename_prefix"),
    )
    steps = f.field("steps")
    assert (steps.kind, steps.default, steps.min, steps.max, steps.required) == (
        FieldKind.INT,
        20,
        1,
        10000,
        True,
    )
    assert f.field("seed").kind is FieldKind.SEED and f.field("seed").control is SeedControl.RANDOMIZE
    assert "3.steps" not in {x.key for x in f.fields()} and "3.cfg" in {x.key for x in f.fields()}
    # server errors are placed by node and input
    assert f.field_for("3", "steps") is steps and f.field_for("7", "text") is subject
    assert f.field_for("3", "cfg") is f.field("3.cfg") and f.field_for("3", "model") is None
    out = f.fill({"subject": "a cat", "style": "oil", "steps": 12, "seed": 7})
    assert out["6"].inputs["text"] == "a photo of a cat, oil"
    assert out["7"].inputs["text"] == 'oil {"json": {"kept": true}} a cat'
    assert out["3"].inputs["steps"] == 12 and out["3"].inputs["seed"] == 7  # typed, not "12"
    assert out["9"].inputs["filename_prefix"] == "out/a cat"
    with pytest.raises(ValidationError) as info:
        f.fill({"subject": "a", "style": "b", "steps": "12", "seed": 1})
    assert [i.field_key for i in info.value.issues] == ["steps"]
    # a value that itself looks like a placeholder is not substituted again
    again = f.fill({"subject": "{style}", "style": "oil", "steps": 1, "seed": 1})
    assert again["6"].inputs["text"] == "a photo of {style}, oil"


def test_unknown_node_types_named(catalog: NodeCatalog) -> None:
    prompt = load_json("workflows/api/empty_blur_save.json")
    prompt["1"]["class_type"] = "Zeta"
    prompt["2"]["class_type"] = "Alpha"
    with pytest.raises(UnknownNodeTypeError) as info:
        build_form(load_workflow(prompt, source="w.json"), catalog)
    assert info.value.node_types == ("Alpha", "Zeta")
    assert "Alpha, Zeta" in str(info.value) and info.value.source == "w.json"


@pytest.mark.parametrize(
    ("name", "label"),
    [("negative_prompt", "Negative prompt"), ("cfg", "CFG"), ("Width", "Width"), ("vae_name", "VAE name")],
)
def test_humanize(name: str, label: str) -> None:
    assert humanize(name) == label


def test_next_seed_modes() -> None:
    assert next_seed(5, SeedControl.FIXED) == 5
    assert next_seed(5, SeedControl.INCREMENT) == 6
    assert next_seed(5, "decrement") == 4
    top = 2**64 - 1
    assert next_seed(top, SeedControl.INCREMENT) == 0
    assert next_seed(0, SeedControl.DECREMENT) == top
    assert next_seed(10, SeedControl.INCREMENT, minimum=3, maximum=10) == 3
    assert next_seed(3, SeedControl.DECREMENT, minimum=3, maximum=10) == 10
    rng = random.Random(1)
    draws = [next_seed(0, SeedControl.RANDOMIZE, rng=rng) for _ in range(200)]
    assert all(0 <= d <= top for d in draws) and len(set(draws)) == 200
    assert max(draws) > 2**63  # uses the whole 64-bit range, not a double's
    assert next_seed(0, "randomize", rng=random.Random(1)) == draws[0]  # reproducible with a seeded rng
    small = {next_seed(0, SeedControl.RANDOMIZE, minimum=1, maximum=3, rng=rng) for _ in range(100)}
    assert small == {1, 2, 3}
    with pytest.raises(ValueError):
        next_seed(0, "sideways")


# ---------------------------------------------------------------------- saved seed control modes


def _ui_form(doc: dict[str, Any], catalog: NodeCatalog) -> FormSpec:
    return build_form(load_workflow(doc, catalog=catalog, source="ui.json"), catalog)


def test_seed_control_from_the_ui_workflow(catalog: NodeCatalog) -> None:
    form = _ui_form(load_json("workflows/ui/default.json"), catalog)
    assert form.field("3.seed").control is SeedControl.RANDOMIZE
    assert form.field("3.steps").control is None


@pytest.mark.parametrize(
    ("mode", "control"),
    [
        ("fixed", SeedControl.FIXED),
        ("increment", SeedControl.INCREMENT),
        ("decrement", SeedControl.DECREMENT),
        ("randomize", SeedControl.RANDOMIZE),
    ],
)
def test_saved_seed_control_sets_the_field(mode: str, control: SeedControl, catalog: NodeCatalog) -> None:
    doc = load_json("workflows/ui/default.json")
    sampler = next(n for n in doc["nodes"] if n["id"] == 3)
    sampler["widgets_values"][1] = mode
    form = _ui_form(doc, catalog)
    seed = form.field("3.seed")
    assert seed.control is control and seed.value == 685468484323813
    assert mode not in form.graph["3"].inputs.values()  # the mode is never submitted


def test_saved_seed_controls_of_two_samplers(catalog: NodeCatalog) -> None:
    form = _ui_form(load_json("workflows/ui/sdxl_simple_example.json"), catalog)
    assert form.field("10.noise_seed").control is SeedControl.RANDOMIZE
    assert form.field("11.noise_seed").control is SeedControl.FIXED


def test_saved_seed_control_inside_a_subgraph(catalog: NodeCatalog) -> None:
    doc = load_json("workflows/ui/01_get_started_text_to_image.json")
    sampler = next(n for n in doc["definitions"]["subgraphs"][0]["nodes"] if n["id"] == 3)
    sampler["widgets_values"][1] = "fixed"
    form = _ui_form(doc, catalog)
    seed = form.field("83:3.seed")
    assert (seed.node_id, seed.control) == ("83:3", SeedControl.FIXED)


def test_unknown_saved_seed_control_is_ignored(catalog: NodeCatalog) -> None:
    doc = load_json("workflows/ui/default.json")
    next(n for n in doc["nodes"] if n["id"] == 3)["widgets_values"][1] = "sometimes"
    wf = load_workflow(doc, catalog=catalog)
    assert wf.seed_controls == {("3", "seed"): "sometimes"}
    assert build_form(wf, catalog).field("3.seed").control is SeedControl.RANDOMIZE


def test_seed_controls_only_touch_seed_fields(txt2img: Workflow, catalog: NodeCatalog) -> None:
    graph = txt2img.graph.copy()
    graph["3"].inputs["seed"] = "{seed}"
    wf = Workflow(
        name="t",
        graph=graph,
        seed_controls={("3", "seed"): "fixed", ("3", "steps"): "fixed", ("99", "seed"): "fixed"},
    )
    form = build_form(wf, catalog)
    assert form.field("seed").control is SeedControl.RANDOMIZE  # a placeholder keeps the default
    assert form.field("3.steps").control is None  # not a seed


def test_api_workflow_seed_control_unchanged(txt2img: Workflow, form: FormSpec) -> None:
    assert txt2img.seed_controls == {}
    assert form.field("3.seed").control is SeedControl.RANDOMIZE
