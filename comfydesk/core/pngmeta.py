"""Workflows embedded in images, as ComfyUI writes them. Pure Python (struct + zlib), safe on hostile input.

- PNG (SaveImage): text chunks (`tEXt`, `zTXt` or `iTXt`) keyed `prompt` (the API-format graph) and
  `workflow` (the editor's UI-format graph), each holding JSON.
- WebP (SaveAnimatedWEBP): an `EXIF` chunk whose first IFD holds ASCII strings `"prompt:{...}"` (tag 0x0110,
  Model) and `"workflow:{...}"` (tag 0x010F, Make; further extra keys count down from there).

Every length is checked against what is left of the data and against `MAX_CHUNK` before anything is read or
inflated, so a truncated, corrupt or oversized file raises `WorkflowFormatError` instead of hanging or
allocating without bound.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

from comfydesk.core.errors import WorkflowFormatError
from comfydesk.core.limits import JsonTooComplex, loads_bounded

__all__ = ["MAX_CHUNK", "embed_workflow_png", "read_embedded_workflow"]

#: Largest chunk (and largest inflated text) accepted, in bytes.
MAX_CHUNK = 64 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KEYS = ("workflow", "prompt")
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


def read_embedded_workflow(data: bytes, *, source: str | None = None) -> dict[str, Any]:
    """`{"workflow": <UI json>, "prompt": <API json>}` from a PNG or WebP; absent keys were not embedded."""
    raw = bytes(data)
    if raw.startswith(PNG_SIGNATURE):
        texts = _png_texts(raw, source)
    elif raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        texts = _webp_texts(raw, source)
    else:
        raise WorkflowFormatError("not a PNG or WebP image", source=source)
    out: dict[str, Any] = {}
    for key in _KEYS:
        if key in texts:
            try:
                out[key] = loads_bounded(texts[key])
            except JsonTooComplex as exc:
                raise WorkflowFormatError(
                    f"the embedded '{key}' is too complex to open: {exc}", source=source
                ) from None
            except ValueError as exc:
                raise WorkflowFormatError(
                    f"the embedded '{key}' is not valid JSON: {exc}", source=source
                ) from None
    return out


def embed_workflow_png(png: bytes, *, workflow: Any = None, prompt: Any = None) -> bytes:
    """The PNG with `prompt`/`workflow` tEXt chunks (as ComfyUI's SaveImage writes), replacing old ones."""
    raw = bytes(png)
    if not raw.startswith(PNG_SIGNATURE):
        raise WorkflowFormatError("not a PNG image")
    new_chunks = [
        _chunk(b"tEXt", key.encode("latin-1") + b"\0" + json.dumps(value).encode("latin-1"))
        for key, value in (("prompt", prompt), ("workflow", workflow))
        if value is not None
    ]
    parts = [PNG_SIGNATURE]
    inserted = False
    for kind, body, start, end in _png_chunks(raw, None):
        if kind in _TEXT_CHUNKS and _text_keyword(body) in _KEYS:
            continue  # replaced below
        if not inserted and kind in (b"IDAT", b"IEND"):
            parts.extend(new_chunks)
            inserted = True
        parts.append(raw[start:end])
    return b"".join(parts)


# ------------------------------------------------------------------------------------------------ PNG


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_chunks(raw: bytes, source: str | None) -> Iterator[tuple[bytes, bytes, int, int]]:
    """(type, data, start, end) of each chunk up to IEND; a chunk that runs past the end raises."""
    pos = len(PNG_SIGNATURE)
    while True:
        if pos + 8 > len(raw):
            raise WorkflowFormatError("truncated PNG: it ends before its IEND chunk", source=source)
        length, kind = struct.unpack(">I4s", raw[pos : pos + 8])
        if length > MAX_CHUNK:
            raise WorkflowFormatError(
                f"PNG chunk {kind!r} claims {length} bytes, more than the {MAX_CHUNK} accepted", source=source
            )
        end = pos + 12 + length
        if end > len(raw):
            raise WorkflowFormatError(f"truncated PNG: chunk {kind!r} runs past the end", source=source)
        yield kind, raw[pos + 8 : pos + 8 + length], pos, end
        if kind == b"IEND":
            return
        pos = end


def _text_keyword(body: bytes) -> str:
    return body.split(b"\0", 1)[0].decode("latin-1")


def _png_texts(raw: bytes, source: str | None) -> dict[str, str]:
    texts: dict[str, str] = {}
    for kind, body, _start, end in _png_chunks(raw, source):
        if kind not in _TEXT_CHUNKS:
            continue
        (crc,) = struct.unpack(">I", raw[end - 4 : end])
        if zlib.crc32(kind + body) != crc:
            raise WorkflowFormatError(f"corrupt PNG: bad checksum on a {kind.decode()} chunk", source=source)
        key, sep, rest = body.partition(b"\0")
        if not sep:
            raise WorkflowFormatError(f"corrupt PNG: {kind.decode()} chunk without a keyword", source=source)
        name = key.decode("latin-1")
        if name not in _KEYS or name in texts:  # ComfyUI writes each key once; the first one wins
            continue
        if kind == b"tEXt":
            texts[name] = rest.decode("latin-1")
        elif kind == b"zTXt":
            if not rest or rest[0] != 0:
                raise WorkflowFormatError(f"zTXt chunk '{name}' has an unknown compression", source=source)
            texts[name] = _inflate(rest[1:], name, source).decode("latin-1")
        else:
            texts[name] = _itxt(rest, name, source)
    return texts


def _itxt(rest: bytes, name: str, source: str | None) -> str:
    if len(rest) < 2:
        raise WorkflowFormatError(f"corrupt PNG: iTXt chunk '{name}' is cut short", source=source)
    compressed, method = rest[0], rest[1]
    parts = rest[2:].split(b"\0", 2)  # language tag, translated keyword, text
    if len(parts) != 3:
        raise WorkflowFormatError(f"corrupt PNG: iTXt chunk '{name}' is cut short", source=source)
    text = parts[2]
    if compressed:
        if method != 0:
            raise WorkflowFormatError(f"iTXt chunk '{name}' has an unknown compression", source=source)
        text = _inflate(text, name, source)
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        raise WorkflowFormatError(f"iTXt chunk '{name}' is not UTF-8 text", source=source) from None


def _inflate(data: bytes, name: str, source: str | None) -> bytes:
    """zlib-inflate at most MAX_CHUNK bytes: a compression bomb raises instead of filling memory."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_CHUNK)
    except zlib.error as exc:
        raise WorkflowFormatError(f"compressed text '{name}' is corrupt: {exc}", source=source) from None
    if inflater.unconsumed_tail:
        raise WorkflowFormatError(
            f"compressed text '{name}' inflates to more than {MAX_CHUNK} bytes", source=source
        )
    if not inflater.eof:
        raise WorkflowFormatError(f"compressed text '{name}' is truncated", source=source)
    return out


# ----------------------------------------------------------------------------------------------- WebP


def _webp_texts(raw: bytes, source: str | None) -> dict[str, str]:
    (riff_size,) = struct.unpack("<I", raw[4:8])
    end = min(len(raw), 8 + riff_size)
    if 8 + riff_size > len(raw):
        raise WorkflowFormatError("truncated WebP: the file is shorter than its header says", source=source)
    pos = 12
    while pos + 8 <= end:
        kind = raw[pos : pos + 4]
        (size,) = struct.unpack("<I", raw[pos + 4 : pos + 8])
        if size > MAX_CHUNK:
            raise WorkflowFormatError(
                f"WebP chunk {kind!r} claims {size} bytes, more than the {MAX_CHUNK} accepted", source=source
            )
        if pos + 8 + size > end:
            raise WorkflowFormatError(f"truncated WebP: chunk {kind!r} runs past the end", source=source)
        if kind == b"EXIF":
            return _exif_texts(raw[pos + 8 : pos + 8 + size], source)
        pos += 8 + size + (size & 1)
    return {}


def _exif_texts(exif: bytes, source: str | None) -> dict[str, str]:
    """ASCII values of the first IFD that read `key:value`, for the keys we want."""
    if exif.startswith(b"Exif\0\0"):
        exif = exif[6:]

    def bad(why: str) -> WorkflowFormatError:
        return WorkflowFormatError(f"corrupt EXIF in WebP: {why}", source=source)

    if len(exif) < 8:
        raise bad("too short")
    order = {b"II": "<", b"MM": ">"}.get(exif[:2])
    if order is None:
        raise bad("unknown byte order")
    magic, ifd = struct.unpack(order + "HI", exif[2:8])
    if magic != 42:
        raise bad("not a TIFF header")
    if ifd + 2 > len(exif):
        raise bad("the first IFD lies outside the data")
    (count,) = struct.unpack(order + "H", exif[ifd : ifd + 2])
    if ifd + 2 + 12 * count > len(exif):
        raise bad("the IFD runs past the end")
    texts: dict[str, str] = {}
    for i in range(count):
        entry = ifd + 2 + 12 * i
        _tag, typ, n, value = struct.unpack(order + "HHII", exif[entry : entry + 12])
        if typ not in (2, 7):  # ASCII, UNDEFINED
            continue
        if n <= 4:
            blob = exif[entry + 8 : entry + 8 + n]
        else:
            if value + n > len(exif):
                raise bad(f"a value of {n} bytes lies outside the data")
            blob = exif[value : value + n]
        text = blob.rstrip(b"\0").decode("utf-8", errors="replace")
        key, sep, rest = text.partition(":")
        if sep and key in _KEYS and key not in texts:
            texts[key] = rest
    return texts
