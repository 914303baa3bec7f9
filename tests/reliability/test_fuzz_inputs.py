"""Fuzzing hostile inputs `test_fuzz.py` does not reach (hypothesis), each through the entry the app uses:

- a server's `/object_info` body (`backends.comfyui_documents.catalog_from_bytes`), then the catalog put to
  use (its inputs read, the catalog cache written and read back, API graphs validated against it);
- UI-format workflow files (`core.convert.convert_ui_workflow`, and `core.workflow.load_workflow` as a file);
- binary WebSocket frames: short and odd headers, PREVIEW_IMAGE_WITH_METADATA with lying lengths and
  metadata that is not JSON, not UTF-8, not an object or nested past the limit.

`/view` bodies and server file names are in `test_fuzz_files.py`. The outcome must be a result or a
`ComfyDeskError` with a message, never another exception. The normal run tries 150 cases per target; the
soak run (`-m soak`) 5,000.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfydesk.backends.comfyui_documents import catalog_from_bytes
from comfydesk.backends.comfyui_protocol import ProtocolMapper, parse_binary_frame
from comfydesk.core.convert import convert_ui_workflow
from comfydesk.core.errors import ComfyDeskError
from comfydesk.core.graph import ApiGraph
from comfydesk.core.nodes import (
    MAX_AUTOGROW_SLOTS,
    NodeCatalog,
    catalog_from_cache,
    catalog_to_cache,
    live_inputs,
    parse_object_info,
)
from comfydesk.core.validate import validate_graph
from comfydesk.core.workflow import load_workflow
from tests.conftest import FIXTURES

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
SOAK = settings(max_examples=5_000, deadline=None, suppress_health_check=list(HealthCheck))

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
junk = st.recursive(  # small values for the many fields a generated document has
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=5,
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    """`good` four times in five, else `bad`: deep enough to reach the converter's inner paths."""
    return st.integers(0, 4).flatmap(lambda i: good if i < 4 else (junk if bad is None else bad))


def _expect_error(exc: ComfyDeskError) -> None:
    assert str(exc).strip() and exc.message.strip(), type(exc).__name__  # a sentence, not an empty error


# ================================================================================ (a) object_info documents

