"""Files of the run journal: the content-addressed blob store, image probing, and reading files to import.

Blocking; meant for the journal's worker thread. Hostile files (not an image, a decompression bomb, a
truncated PNG) come back as `Probe`s with no dimensions and a reason, never as exceptions.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import mimetypes
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfydesk.core.errors import WorkflowFormatError
from comfydesk.core.pngmeta import read_embedded_workflow

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_IMPORT_BYTES",
    "Probe",
    "blob_relpath",
    "form_values_of",
    "probe",
    "read_import",
    "seed_of",
    "workflow_label",
    "write_blob",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".webp", ".jpg", ".jpeg", ".gif")
MAX_IMPORT_BYTES = 512 * 1024 * 1024
"""Larger files are skipped by an import (with a logged reason) instead of read into memory."""
MAX_PIXELS = 64_000_000  # as app.images: far above any workflow's image, far below a bomb

_FORMAT_EXT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}
_SAFE_EXT = re.compile(r"^[a-z0-9]{1,8}$")


@dataclass(frozen=True, slots=True)
class Probe:
    """What the bytes are: mime, extension for the blob, dimensions (None when unreadable), and why not."""

    mime: str
    ext: str
    width: int | None = None
    height: int | None = None
    problem: str = ""


def probe(data: bytes, filename: str) -> Probe:
    """Identify `data` (named `filename` by its source) without decoding pixels; never raises."""
    from PIL import Image  # imported when first needed, not at start-up

    guess = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    suffix = Path(filename).suffix.lower().lstrip(".")
    ext = suffix if _SAFE_EXT.match(suffix) else "bin"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format or ""
                width, height = image.size
                if width * height > MAX_PIXELS:
                    return Probe(
                        guess, ext, problem=f"{width}x{height} pixels: a possible decompression bomb"
                    )
                image.verify()  # chunk CRCs and structure; catches a truncated or corrupt file cheaply
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Probe(guess, ext, problem=f"a decompression bomb: {exc}")
    except Exception as exc:  # Pillow raises many kinds on hostile input; all mean "not readable"
        return Probe(guess, ext, problem=f"not a readable image: {exc or type(exc).__name__}")
    mime = Image.MIME.get(fmt, guess)
    return Probe(mime, _FORMAT_EXT.get(fmt, ext), width, height)


def blob_relpath(sha256: str, ext: str) -> str:
    return f"{sha256[:2]}/{sha256}.{ext}"


def write_blob(blobs_dir: Path, data: bytes, ext: str) -> tuple[str, str]:
    """Store `data` once: temp file, fsync, rename to `<sha[:2]>/<sha>.<ext>`. Returns (sha256, relpath)."""
    sha = hashlib.sha256(data).hexdigest()
    rel = blob_relpath(sha, ext)
    target = blobs_dir / rel
    if target.is_file() and target.stat().st_size == len(data):
        return sha, rel
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".incoming-", suffix=".tmp", dir=blobs_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    return sha, rel


def _fsync_dir(folder: Path) -> None:
    """The rename survives a power cut only once its directory is synced (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------------------ imports


@dataclass(frozen=True, slots=True)
class ImportedFile:
    """A file to import: its bytes, what is embedded in it, and the run fields derived from that."""

    path: Path
    data: bytes
    prompt: dict[str, Any]
    workflow: dict[str, Any] | None
    mtime: float


def read_import(path: Path) -> ImportedFile | None:
    """Read one file for an import; None (with a logged reason) when it cannot be taken."""
    try:
        st = path.stat()
        if st.st_size > MAX_IMPORT_BYTES:
            log.warning("import: skipped %s: %d bytes is more than %d", path, st.st_size, MAX_IMPORT_BYTES)
            return None
        data = path.read_bytes()
    except OSError as exc:
        log.warning("import: skipped %s: %s", path, exc)
        return None
    prompt: dict[str, Any] = {}
    workflow: dict[str, Any] | None = None
    try:
        embedded = read_embedded_workflow(data, source=str(path))
    except WorkflowFormatError as exc:
        log.info("import: %s carries no readable workflow: %s", path.name, exc)
    else:
        if isinstance(embedded.get("prompt"), dict):
            prompt = embedded["prompt"]
        if isinstance(embedded.get("workflow"), dict):
            workflow = embedded["workflow"]
    return ImportedFile(path, data, prompt, workflow, st.st_mtime)


_COUNTER = re.compile(r"^(.*?)[_-]*\d{3,}[_-]*$")


def workflow_label(path: Path) -> str:
    """A workflow name for an imported file: ComfyUI's filename prefix ("ComfyUI_00012_.png" -> "ComfyUI")."""
    stem = path.stem
    match = _COUNTER.match(stem)
    return (match.group(1) if match and match.group(1) else stem) or "Imported"


def form_values_of(prompt: dict[str, Any]) -> dict[str, Any]:
    """The literal inputs of an API graph as `"<node>.<input>"` values (links left out)."""
    values: dict[str, Any] = {}
    for nid, node in prompt.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        for name, value in inputs.items():
            if isinstance(value, str | int | float | bool) or value is None:
                values[f"{nid}.{name}"] = value
    return values


def seed_of(prompt: dict[str, Any]) -> int | None:
    """The first `seed`/`noise_seed` literal of an API graph."""
    for node in prompt.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        for name in ("seed", "noise_seed"):
            value = inputs.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None
