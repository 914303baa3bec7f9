"""Images saved from the gallery carry what ComfyUI writes (and reads) plus comfydesk's form values."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from comfydesk.app.gallery_actions import export_bytes
from comfydesk.core.errors import UnsafeInputError
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.pngmeta import read_embedded_workflow
from comfydesk.core.savemeta import COMFYDESK_KEY, EXIF_TAGS, embed_png, patch_ui_widgets, read_comfydesk
from comfydesk.core.workflow import load_workflow
from comfydesk.store.journal import RunRecord
from tests.conftest import FIXTURES, load_json

PROMPT: dict[str, Any] = load_json("workflows/api/txt2img_tiny_sd15.json")
UI: dict[str, Any] = load_json("workflows/ui/default.json")
VALUES = {"3.seed": 1234, "3.steps": 3, "6.text": "a photo of a cat — über", "prompt": "a cat"}


def _run(ui: dict[str, Any] | None = UI) -> RunRecord:
    return RunRecord(
        id=7,
        profile_id="local",
        server="gpu-box:8188",
        workflow_name="Cats",
        workflow_id="local:cats.json",
        api_graph=PROMPT,
        ui_graph=ui,
        values=VALUES,
        seed=1234,
        status="completed",
        error=None,
        execution_id="abc",
        created_at=1_700_000_000.0,
        finished_at=1_700_000_004.0,
    )


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        out.append((png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _comfyui_png(image: Image.Image, prompt: Any, workflow: Any) -> bytes:
    """What ComfyUI's SaveImage writes (nodes.py): PngInfo.add_text with json.dumps, prompt first."""
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    info.add_text("workflow", json.dumps(workflow))
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info, compress_level=4)
    return out.getvalue()


def test_png_text_chunks_are_byte_for_byte_what_comfyui_writes() -> None:
    source = (FIXTURES / "view/txt2img_tiny_sd15.png").read_bytes()
    saved = export_bytes(source, ".png", _run())
    ours = [(k, v) for k, v in _chunks(saved) if k == b"tEXt"]
    theirs = [
        (k, v) for k, v in _chunks(_comfyui_png(Image.open(io.BytesIO(source)), PROMPT, UI)) if k == b"tEXt"
    ]
    assert ours[:2] == theirs  # prompt, then workflow, same bytes
    assert ours[2][1].startswith(COMFYDESK_KEY.encode() + b"\0")
    kinds = [k for k, _v in _chunks(saved)]
    assert kinds.index(b"tEXt") < kinds.index(b"IDAT")  # readable without decoding the pixels
    # The pixels are the server's, untouched.
    assert Image.open(io.BytesIO(saved)).tobytes() == Image.open(io.BytesIO(source)).tobytes()


def test_png_round_trip_through_pngmeta_and_the_loader(catalog: NodeCatalog) -> None:
    saved = export_bytes((FIXTURES / "view/txt2img_tiny_sd15.png").read_bytes(), ".png", _run(ui=None))
    embedded = read_embedded_workflow(saved)
    assert embedded == {"prompt": PROMPT}
    meta = read_comfydesk(saved)
    assert meta is not None
    assert meta["values"] == VALUES
    assert meta["seed"] == 1234
    assert meta["workflow_name"] == "Cats"
    wf = load_workflow(saved, catalog=catalog, source="cats.png")
    assert wf.format == "png"
    assert {nid: n.to_json() for nid, n in wf.graph.items()} == {
        nid: {k: v for k, v in node.items() if k != "_meta"} for nid, node in PROMPT.items()
    }


def test_ui_graph_is_kept_as_the_frontend_saved_it() -> None:
    saved = export_bytes((FIXTURES / "view/empty_blur_save.png").read_bytes(), ".png", _run())
    embedded = read_embedded_workflow(saved)
    assert embedded["workflow"] == UI
    assert embedded["prompt"] == PROMPT
    # Saving again replaces the chunks instead of adding a second set.
    again = export_bytes(saved, ".png", _run())
    assert [k for k, _v in _chunks(again)].count(b"tEXt") == 3


def test_a_file_without_a_run_keeps_its_own_metadata() -> None:
    source = (FIXTURES / "view/empty_blur_save.png").read_bytes()
    saved = export_bytes(source, ".png", None)
    assert read_embedded_workflow(saved) == read_embedded_workflow(source)
    assert read_comfydesk(saved) is None


