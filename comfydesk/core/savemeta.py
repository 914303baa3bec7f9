"""Metadata for images saved from the gallery, as ComfyUI writes it, plus comfydesk's own form values.

- PNG: `tEXt` chunks `prompt` (API graph) then `workflow` (UI graph), each `json.dumps(...)` as ComfyUI's
  SaveImage writes them through Pillow's `PngInfo.add_text`; then a `comfydesk` chunk (the form values, the
  seed, the workflow's name), which ComfyUI ignores and comfydesk reads back when the file is opened.
- WebP/JPEG: EXIF IFD0 ASCII strings `"prompt:{...}"` at 0x0110 (Model) and `"workflow:{...}"` at
  0x010F (Make), further keys counting down (ComfyUI's SaveAnimatedWEBP); `comfydesk:{...}` takes 0x010E.

Pure Python; the readers check every length before reading, like `comfydesk.core.pngmeta`.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any

from comfydesk.core.errors import WorkflowFormatError
from comfydesk.core.graph import is_link
from comfydesk.core.nodes import InputSpec, NodeCatalog
from comfydesk.core.pngmeta import MAX_CHUNK, PNG_SIGNATURE, embed_workflow_png

__all__ = [
    "COMFYDESK_KEY",
    "EXIF_TAGS",
    "embed_png",
    "exif_strings",
    "patch_ui_widgets",
    "read_comfydesk",
]

_SEED_NAMES = frozenset({"seed", "noise_seed"})  # as the converter: widgets the editor gives a control
COMFYDESK_KEY = "comfydesk"
EXIF_TAGS = {"prompt": 0x0110, "workflow": 0x010F, COMFYDESK_KEY: 0x010E}
"""Where each key goes in IFD0: prompt in Model, then the extra keys counting down from Make."""


def _dumps(value: Any) -> str:
    # ComfyUI: json.dumps(prompt) with the defaults (ASCII only, ", " and ": " separators).
    return json.dumps(value)


def embed_png(
    png: bytes,
    *,
    prompt: Mapping[str, Any] | None,
    workflow: Mapping[str, Any] | None,
    comfydesk: Mapping[str, Any] | None = None,
) -> bytes:
    """The PNG with ComfyUI's `prompt`/`workflow` tEXt chunks and a `comfydesk` one, replacing old ones."""
    out = embed_workflow_png(
        png,
        prompt=dict(prompt) if prompt is not None else None,
        workflow=dict(workflow) if workflow is not None else None,
    )
    chunks = list(_png_chunks(out))
    parts = [PNG_SIGNATURE]
    body = COMFYDESK_KEY.encode("latin-1") + b"\0" + _dumps(dict(comfydesk or {})).encode("latin-1")
    inserted = comfydesk is None
    for kind, data, start, end in chunks:
        if kind in (b"tEXt", b"zTXt", b"iTXt") and data.split(b"\0", 1)[0] == COMFYDESK_KEY.encode():
            continue  # an old one: replaced
        if not inserted and kind in (b"IDAT", b"IEND"):
            parts.append(_chunk(b"tEXt", body))
            inserted = True
        parts.append(out[start:end])
    return b"".join(parts)


def exif_strings(
    *,
    prompt: Mapping[str, Any] | None,
    workflow: Mapping[str, Any] | None,
    comfydesk: Mapping[str, Any] | None = None,
) -> dict[int, str]:
    """IFD0 tag -> ASCII value, as ComfyUI writes a WebP's EXIF (and comfydesk's values after them)."""
    out: dict[int, str] = {}
    for key, value in (("prompt", prompt), ("workflow", workflow), (COMFYDESK_KEY, comfydesk)):
        if value is not None:
            out[EXIF_TAGS[key]] = f"{key}:{_dumps(dict(value))}"
    return out


def patch_ui_widgets(
    ui: Mapping[str, Any], prompt: Mapping[str, Any], catalog: NodeCatalog
) -> tuple[dict[str, Any], int]:
    """A copy of the editor's graph whose widget values are the ones the run sent (`prompt`), so ComfyUI's
    frontend shows the seed and settings that made the image; returns it and how many values changed.

    Best effort and conservative: only root-graph nodes whose id and type match a prompt node, and whose
    saved widget list lines up with the definition's widgets (with the editor's seed-control and upload
    slots), are touched; anything else is left exactly as it was saved.
    """
    doc = json.loads(json.dumps(ui))
    changed = 0
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    for node in nodes if isinstance(nodes, list) else []:
        if not isinstance(node, dict):
            continue
        sent = prompt.get(str(node.get("id")))
        ndef = catalog.get(str(node.get("type")))
        if not isinstance(sent, Mapping) or ndef is None or sent.get("class_type") != node.get("type"):
            continue
        inputs = sent.get("inputs")
        stored = node.get("widgets_values")
        if not isinstance(inputs, Mapping):
            continue
        if isinstance(stored, dict):
            for name, value in inputs.items():
                if name in stored and not is_link(value) and stored[name] != value:
                    stored[name] = value
                    changed += 1
            continue
        if not isinstance(stored, list):
            continue
        slots = _widget_slots(ndef.inputs, with_upload=True)
        if len(slots) != len(stored):
            slots = _widget_slots(ndef.inputs, with_upload=False)
        if len(slots) != len(stored):
            continue
        for i, name in enumerate(slots):
            value = inputs.get(name) if name is not None else None
            if name is not None and name in inputs and not is_link(value) and stored[i] != value:
                stored[i] = value
                changed += 1
    return doc, changed


