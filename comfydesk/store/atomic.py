"""Atomic file writes: a temp file in the same folder, fsync, then os.replace."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from comfydesk.core.limits import JsonTooComplex, loads_bounded

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "json_bytes",
    "read_json",
    "read_json_or_set_aside",
    "write_new_file",
]

log = logging.getLogger(__name__)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write `data` to `path` so that readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def json_bytes(doc: Any) -> bytes:
    """`doc` as the UTF-8 JSON text our files hold (indented, keys sorted)."""
    return (json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


def atomic_write_json(path: Path, doc: Any, *, mode: int | None = None) -> None:
    atomic_write_bytes(path, json_bytes(doc), mode=mode)


def read_json(path: Path, default: Any) -> Any:
    """The parsed file, or `default` when it is missing or unreadable (a broken file never stops start-up)."""
    try:
        return loads_bounded(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # JsonTooComplex (deep nesting) included
        return default


def read_json_or_set_aside(
    path: Path, default: Any, *, valid: Callable[[Any], bool] | None = None
) -> tuple[Any, str | None]:
    """The parsed file and None; or `default` and a notice when the file is corrupt.

    Corrupt means: not UTF-8 JSON, nested or sized past what our files ever hold (`loads_bounded`), or
    refused by `valid`. Such a file is renamed `<name>.corrupt-<time>` (kept for the user, never read
    again) so the next start is clean; start-up goes on with `default`. A missing file is no notice.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return default, None
    except OSError as exc:
        notice = f"{path.name} could not be read ({exc.strerror or exc}); the defaults are used for now."
        log.warning("%s: %s", path, notice)
        return default, notice
    why = ""
    try:
        doc = loads_bounded(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        why = "it is not UTF-8 text"
    except JsonTooComplex as exc:
        why = str(exc)
    except ValueError:
        why = "it is not valid JSON"
    else:
        if valid is None or valid(doc):
            return doc, None
        why = "its content is not what comfydesk writes"
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        n += 1
    try:
        os.replace(path, aside)
    except OSError as exc:
        notice = (
            f"{path.name} is damaged ({why}) and could not be set aside ({exc.strerror or exc}); "
            "the defaults are used for now."
        )
    else:
        notice = (
            f"{path.name} was damaged ({why}); it was set aside as {aside.name} and the defaults are used."
        )
    log.warning("%s: %s", path, notice)
    return default, notice


def write_new_file(path: Path, data: bytes) -> None:
    """Create `path` holding `data`, all at once; FileExistsError when the name is taken (never overwrites).

    The bytes go to a hidden temporary file in the same folder, are synced, and the file is then linked under
    its final name, so a crash or Ctrl+C mid-write never leaves a partial file under that name."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:32]}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails with FileExistsError when taken
        except FileExistsError:
            raise
        except OSError:  # no hard links here (some network and FAT file systems): claim the name, then move
            with open(path, "xb"):
                pass
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