_OPTION_KEYS = [
    "default", "min", "max", "step", "round", "tooltip", "display_name", "multiline", "dynamicPrompts",
    "control_after_generate", "forceInput", "lazy", "advanced", "remote", "multiselect", "image_upload",
    "video_upload", "audio_upload", "options",
]  # fmt: skip
_TYPES = [
    "INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "IMAGE", "MODEL", "*", "",
    "COMFY_DYNAMICCOMBO_V3", "COMFY_AUTOGROW_V3", "COMFY_MATCHTYPE_V3",
]  # fmt: skip
input_names = mostly(st.sampled_from(["a", "b", "seed", "image"]), st.text(max_size=6))
options = st.dictionaries(st.sampled_from(_OPTION_KEYS) | st.text(max_size=5), junk, max_size=5)
dynamic_option = mostly(
    st.fixed_dictionaries(
        {
            "key": mostly(st.text(max_size=4)),
            "inputs": mostly(
                st.builds(
                    lambda s: {"required": s},
                    st.dictionaries(st.text(max_size=4), st.deferred(lambda: input_specs), max_size=3),
                )
            ),
        }
    )
)
input_specs: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(_TYPES),  # hidden inputs: a bare type
    st.builds(lambda t: [t], st.sampled_from(_TYPES)),
    st.builds(lambda t, o: [t, o], mostly(st.sampled_from(_TYPES)), mostly(options)),
    st.builds(lambda c, o: [c, o], st.lists(junk, max_size=4), options),  # V1 COMBO
    st.builds(
        lambda c, o: ["COMBO", {**o, "options": c}], mostly(st.lists(junk, max_size=4)), options
    ),  # V3 COMBO
    st.builds(  # V3 autogrow: a template input repeated up to `max` times, or once per name
        lambda t, o: ["COMFY_AUTOGROW_V3", {**o, "template": t}],
        mostly(
            st.fixed_dictionaries(
                {
                    "input": mostly(
                        st.builds(
                            lambda s: {"required": s},
                            st.dictionaries(input_names, st.deferred(lambda: input_specs), max_size=2),
                        )
                    )
                },
                optional={
                    "min": mostly(st.integers(-2, 5)),
                    "max": mostly(st.integers(-2, 60) | st.just(10**9)),
                    "prefix": junk,
                    "names": mostly(st.lists(junk, max_size=4)),
                },
            )
        ),
        options,
    ),
    st.builds(
        lambda t, o: ["COMFY_MATCHTYPE_V3", {**o, "template": t}],
        mostly(st.fixed_dictionaries({}, optional={"allowed_types": mostly(st.sampled_from(_TYPES))})),
        options,
    ),
    st.builds(
        lambda ds, o: ["COMFY_DYNAMICCOMBO_V3", {**o, "options": ds}],
        st.lists(dynamic_option, max_size=3),
        options,
    ),
)
sections = mostly(st.dictionaries(input_names, mostly(input_specs), min_size=1, max_size=5))
node_defs = st.fixed_dictionaries(
    {
        "input": mostly(
            st.fixed_dictionaries({"required": sections}, optional={"optional": sections, "hidden": sections})
        ),
    },
    optional={
        "input_order": mostly(st.dictionaries(st.sampled_from(["required", "optional", "hidden"]), junk)),
        "output": mostly(st.lists(mostly(st.sampled_from(_TYPES)), max_size=4)),
        "output_name": mostly(st.lists(junk, max_size=4)),
        "output_is_list": mostly(st.lists(junk, max_size=4)),
        "output_tooltips": mostly(st.lists(junk, max_size=4)),
        "output_node": junk,
        "display_name": junk,
        "description": junk,
        "category": junk,
        "python_module": junk,
        "deprecated": junk,
        "experimental": junk,
        "api_node": junk,
    },
)
object_info_docs = mostly(
    st.dictionaries(st.sampled_from(["A", "B", "C"]) | st.text(max_size=6), mostly(node_defs), max_size=4)
)
api_prompts = st.dictionaries(
    st.sampled_from(["1", "2", "3"]),
    st.fixed_dictionaries(
        {
            "class_type": st.sampled_from(["A", "B", "C"]) | st.text(max_size=3),
            "inputs": st.dictionaries(
                input_names,
                junk | st.builds(lambda n, i: [n, i], st.sampled_from(["1", "2", "3"]), st.integers(-1, 3)),
                max_size=4,
            ),
        }
    ),
    min_size=1,
    max_size=3,
)


def _use_catalog(catalog: NodeCatalog, prompt: dict[str, Any]) -> None:
    """What the app does with a catalog: read every input, cache it, validate workflows against it."""
    for node in catalog.nodes():
        assert isinstance(node.title, str)
        for spec in node.inputs:
            _ = (spec.label, spec.is_widget, spec.is_link_only, spec.required, spec.hidden)
            spec.dynamic_options()
        live_inputs(node.inputs, {})
    catalog.search("a")
    catalog.category_tree()
    again = catalog_from_cache(json.loads(json.dumps(catalog_to_cache(catalog))))
    assert sorted(again) == sorted(catalog)
    try:
        graph = ApiGraph.from_prompt(prompt)
    except ComfyDeskError as exc:
        _expect_error(exc)
        return
    for issue in validate_graph(graph, catalog):
        assert issue.message.strip()


def _object_info(doc: Any, prompt: dict[str, Any]) -> None:
    try:
        catalog = catalog_from_bytes(json.dumps(doc).encode())
    except ComfyDeskError as exc:
        _expect_error(exc)
        assert not isinstance(doc, dict)  # only a body that is not an object is refused whole
        return
    assert isinstance(doc, dict)
    # Bad entries are skipped (and named in the warnings); the good ones are all there.
    assert len(catalog) + len(catalog.warnings) == len(doc)
    assert all(k in doc for k in catalog)
    _use_catalog(catalog, prompt)