@pytest.mark.parametrize("suffix", [".webp", ".jpg"])
def test_webp_and_jpeg_carry_comfyuis_exif(suffix: str) -> None:
    saved = export_bytes((FIXTURES / "view/txt2img_tiny_sd15.png").read_bytes(), suffix, _run())
    image = Image.open(io.BytesIO(saved))
    assert image.format == ("WEBP" if suffix == ".webp" else "JPEG")
    exif = image.getexif()
    assert exif[EXIF_TAGS["prompt"]] == "prompt:" + json.dumps(PROMPT)  # 0x0110, Model
    assert exif[EXIF_TAGS["workflow"]] == "workflow:" + json.dumps(UI)  # 0x010F, Make
    meta = read_comfydesk(saved)
    assert meta is not None and meta["values"] == VALUES
    if suffix == ".webp":  # what comfydesk (and ComfyUI's frontend) read from a WebP
        assert read_embedded_workflow(saved) == {"prompt": PROMPT, "workflow": UI}


def test_a_webp_output_saved_as_png() -> None:
    source = (FIXTURES / "templates/default-1.webp").read_bytes()
    saved = export_bytes(source, ".png", _run())
    assert saved.startswith(b"\x89PNG")
    assert read_embedded_workflow(saved)["prompt"] == PROMPT


def test_hostile_sources_are_refused_not_crashed(tmp_path: Path) -> None:
    bomb = _bomb_png()
    with pytest.raises(UnsafeInputError):
        export_bytes(bomb, ".webp", _run())
    with pytest.raises(UnsafeInputError):
        export_bytes(b"not an image at all", ".jpg", _run())
    source = (FIXTURES / "view/txt2img_tiny_sd15.png").read_bytes()
    with pytest.raises(Exception, match="save as"):
        export_bytes(source, ".gif", _run())


def test_read_comfydesk_ignores_other_files() -> None:
    assert read_comfydesk((FIXTURES / "view/txt2img_tiny_sd15.png").read_bytes()) is None
    assert read_comfydesk(b"GIF89a....") is None
    assert read_comfydesk((FIXTURES / "templates/default-1.webp").read_bytes()) is None


def test_embed_png_without_values_adds_no_comfydesk_chunk() -> None:
    source = (FIXTURES / "view/txt2img_tiny_sd15.png").read_bytes()
    out = embed_png(source, prompt=PROMPT, workflow=None)
    assert read_comfydesk(out) is None


def _bomb_png() -> bytes:
    """A PNG header claiming 100,000 x 100,000 pixels with almost no data."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _sent_default() -> dict[str, Any]:
    sent: dict[str, Any] = json.loads(json.dumps(load_json("workflows/ui_reference_api/default.json")))
    sent["3"]["inputs"].update(seed=4242, steps=9, cfg=5.5, sampler_name="dpmpp_2m")
    sent["6"]["inputs"]["text"] = "a lighthouse at dusk, oil painting"
    sent["5"]["inputs"].update(width=768, height=512)
    return sent


def test_ui_graph_gets_the_values_the_run_sent(catalog: NodeCatalog) -> None:
    """ComfyUI's frontend then shows the seed and settings that made the image, not the file's."""
    sent = _sent_default()
    patched, changed = patch_ui_widgets(UI, sent, catalog)
    assert changed == 6  # height was 512 already
    ksampler = next(n for n in patched["nodes"] if n["type"] == "KSampler")
    assert ksampler["widgets_values"][:4] == [4242, "randomize", 9, 5.5]  # the seed's control slot kept
    again = load_workflow(patched, catalog=catalog, source="patched")
    got = {nid: n.to_json()["inputs"] for nid, n in again.graph.items()}
    assert got == {nid: node["inputs"] for nid, node in sent.items()}
    # Everything else is as the editor saved it; the original is untouched.
    assert {k: v for k, v in patched.items() if k != "nodes"} == {k: v for k, v in UI.items() if k != "nodes"}
    assert next(n for n in UI["nodes"] if n["type"] == "KSampler")["widgets_values"][0] != 4242


def test_export_patches_the_ui_graph_with_a_catalog(catalog: NodeCatalog) -> None:
    run = RunRecord(**{**{f: getattr(_run(), f) for f in RunRecord.__slots__}, "api_graph": _sent_default()})  # type: ignore[attr-defined]
    saved = export_bytes((FIXTURES / "view/txt2img_tiny_sd15.png").read_bytes(), ".png", run, catalog=catalog)
    ui = read_embedded_workflow(saved)["workflow"]
    assert next(n for n in ui["nodes"] if n["type"] == "KSampler")["widgets_values"][0] == 4242
    assert export_bytes((FIXTURES / "view/txt2img_tiny_sd15.png").read_bytes(), ".png", run) != saved


def test_patch_leaves_nodes_it_cannot_line_up(catalog: NodeCatalog) -> None:
    ui = json.loads(json.dumps(UI))
    sampler = next(n for n in ui["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"] = sampler["widgets_values"][:3]  # not the definition's length: left alone
    patched, _changed = patch_ui_widgets(ui, _sent_default(), catalog)
    assert (
        next(n for n in patched["nodes"] if n["type"] == "KSampler")["widgets_values"]
        == sampler["widgets_values"]
    )
