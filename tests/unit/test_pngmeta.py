"""Workflows embedded in PNG text chunks and WebP EXIF, and hostile files that must fail cleanly."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from comfydesk.core import pngmeta
from comfydesk.core.errors import WorkflowFormatError
from comfydesk.core.pngmeta import embed_workflow_png, read_embedded_workflow
from tests.conftest import load_json

WORKFLOW: dict[str, Any] = load_json("workflows/ui/default.json")
PROMPT: dict[str, Any] = load_json("workflows/ui_reference_api/default.json")


def plain_png(size: tuple[int, int] = (8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 40, 10)).save(buf, "PNG")
    return buf.getvalue()


def chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    value = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", value)


def insert_before_iend(png: bytes, extra: bytes) -> bytes:
    at = png.rindex(b"IEND") - 4
    return png[:at] + extra + png[at:]


def chunk_kinds(png: bytes) -> list[bytes]:
    kinds, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kinds.append(png[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


# ------------------------------------------------------------------------------------------- PNG


def test_embed_then_read_round_trip() -> None:
    png = embed_workflow_png(plain_png(), workflow=WORKFLOW, prompt=PROMPT)
    assert read_embedded_workflow(png) == {"workflow": WORKFLOW, "prompt": PROMPT}
    with Image.open(io.BytesIO(png)) as im:  # still a valid PNG with good checksums
        im.load()
        assert im.size == (8, 6)
        assert json.loads(im.text["workflow"]) == WORKFLOW
        assert json.loads(im.text["prompt"]) == PROMPT


def test_embed_puts_text_before_image_data_and_replaces_old_values() -> None:
    once = embed_workflow_png(plain_png(), workflow={"v": 1}, prompt={"p": 1})
    twice = embed_workflow_png(once, workflow={"v": 2})
    kinds = chunk_kinds(twice)
    assert kinds.count(b"tEXt") == 1  # the old prompt and workflow are gone, one new workflow
    assert kinds.index(b"tEXt") < kinds.index(b"IDAT")
    assert read_embedded_workflow(twice) == {"workflow": {"v": 2}}


def test_embed_non_latin1_text_survives() -> None:
    png = embed_workflow_png(plain_png(), workflow={"title": "猫 — café"})
    assert read_embedded_workflow(png) == {"workflow": {"title": "猫 — café"}}


def test_pillow_png_with_text_ztxt_and_itxt_chunks() -> None:
    info = PngInfo()
    info.add_text("prompt", json.dumps(PROMPT), zip=True)  # zTXt
    info.add_itxt("workflow", json.dumps(WORKFLOW, ensure_ascii=False), zip=True)  # compressed iTXt
    info.add_text("Software", "something else")
    buf = io.BytesIO()
    Image.new("RGBA", (4, 4)).save(buf, "PNG", pnginfo=info)
    assert read_embedded_workflow(buf.getvalue()) == {"workflow": WORKFLOW, "prompt": PROMPT}


def test_uncompressed_itxt() -> None:
    info = PngInfo()
    info.add_itxt("workflow", json.dumps({"name": "ünï"}, ensure_ascii=False), lang="en", tkey="wf")
    buf = io.BytesIO()
    Image.new("L", (2, 2)).save(buf, "PNG", pnginfo=info)
    assert read_embedded_workflow(buf.getvalue()) == {"workflow": {"name": "ünï"}}


def test_real_comfyui_output_png(fixtures_dir: Path) -> None:
    data = (fixtures_dir / "view" / "txt2img_tiny_sd15.png").read_bytes()
    meta = read_embedded_workflow(data)
    assert meta == {"prompt": load_json("prompts/txt2img_tiny_sd15.request.json")["prompt"]}


def test_png_without_metadata_gives_empty_dict(fixtures_dir: Path) -> None:
    assert read_embedded_workflow(plain_png()) == {}
    assert read_embedded_workflow((fixtures_dir / "misc" / "upload_source.png").read_bytes()) == {}


def test_not_an_image() -> None:
    with pytest.raises(WorkflowFormatError, match="not a PNG or WebP"):
        read_embedded_workflow(b'{"nodes": []}')
    with pytest.raises(WorkflowFormatError, match="not a PNG or WebP"):
        read_embedded_workflow(b"")
    with pytest.raises(WorkflowFormatError, match="not a PNG"):
        embed_workflow_png(b"GIF89a....", workflow={})


def test_every_truncation_raises_workflow_format_error() -> None:
    png = embed_workflow_png(plain_png(), workflow={"a": 1}, prompt={"b": 2})
    for cut in range(len(pngmeta.PNG_SIGNATURE), len(png)):
        with pytest.raises(WorkflowFormatError, match="truncated PNG"):
            read_embedded_workflow(png[:cut])


def test_oversized_chunk_length_is_refused_before_reading() -> None:
    png = plain_png()
    huge = struct.pack(">I", 0xFFFFFFF0) + b"tEXt" + b"workflow\0{}"
    with pytest.raises(WorkflowFormatError, match=r"claims 4294967280 bytes, more than the 67108864"):
        read_embedded_workflow(insert_before_iend(png, huge))


def test_bad_checksum_on_a_text_chunk() -> None:
    bad = chunk(b"tEXt", b"workflow\0{}", crc=12345)
    with pytest.raises(WorkflowFormatError, match="bad checksum on a tEXt chunk"):
        read_embedded_workflow(insert_before_iend(plain_png(), bad))


def test_invalid_json_is_named() -> None:
    png = insert_before_iend(plain_png(), chunk(b"tEXt", b"workflow\0{not json"))
    with pytest.raises(WorkflowFormatError, match="embedded 'workflow' is not valid JSON"):
        read_embedded_workflow(png, source="shot.png")
    with pytest.raises(WorkflowFormatError, match=r"^shot\.png: "):
        read_embedded_workflow(png, source="shot.png")


def test_compression_bomb_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pngmeta, "MAX_CHUNK", 1024)
    body = b"workflow\0\0" + zlib.compress(b'"' + b"a" * 5000 + b'"')
    with pytest.raises(WorkflowFormatError, match="inflates to more than 1024 bytes"):
        read_embedded_workflow(insert_before_iend(plain_png(), chunk(b"zTXt", body)))


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (b"workflow\0\0" + b"\x78\x9cnot zlib", "is corrupt"),
        (b"workflow\0\0" + zlib.compress(b"{}")[:-3], "truncated"),
        (b"workflow\0\x01" + zlib.compress(b"{}"), "unknown compression"),
    ],
)
def test_corrupt_ztxt(body: bytes, pattern: str) -> None:
    with pytest.raises(WorkflowFormatError, match=pattern):
        read_embedded_workflow(insert_before_iend(plain_png(), chunk(b"zTXt", body)))


def test_corrupt_itxt() -> None:
    with pytest.raises(WorkflowFormatError, match="iTXt chunk 'workflow' is cut short"):
        read_embedded_workflow(insert_before_iend(plain_png(), chunk(b"iTXt", b"workflow\0\0\0en")))
    with pytest.raises(WorkflowFormatError, match="not UTF-8"):
        read_embedded_workflow(insert_before_iend(plain_png(), chunk(b"iTXt", b"workflow\0\0\0\0\0\xff\xfe")))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzzed_png_never_escapes_with_another_error(data: st.DataObject) -> None:
    png = bytearray(embed_workflow_png(plain_png((3, 3)), workflow={"k": [1, 2]}, prompt={"x": "y"}))
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(8, len(png) - 1))
        png[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(8, len(png)))
    try:
        result = read_embedded_workflow(bytes(png[:cut]))
    except WorkflowFormatError:
        return
    assert set(result) <= {"workflow", "prompt"}


# ------------------------------------------------------------------------------------------ WebP


def comfy_webp(prompt: Any, workflow: Any) -> bytes:
    """A WebP the way ComfyUI's SaveAnimatedWEBP writes its metadata."""
    im = Image.new("RGB", (6, 6), (0, 120, 255))
    exif = im.getexif()
    exif[0x0110] = f"prompt:{json.dumps(prompt)}"
    exif[0x010F] = f"workflow:{json.dumps(workflow)}"
    buf = io.BytesIO()
    im.save(buf, "WEBP", exif=exif)
    return buf.getvalue()