@FAST
@given(object_info_docs, api_prompts)
def test_object_info_bodies_give_a_catalog_or_a_clear_error(doc: Any, prompt: dict[str, Any]) -> None:
    _object_info(doc, prompt)


def test_the_real_object_info_passes_the_same_checks() -> None:
    """The generator's checks hold for the captured catalog (449 real node types)."""
    doc = json.loads((FIXTURES / "object_info.json").read_text())
    catalog = catalog_from_bytes(json.dumps(doc).encode())
    assert len(catalog) == len(doc) == 449 and not catalog.warnings
    _use_catalog(catalog, json.loads((FIXTURES / "workflows/api/txt2img_tiny_sd15.json").read_text()))


def test_a_huge_autogrow_max_and_an_unhashable_default_are_harmless() -> None:
    """Found by the fuzzing above: an autogrow input with `"max": 10**9` expanded to a billion inputs
    (2 million took 23 s and 690 MB) whenever a workflow using the node was checked; a dynamic combo whose
    default is a list raised TypeError. Now at most `MAX_AUTOGROW_SLOTS` slots, and the default is the first
    option."""
    template = {"max": 10**9, "prefix": "image", "input": {"required": {"image": ["IMAGE"]}}}
    combo = {"default": ["a"], "options": [{"key": "a", "inputs": {"required": {"n": ["INT", {"min": 0}]}}}]}
    doc = {
        "N": {
            "input": {
                "required": {
                    "images": ["COMFY_AUTOGROW_V3", {"template": template}],
                    "mode": ["COMFY_DYNAMICCOMBO_V3", combo],
                }
            },
            "output": ["IMAGE"],
            "output_node": True,
        }
    }
    catalog = catalog_from_bytes(json.dumps(doc).encode())
    live = live_inputs(catalog["N"].inputs, {"mode": "a"})
    assert len(live) == MAX_AUTOGROW_SLOTS + 2  # the slots, the combo, the chosen option's input
    assert [s.default for s in live if s.name == "mode"] == ["a"]
    issues = validate_graph(
        ApiGraph.from_prompt({"1": {"class_type": "N", "inputs": {"mode": "a"}}}), catalog
    )
    assert all(i.message.strip() for i in issues)


# ================================================================================ (b) UI-format workflows

CATALOG = parse_object_info(json.loads((FIXTURES / "object_info.json").read_text()))
_SUBGRAPHS = ["9b1d2c3e-0000-4000-8000-00000000000a", "9b1d2c3e-0000-4000-8000-00000000000b"]
_NODE_TYPES = [
    "EmptyImage", "ImageBlur", "SaveImage", "PreviewImage", "KSampler", "CLIPTextEncode", "Reroute",
    "PrimitiveNode", "Note", "MarkdownNote", "NoSuchNode", *_SUBGRAPHS,
]  # fmt: skip