def _widget_slots(specs: tuple[InputSpec, ...], *, with_upload: bool) -> list[str | None]:
    """The editor's widget list of a node: each widget's name, None for its extra (control, upload) slots."""
    slots: list[str | None] = []
    for spec in specs:
        if not spec.is_widget:
            continue
        slots.append(spec.name)
        flag = spec.options.get("control_after_generate")
        if bool(flag) if flag is not None else spec.type == "INT" and spec.name in _SEED_NAMES:
            slots.append(None)
        if spec.upload and with_upload:
            slots.append(None)
    return slots


def read_comfydesk(data: bytes, *, source: str | None = None) -> dict[str, Any] | None:
    """The `comfydesk` metadata of a PNG, WebP or JPEG saved by comfydesk; None when there is none."""
    raw = bytes(data)
    text: str | None
    if raw.startswith(PNG_SIGNATURE):
        text = _png_text(raw, COMFYDESK_KEY, source)
    elif raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        text = _exif_text(_webp_exif(raw), COMFYDESK_KEY)
    elif raw[:2] == b"\xff\xd8":
        text = _exif_text(_jpeg_exif(raw), COMFYDESK_KEY)
    else:
        return None
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        message = f"the embedded comfydesk values are not valid JSON: {exc}"
        raise WorkflowFormatError(message, source=source) from None
    return value if isinstance(value, dict) else None


# --------------------------------------------------------------------------------------------- readers


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_chunks(raw: bytes, source: str | None = None) -> list[tuple[bytes, bytes, int, int]]:
    out: list[tuple[bytes, bytes, int, int]] = []
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[pos : pos + 8])
        end = pos + 12 + length
        if length > MAX_CHUNK or end > len(raw):
            raise WorkflowFormatError(f"truncated or corrupt PNG at chunk {kind!r}", source=source)
        out.append((kind, raw[pos + 8 : pos + 8 + length], pos, end))
        if kind == b"IEND":
            break
        pos = end
    return out


def _png_text(raw: bytes, key: str, source: str | None) -> str | None:
    for kind, body, _start, _end in _png_chunks(raw, source):
        name, sep, rest = body.partition(b"\0")
        if not sep or name != key.encode("latin-1"):
            continue
        if kind == b"tEXt":
            return rest.decode("latin-1")
        if kind == b"iTXt" and len(rest) >= 2 and rest[0] == 0:  # uncompressed only: we never compress
            parts = rest[2:].split(b"\0", 2)
            if len(parts) == 3:
                return parts[2].decode("utf-8", errors="replace")
    return None


def _webp_exif(raw: bytes) -> bytes:
    pos, end = 12, min(len(raw), 8 + struct.unpack("<I", raw[4:8])[0])
    while pos + 8 <= end:
        kind = raw[pos : pos + 4]
        (size,) = struct.unpack("<I", raw[pos + 4 : pos + 8])
        if size > MAX_CHUNK or pos + 8 + size > end:
            return b""
        if kind == b"EXIF":
            return raw[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)
    return b""


def _jpeg_exif(raw: bytes) -> bytes:
    pos = 2
    while pos + 4 <= len(raw) and raw[pos] == 0xFF:
        marker = raw[pos + 1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more headers
            break
        (length,) = struct.unpack(">H", raw[pos + 2 : pos + 4])
        segment = raw[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment.startswith(b"Exif\0\0"):
            return segment
        pos += 2 + length
    return b""


def _exif_text(exif: bytes, key: str) -> str | None:
    if exif.startswith(b"Exif\0\0"):
        exif = exif[6:]
    if len(exif) < 8:
        return None
    order = {b"II": "<", b"MM": ">"}.get(exif[:2])
    if order is None:
        return None
    _magic, ifd = struct.unpack(order + "HI", exif[2:8])
    if ifd + 2 > len(exif):
        return None
    (count,) = struct.unpack(order + "H", exif[ifd : ifd + 2])
    for i in range(count):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(exif):
            return None
        _tag, typ, n, value = struct.unpack(order + "HHII", exif[entry : entry + 12])
        if typ not in (2, 7):
            continue
        blob = exif[entry + 8 : entry + 8 + n] if n <= 4 else exif[value : value + n]
        text = blob.rstrip(b"\0").decode("utf-8", errors="replace")
        name, sep, rest = text.partition(":")
        if sep and name == key:
            return rest
    return None