def test_webp_with_comfyui_exif() -> None:
    data = comfy_webp(PROMPT, WORKFLOW)
    assert read_embedded_workflow(data) == {"workflow": WORKFLOW, "prompt": PROMPT}


def test_webp_without_exif(fixtures_dir: Path) -> None:
    data = (fixtures_dir / "view" / "empty_blur_save_preview.webp").read_bytes()
    assert read_embedded_workflow(data) == {}


def test_truncated_webp() -> None:
    data = comfy_webp({"a": 1}, {"b": 2})
    for cut in (12, 20, len(data) // 2, len(data) - 1):
        with pytest.raises(WorkflowFormatError, match="truncated WebP"):
            read_embedded_workflow(data[:cut])


def test_webp_oversized_chunk() -> None:
    data = b"WEBPEXIF" + struct.pack("<I", 0x7FFFFFFF)
    riff = b"RIFF" + struct.pack("<I", len(data)) + data
    with pytest.raises(WorkflowFormatError, match="more than the 67108864 accepted"):
        read_embedded_workflow(riff)


def test_webp_exif_value_pointing_outside_the_data() -> None:
    tiff = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, 500, 9999)
    tiff += b"\0\0\0\0"
    body = b"WEBP" + b"EXIF" + struct.pack("<I", len(tiff)) + tiff
    with pytest.raises(WorkflowFormatError, match="corrupt EXIF in WebP"):
        read_embedded_workflow(b"RIFF" + struct.pack("<I", len(body)) + body)