ids = mostly(st.integers(1, 6), st.integers(-20, 0) | st.sampled_from(["1", "2", "x", "-10", "-20"]) | junk)
slots = mostly(st.integers(0, 2), st.integers(-2, 5) | junk)
slot_types = mostly(st.sampled_from(["IMAGE", "INT", "FLOAT", "STRING", "*", "LATENT", "COMBO"]))
ui_inputs = st.lists(
    mostly(
        st.fixed_dictionaries(
            {"name": mostly(st.sampled_from(["image", "images", "seed", "width", "text", "value"]))},
            optional={
                "type": slot_types,
                "link": st.none() | ids,
                "widget": mostly(st.fixed_dictionaries({"name": st.sampled_from(["seed", "width", "text"])})),
            },
        )
    ),
    max_size=3,
)
ui_outputs = st.lists(
    mostly(
        st.fixed_dictionaries(
            {"name": st.text(max_size=5), "type": slot_types},
            optional={"links": mostly(st.none() | st.lists(ids, max_size=3))},
        )
    ),
    max_size=3,
)
ui_nodes = st.lists(
    mostly(
        st.fixed_dictionaries(
            {"id": ids, "type": mostly(st.sampled_from(_NODE_TYPES))},
            optional={
                "mode": mostly(st.sampled_from([0, 0, 2, 4])),
                "inputs": mostly(ui_inputs),
                "outputs": mostly(ui_outputs),
                "widgets_values": mostly(st.lists(junk, max_size=5)),
                "properties": junk,
            },
        )
    ),
    max_size=6,
)
array_links = st.lists(
    mostly(st.tuples(ids, ids, slots, ids, slots, slot_types).map(list), st.lists(junk, max_size=7)),
    max_size=6,
)
object_links = st.lists(
    mostly(
        st.fixed_dictionaries(
            {
                "id": ids,
                "origin_id": ids,
                "origin_slot": slots,
                "target_id": ids,
                "target_slot": slots,
                "type": slot_types,
            }
        )
    ),
    max_size=6,
)
io_slots = st.lists(
    mostly(
        st.fixed_dictionaries(
            {"name": st.text(max_size=5), "type": slot_types},
            optional={"linkIds": mostly(st.lists(ids, max_size=3))},
        )
    ),
    max_size=3,
)
subgraphs = st.lists(
    mostly(
        st.fixed_dictionaries(
            {"id": mostly(st.sampled_from(_SUBGRAPHS))},
            optional={
                "nodes": mostly(ui_nodes),  # their nodes may be the subgraphs again: loops
                "links": mostly(object_links | array_links),
                "inputs": mostly(io_slots),
                "outputs": mostly(io_slots),
                "inputNode": mostly(st.just({"id": -10})),
                "outputNode": mostly(st.just({"id": -20})),
                "widgets": junk,
            },
        )
    ),
    max_size=3,
)
ui_docs = st.fixed_dictionaries(
    {"nodes": mostly(ui_nodes), "links": mostly(array_links | object_links)},
    optional={
        "groups": junk,
        "definitions": mostly(st.fixed_dictionaries({}, optional={"subgraphs": mostly(subgraphs)})),
        "last_node_id": junk,
        "last_link_id": junk,
        "version": mostly(st.sampled_from([0.4, 1])),
        "extra": junk,
    },
)


def _ui_workflow(doc: dict[str, Any], lenient: bool) -> None:
    try:
        result = convert_ui_workflow(doc, CATALOG, source="fuzz.json", lenient=lenient)
    except ComfyDeskError as exc:
        _expect_error(exc)
    else:
        json.dumps(result.graph.to_prompt())  # what is sent must be JSON
    try:  # the same document as a file the user opens
        workflow = load_workflow(
            json.dumps(doc).encode(), catalog=CATALOG, source="fuzz.json", lenient=lenient
        )
    except ComfyDeskError as exc:
        _expect_error(exc)
    else:
        assert workflow.graph is not None


@FAST
@given(ui_docs, st.booleans())
def test_ui_workflows_convert_or_fail_clearly(doc: dict[str, Any], lenient: bool) -> None:
    _ui_workflow(doc, lenient)


def test_subgraphs_that_contain_each_other_fail_clearly() -> None:
    """Two subgraphs, each holding an instance of the other (and one of itself): a loop, not a hang."""
    a, b = _SUBGRAPHS

    def definition(own: str, other: str) -> dict[str, Any]:
        return {
            "id": own,
            "nodes": [{"id": 1, "type": other, "mode": 0}, {"id": 2, "type": own, "mode": 0}],
            "links": [],
            "inputs": [],
            "outputs": [],
            "inputNode": {"id": -10},
            "outputNode": {"id": -20},
        }

    doc = {
        "nodes": [{"id": 1, "type": a, "mode": 0}],
        "links": [],
        "definitions": {"subgraphs": [definition(a, b), definition(b, a)]},
    }
    with pytest.raises(ComfyDeskError) as caught:
        convert_ui_workflow(doc, CATALOG, source="loop.json")
    _expect_error(caught.value)


