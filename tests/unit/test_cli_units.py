"""The CLI's pure parts (--set addressing and values, output naming) and the offline commands (`nodes`,
`convert` with --object-info), run in-process through `comfydesk.cli.main`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from comfydesk.cli import main
from comfydesk.commands._progress import ProgressView
from comfydesk.commands._run_inputs import (
    ImageFile,
    SetError,
    parse_assignment,
    parse_value,
    resolve_key,
    resolve_sets,
    write_unique,
)
from comfydesk.core.errors import ValidationError
from comfydesk.core.events import Cached, NodeStarted, Progress
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.templates import FieldKind, FormSpec, build_form
from comfydesk.core.workflow import load_workflow
from tests.conftest import FIXTURES, ROOT, load_json

OBJECT_INFO = str(FIXTURES / "object_info.json")


def _graph_doc() -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": "{width}", "height": 64, "batch_size": 1, "color": 0},
        },
        "2": {
            "class_type": "ImageBlur",
            "inputs": {"image": ["1", 0], "blur_radius": 3, "sigma": 1.0},
            "_meta": {"title": "Blur"},
        },
        "3": {
            "class_type": "ImageBlur",
            "inputs": {"image": ["2", 0], "blur_radius": 3, "sigma": 1.0},
            "_meta": {"title": "BLUR"},
        },
        "4": {
            "class_type": "TestSlowSteps",
            "inputs": {"image": ["3", 0], "steps": 8, "delay": 0.25, "preview": True},
            "_meta": {"title": "Slow"},
        },
        "5": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "6": {
            "class_type": "ImageScale",
            "inputs": {
                "image": ["5", 0],
                "upscale_method": "nearest-exact",
                "width": 32,
                "height": 32,
                "crop": "disabled",
            },
        },
        "7": {
            "class_type": "SaveImage",
            "inputs": {"images": ["4", 0], "filename_prefix": "out/{name}_x"},
            "_meta": {"title": "Save Image"},
        },
        "8": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 8, "denoise": 1}},
    }


@pytest.fixture
def form(catalog: NodeCatalog) -> FormSpec:
    return build_form(load_workflow(_graph_doc(), name="test"), catalog)


# ------------------------------------------------------------------------------------------- addressing


def test_parse_assignment_splits_at_the_first_equals() -> None:
    assert parse_assignment("prompt=a=b") == ("prompt", "a=b")
    assert parse_assignment(" 3.steps =") == ("3.steps", "")
    for bad in ("novalue", "=5", ""):
        with pytest.raises(SetError, match="NAME=VALUE"):
            parse_assignment(bad)


def test_resolve_placeholder(form: FormSpec) -> None:
    f = resolve_key(form, "width")
    assert (f.key, f.is_placeholder, f.kind) == ("width", True, FieldKind.INT)
    assert resolve_key(form, "name").kind is FieldKind.STRING  # inside longer text: text


def test_resolve_node_id_dot_input(form: FormSpec) -> None:
    f = resolve_key(form, "4.steps")
    assert (f.key, f.node_id, f.input_name) == ("4.steps", "4", "steps")


def test_resolve_title_dot_input_is_case_insensitive(form: FormSpec) -> None:
    assert resolve_key(form, "slow.delay").key == "4.delay"
    assert resolve_key(form, "sLoW.steps").key == "4.steps"
    # without a title of its own, a node answers to its display name or its type id
    assert resolve_key(form, "Load Image.image").key == "5.image"
    assert resolve_key(form, "imagescale.width").key == "6.width"


def test_resolve_ambiguous_title_lists_node_ids(form: FormSpec) -> None:
    with pytest.raises(SetError, match=r"ambiguous.*nodes 2, 3") as exc:
        resolve_key(form, "blur.sigma")
    assert "NODE_ID.sigma" in exc.value.message


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("nosuch", r"no placeholder, node id or node title.*\{width\}, \{name\}"),
        ("99.steps", r"no placeholder, node id or node title"),
        ("Nobody.steps", r"no placeholder, node id or node title"),
        ("4.nosuch", r"node 4 \(Slow\) has no input 'nosuch' \(settable: steps, delay, preview\)"),
        ("4.image", r"node 4 \(Slow\) input 'image' is linked"),
        ("1.width", r"holds the placeholder \{width\}; set it with --set width=VALUE"),
    ],
)
def test_resolve_unknown(form: FormSpec, name: str, pattern: str) -> None:
    with pytest.raises(SetError, match=pattern):
        resolve_key(form, name)


# ---------------------------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("4.steps", "12", 12),
        ("4.steps", " 1_000 ", 1000),
        ("8.seed", "18446744073709551615", 2**64 - 1),  # exact, never through float
        ("4.delay", "0.5", 0.5),
        ("4.delay", "2", 2),
        ("4.delay", "1e-1", 0.1),
        ("4.preview", "false", False),
        ("4.preview", "YES", True),
        ("4.preview", "0", False),
        ("6.upscale_method", "bilinear", "bilinear"),
        ("6.upscale_method", "no-such-method", "no-such-method"),  # left for validation to list
        ("5.image", "not-a-local-file.png", "not-a-local-file.png"),
        ("name", "x=y", "x=y"),
    ],
)
def test_parse_value_by_field_type(form: FormSpec, key: str, text: str, expected: object) -> None:
    value = parse_value(form.field(key), text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("4.steps", "many", "whole number"),
        ("4.steps", "1.5", "whole number"),
        ("4.delay", "fast", "must be a number"),
        ("4.delay", "nan", "finite"),
        ("4.preview", "maybe", "true or false"),
    ],
)
def test_parse_value_refuses(form: FormSpec, key: str, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_value(form.field(key), text)


def test_image_input_given_a_local_file_is_uploaded(form: FormSpec, tmp_path: Path) -> None:
    img = tmp_path / "in.png"
    Image.new("RGB", (2, 2)).save(img)
    assert parse_value(form.field("5.image"), str(img)) == ImageFile(img)
    assert parse_value(form.field("5.image"), "in.png", base_dir=tmp_path) == ImageFile(img)


def test_resolve_sets_collects_every_bad_value_as_validation_issues(form: FormSpec) -> None:
    values = resolve_sets(form, ["width=128", "Slow.steps=3", "name=fox"])
    assert values == {"width": 128, "4.steps": 3, "name": "fox"}
    with pytest.raises(ValidationError) as exc:
        resolve_sets(form, ["width=wide", "4.delay=slow"])
    assert [(i.node_id, i.input_name, i.field_key) for i in exc.value.issues] == [
        ("1", "width", "width"),
        ("4", "delay", "4.delay"),
    ]
    assert exc.value.lines()[0].startswith("node 1 (EmptyImage), input 'width': ")


def test_filled_values_are_validated_against_the_node_definitions(form: FormSpec) -> None:
    values = resolve_sets(form, ["width=999999", "name=a", "6.upscale_method=no-such-method"])
    with pytest.raises(ValidationError) as exc:
        form.fill(values)
    kinds = {(i.node_id, i.input_name): i.kind for i in exc.value.issues}
    assert kinds == {("1", "width"): "value_bigger_than_max", ("6", "upscale_method"): "value_not_in_list"}


# ---------------------------------------------------------------------------------------------- naming


def test_write_unique_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"
    paths = [write_unique(out, "ComfyUI_00001_.png", bytes([i])) for i in range(3)]
    assert [p.name for p in paths] == ["ComfyUI_00001_.png", "ComfyUI_00001__1.png", "ComfyUI_00001__2.png"]
    assert [p.read_bytes() for p in paths] == [b"\x00", b"\x01", b"\x02"]
    assert write_unique(out, "notes", b"x").name == "notes"
    assert write_unique(out, "notes", b"y").name == "notes_1"


# -------------------------------------------------------------------------------------------- progress


def test_progress_plain_lines_count_nodes_and_steps(catalog: NodeCatalog) -> None:
    graph = load_workflow(load_json("workflows/api/slow_steps.json")).graph
    stream = io.StringIO()
    view = ProgressView(graph, catalog, stream, tty=False, started_at=0.0)
    view.handle(Cached("p", ("1",)))
    view.handle(NodeStarted("p", "2"))
    view.handle(Progress("p", "2", 4, 8))
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("[ 50%] Test: Slow Steps (progress + previews) (#2)  step 4/8  ")


def test_progress_on_a_tty_rewrites_one_line(catalog: NodeCatalog) -> None:
    graph = load_workflow(load_json("workflows/api/slow_steps.json")).graph
    stream = io.StringIO()
    view = ProgressView(graph, catalog, stream, tty=True)
    view.handle(NodeStarted("p", "2"))
    view.handle(Progress("p", "2", 1, 8))
    view.end()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.count("\n") == 1 and "step 1/8" in text


# ------------------------------------------------------------------------------------------------ nodes


def test_nodes_json_is_the_v1_shape_of_every_node(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nodes", "--object-info", OBJECT_INFO, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["nodes"] and len(doc["nodes"]) == 449
    ksampler = next(n for n in doc["nodes"] if n["id"] == "KSampler")
    assert {"id", "name", "description", "inputs", "outputs", "category"} <= set(ksampler)
    seed = next(i for i in ksampler["inputs"] if i["name"] == "seed")
    assert seed["max"] == 2**64 - 1 and seed["type"] == "int" and seed["required"] is True


def test_nodes_search_uses_the_catalog_ranking(
    capsys: pytest.CaptureFixture[str], catalog: NodeCatalog
) -> None:
    assert main(["nodes", "--object-info", OBJECT_INFO, "--search", "ksampler", "--json"]) == 0
    ids = [n["id"] for n in json.loads(capsys.readouterr().out)["nodes"]]
    assert ids == [n.id for n in catalog.search("ksampler")]
    assert ids[:2] == ["KSampler", "KSamplerAdvanced"]


def test_nodes_table_is_aligned(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nodes", "--object-info", OBJECT_INFO, "--search", "ksampler"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "DISPLAY", "NAME", "CATEGORY"]
    assert lines[1].split()[0] == "KSampler" and lines[2].startswith("KSamplerAdvanced ")
    name_col = lines[0].index("DISPLAY NAME")
    assert all(line[name_col - 2 : name_col] == "  " for line in lines[1:])
    assert lines[2][name_col:].startswith("KSampler (Advanced)")


def test_nodes_category_filter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nodes", "--object-info", OBJECT_INFO, "--category", "Testing", "--json"]) == 0
    ids = [n["id"] for n in json.loads(capsys.readouterr().out)["nodes"]]
    assert ids == ["TestFail", "TestSlowSteps", "TestTextOutput"]


def test_nodes_unreadable_object_info(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "oi.json"
    bad.write_text("{nope", encoding="utf-8")
    assert main(["nodes", "--object-info", str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"comfydesk: {bad}: not valid JSON")


# ---------------------------------------------------------------------------------------------- convert


def test_convert_ui_workflow_matches_the_frontend(capsys: pytest.CaptureFixture[str]) -> None:
    src = FIXTURES / "workflows" / "ui" / "default.json"
    assert main(["convert", str(src), "--object-info", OBJECT_INFO]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == load_json("workflows/ui_reference_api/default.json")
    assert "MarkdownNote" in captured.err  # the report: notes dropped


def test_convert_lenient_emits_unknown_nodes_as_the_frontend(capsys: pytest.CaptureFixture[str]) -> None:
    src = FIXTURES / "workflows" / "ui" / "video_ltx2_pose_to_video.json"
    assert main(["convert", str(src), "--object-info", OBJECT_INFO]) == 1
    assert "DWPreprocessor" in capsys.readouterr().err
    assert main(["convert", str(src), "--object-info", OBJECT_INFO, "--lenient"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == load_json("workflows/ui_reference_api/video_ltx2_pose_to_video.json")
    assert "without 'class_type'" in captured.err


def test_convert_writes_out_file_keeping_unicode(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = load_json("workflows/api/empty_blur_save.json")
    doc["3"]["inputs"]["filename_prefix"] = "café/фото"
    src = tmp_path / "api.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "out.json"
    assert main(["convert", str(src), "-o", str(out)]) == 0  # API format: no node definitions needed
    text = out.read_text(encoding="utf-8")
    assert "café/фото" in text and json.loads(text) == doc and text.startswith("{\n  ")
    assert capsys.readouterr().out == ""


def _png_with(text: dict[str, str]) -> bytes:
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def test_convert_png_carrying_a_ui_workflow(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "ComfyUI_00001_.png"
    png.write_bytes(_png_with({"workflow": json.dumps(load_json("workflows/ui/default.json"))}))
    assert main(["convert", str(png), "--object-info", OBJECT_INFO]) == 0
    assert json.loads(capsys.readouterr().out) == load_json("workflows/ui_reference_api/default.json")


def test_convert_png_carrying_only_a_prompt_needs_no_server(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMFYDESK_SERVER", "http://127.0.0.1:9")  # nothing listens there
    prompt = load_json("workflows/api/empty_blur_save.json")
    png = tmp_path / "x.png"
    png.write_bytes(_png_with({"prompt": json.dumps(prompt)}))
    assert main(["convert", str(png)]) == 0
    assert json.loads(capsys.readouterr().out) == prompt


def test_convert_unknown_node_type_fails_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = load_json("workflows/ui/default.json")
    doc["nodes"][0]["type"] = "NoSuchNodeType"
    src = tmp_path / "wf.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    assert main(["convert", str(src), "--object-info", OBJECT_INFO]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"comfydesk: {src}: unknown node type NoSuchNodeType")


def test_convert_malformed_json_names_line_and_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "broken.json"
    src.write_text('{\n  "1": {"class_type": "X",\n  oops\n}', encoding="utf-8")
    assert main(["convert", str(src), "--object-info", OBJECT_INFO]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"comfydesk: {src}: not valid JSON") and "line 3, column 3" in err


def test_convert_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["convert", str(tmp_path / "nope.json"), "--object-info", OBJECT_INFO]) == 1
    assert "cannot read the file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- headless


def test_commands_never_import_qt(tmp_path: Path) -> None:
    """The commands work on a box without a display: running them loads neither PySide6 nor qasync."""
    code = (
        "import sys, contextlib, io\n"
        "from comfydesk.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['nodes', '--object-info', {OBJECT_INFO!r}, '--search', 'blur']) == 0\n"
        f"    assert main(['convert', {str(FIXTURES / 'workflows' / 'ui' / 'default.json')!r},"
        f" '--object-info', {OBJECT_INFO!r}]) == 0\n"
        "import comfydesk.backends.comfyui, comfydesk.commands.run, comfydesk.commands.check\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'qasync', 'shiboken6'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_server_option_before_or_after_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from comfydesk.cli import build_parser
    from comfydesk.commands._common import server_url

    monkeypatch.delenv("COMFYDESK_SERVER", raising=False)
    parser = build_parser()
    assert server_url(parser.parse_args(["--server", "http://a:1", "check"])) == "http://a:1"
    assert server_url(parser.parse_args(["check", "--server", "http://b:2/"])) == "http://b:2"
    assert server_url(parser.parse_args(["run", "f.json"])) == "http://127.0.0.1:8188"
    monkeypatch.setenv("COMFYDESK_SERVER", "http://env:3")
    assert server_url(parser.parse_args(["nodes"])) == "http://env:3"