# ================================================================================ (e) binary WebSocket frames

_JPEG = (FIXTURES / "transcripts" / "txt2img_tiny_sd15_preview_metadata_bin_1.jpg").read_bytes()
metadata = st.one_of(
    st.builds(
        lambda d: json.dumps(d).encode(),
        st.fixed_dictionaries(
            {},
            optional={
                k: junk | st.just("p")
                for k in (
                    "node_id",
                    "prompt_id",
                    "display_node_id",
                    "parent_node_id",
                    "real_node_id",
                    "image_type",
                )
            },
        ),
    ),
    st.builds(lambda v: json.dumps(v).encode(), json_values),  # JSON, but not an object
    st.binary(max_size=40),  # not JSON, maybe not UTF-8
    st.builds(lambda n: b"[" * n + b"]" * n, st.integers(90, 20_000)),  # nested past the limit
    st.builds(lambda n: b'{"a":' * n + b"1" + b"}" * n, st.integers(90, 5_000)),
    st.just(b'{"prompt_id": "p", "node_id": "\xff\xfe"}'),
)


def _frame_with_metadata(meta: bytes, lie: int | None, image: bytes) -> bytes:
    length = len(meta) if lie is None else lie
    return struct.pack(">II", 4, length & 0xFFFFFFFF) + meta + image


frames = st.one_of(
    st.builds(
        _frame_with_metadata,
        metadata,
        st.none() | st.integers(0, 2**32 - 1) | st.integers(-3, 3).map(lambda d: 2**31 + d),
        st.sampled_from([_JPEG, b"", b"\xff\xd8garbage"]) | st.binary(max_size=30),
    ),
    st.binary(max_size=12),  # shorter than, or barely, a header
    st.builds(
        lambda h, t: h + t, st.binary(min_size=4, max_size=4), st.binary(max_size=20)
    ),  # odd event types
)


def _frames(batch: list[bytes], negotiated: bool) -> None:
    mapper = ProtocolMapper()
    mapper.track("p")
    mapper.feed_text(json.dumps({"type": "execution_start", "data": {"prompt_id": "p"}}))
    mapper.feed_text(json.dumps({"type": "executing", "data": {"prompt_id": "p", "node": "2"}}))
    if negotiated:
        mapper.feed_text(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
    for frame in batch:
        preview = parse_binary_frame(frame)
        assert preview is None or isinstance(preview.image, bytes)
        events = mapper.feed_binary(frame)
        assert isinstance(events, list)


@FAST
@given(st.lists(frames, max_size=6), st.booleans())
def test_binary_frames_with_bad_headers_and_metadata_are_skipped(
    batch: list[bytes], negotiated: bool
) -> None:
    _frames(batch, negotiated)


def test_deeply_nested_preview_metadata_is_skipped_not_raised() -> None:
    """Found by the fuzzing above: 5,000-deep JSON as a type-4 frame's metadata raised RecursionError from
    `parse_binary_frame` (the backend's guard then logged it); it is now a frame like any malformed one."""
    meta = b"[" * 5_000 + b"]" * 5_000
    assert parse_binary_frame(_frame_with_metadata(meta, None, _JPEG)) is None


# ================================================================================ soak: 5,000 cases each

_SOAK_TARGETS: list[tuple[str, Callable[..., None], Any]] = [
    ("object_info", _object_info, st.tuples(object_info_docs, api_prompts)),
    ("ui_workflow", _ui_workflow, st.tuples(ui_docs, st.booleans())),
    ("binary_frames", _frames, st.tuples(st.lists(frames, max_size=6), st.booleans())),
]


@pytest.mark.soak
@pytest.mark.parametrize("target", _SOAK_TARGETS, ids=[t[0] for t in _SOAK_TARGETS])
def test_soak_inputs(target: tuple[str, Callable[..., None], Any]) -> None:
    _name, body, strategy = target

    @SOAK
    @given(strategy)
    def run(args: tuple[Any, ...]) -> None:
        body(*args)

    run()
