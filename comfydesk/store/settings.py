"""Settings: one JSON file in the data dir, written atomically on every change.

Built with `background=True` (the app does), a change is written off the calling thread by a
`SettingsWriter` (newest state wins); `flush()` puts what is pending on disk before returning.

Holds window geometry/state, the last workflow and profile, the secret-store opt-in, the user's
`Preferences` (theme, output folder, thumbnail size, confirm on cancel, reduce motion), and per-workflow form
memory (values, pinned and hidden fields, last seed). Only JSON-plain values are remembered: an image picked
from disk or pasted is not (it may be gone next session).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from comfydesk.store.atomic import atomic_write_bytes, json_bytes, read_json_or_set_aside

if TYPE_CHECKING:  # imported with the first background writer (it needs asyncio), not to read settings
    from comfydesk.store.writer import SettingsWriter

__all__ = ["THEMES", "THUMBNAIL_SIZES", "Preferences", "Settings", "WorkflowPrefs"]

log = logging.getLogger(__name__)
_VERSION = 1


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


THEMES = ("system", "light", "dark")
THUMBNAIL_SIZES = {"small": 128, "medium": 176, "large": 240}
"""Gallery tile sizes (the picture's box, px); the thumbnails are made at 256 px, so each stays crisp."""


@dataclass(frozen=True, slots=True)
class Preferences:
    """What the Settings dialog edits. `output_folder` "" means the default (`results` in the data dir)."""

    theme: str = "system"
    output_folder: str = ""
    thumbnail_size: str = "medium"
    confirm_cancel: bool = False
    reduce_motion: bool = False

    def __post_init__(self) -> None:
        if self.theme not in THEMES:
            raise ValueError(f"theme must be one of {', '.join(THEMES)}, got {self.theme!r}")
        if self.thumbnail_size not in THUMBNAIL_SIZES:
            raise ValueError(
                f"thumbnail size must be one of {', '.join(THUMBNAIL_SIZES)}, got {self.thumbnail_size!r}"
            )

    @property
    def tile_px(self) -> int:
        return THUMBNAIL_SIZES[self.thumbnail_size]

    def to_json(self) -> dict[str, Any]:
        return {
            "theme": self.theme,
            "output_folder": self.output_folder,
            "thumbnail_size": self.thumbnail_size,
            "confirm_cancel": self.confirm_cancel,
            "reduce_motion": self.reduce_motion,
        }

    @classmethod
    def from_json(cls, doc: Any) -> Preferences:
        """Tolerant: a missing, unknown or mistyped value takes its default (older or hand-edited files)."""
        if not isinstance(doc, dict):
            return cls()
        default = cls()
        theme = doc.get("theme")
        size = doc.get("thumbnail_size")
        folder = doc.get("output_folder")
        confirm = doc.get("confirm_cancel")
        motion = doc.get("reduce_motion")
        return cls(
            theme=theme if theme in THEMES else default.theme,
            output_folder=folder if isinstance(folder, str) else default.output_folder,
            thumbnail_size=size if size in tuple(THUMBNAIL_SIZES) else default.thumbnail_size,
            confirm_cancel=confirm if isinstance(confirm, bool) else default.confirm_cancel,
            reduce_motion=motion if isinstance(motion, bool) else default.reduce_motion,
        )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass
class WorkflowPrefs:
    """What the form remembers for one workflow."""

    values: dict[str, Any] = field(default_factory=dict)
    pinned: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    last_seed: int | None = None
    collapsed: list[str] = field(default_factory=list)
    seed_controls: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "values": {k: v for k, v in self.values.items() if _plain(v)},
            "pinned": list(self.pinned),
            "hidden": list(self.hidden),
            "last_seed": self.last_seed,
            "collapsed": list(self.collapsed),
            "seed_controls": {str(k): str(v) for k, v in self.seed_controls.items()},
        }

    @classmethod
    def from_json(cls, doc: Any) -> WorkflowPrefs:
        if not isinstance(doc, dict):
            return cls()
        values = doc.get("values")
        seed = doc.get("last_seed")
        controls = doc.get("seed_controls")
        return cls(
            values=dict(values) if isinstance(values, dict) else {},
            pinned=[str(k) for k in _list(doc.get("pinned")) if isinstance(k, str)],
            hidden=[str(k) for k in _list(doc.get("hidden")) if isinstance(k, str)],
            last_seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            collapsed=[str(k) for k in _list(doc.get("collapsed")) if isinstance(k, str)],
            seed_controls={str(k): str(v) for k, v in controls.items()} if isinstance(controls, dict) else {},
        )


class Settings:
    """The settings file. Every setter writes the file (atomically) when the value really changed.

    Reading happens once, here (a small file, before the window shows). With `background`, writes go
    through a `SettingsWriter`; `on_error` then hears of a failed one (otherwise the setter raises).
    """

    def __init__(
        self,
        path: Path,
        *,
        background: bool = False,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.path = path
        # A damaged file (not JSON, hostile nesting, not an object) is set aside with a notice, never fatal.
        doc, self.notice = read_json_or_set_aside(path, {}, valid=lambda d: isinstance(d, dict))
        self._doc: dict[str, Any] = doc if isinstance(doc, dict) else {}
        self._doc.setdefault("version", _VERSION)
        self.writer: SettingsWriter | None = None
        if background:
            self.write_in_background(on_error)

    def write_in_background(self, on_error: Callable[[Exception], None] | None = None) -> None:
        """From now on, changes are written off the calling thread (see `SettingsWriter`); `on_error` hears
        of a failed write. Settings read before the app's state exists (the window's first frame) start
        their writer here once it does."""
        from comfydesk.store.writer import SettingsWriter

        if self.writer is None:
            self.writer = SettingsWriter(self.path, self._encode, on_error=on_error)
        else:
            self.writer.on_error = on_error

    # -- generic -----------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return self._doc.get(key, default)

    def set(self, key: str, value: Any) -> bool:
        """Store `value` (JSON-plain) under `key`; returns True when it changed and was written."""
        if not _plain(value):
            raise TypeError(f"setting {key!r} must be JSON-plain, got {type(value).__name__}")
        if key in self._doc and self._doc[key] == value:
            return False
        self._doc[key] = value
        self.save()
        return True

    def remove(self, key: str) -> None:
        if self._doc.pop(key, None) is not None:
            self.save()

    def save(self) -> None:
        """Write the file: now, or soon on the background writer's thread."""
        if self.writer is not None:
            self.writer.request()
        else:
            atomic_write_bytes(self.path, self._encode())

    def flush(self) -> None:
        """Put a pending background write on disk before returning (no-op without a writer)."""
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Flush and stop the background writer's thread; later changes are written at once."""
        if self.writer is not None:
            self.writer.close()

    def _encode(self) -> bytes:
        return json_bytes(self._doc)

    # -- window ------------------------------------------------------------------------------------
    def window_geometry(self) -> bytes | None:
        return self._bytes("window_geometry")

    def set_window_geometry(self, data: bytes) -> None:
        self.set("window_geometry", base64.b64encode(data).decode("ascii"))

    def window_state(self) -> bytes | None:
        return self._bytes("window_state")

    def set_window_state(self, data: bytes) -> None:
        self.set("window_state", base64.b64encode(data).decode("ascii"))

    def _bytes(self, key: str) -> bytes | None:
        raw = self._doc.get(key)
        if not isinstance(raw, str):
            return None
        try:
            return base64.b64decode(raw.encode("ascii"), validate=True)
        except ValueError:
            return None

    # -- last used ---------------------------------------------------------------------------------
    @property
    def last_workflow(self) -> str | None:
        value = self._doc.get("last_workflow")
        return value if isinstance(value, str) else None

    @last_workflow.setter
    def last_workflow(self, key: str | None) -> None:
        self.set("last_workflow", key)

    @property
    def last_profile(self) -> str | None:
        value = self._doc.get("last_profile")
        return value if isinstance(value, str) else None

    @last_profile.setter
    def last_profile(self, profile_id: str | None) -> None:
        self.set("last_profile", profile_id)

    @property
    def secrets_in_file(self) -> bool:
        """The user chose to keep tokens in a file only they can read (no keyring)."""
        return bool(self._doc.get("secrets_in_file", False))

    @secrets_in_file.setter
    def secrets_in_file(self, enabled: bool) -> None:
        self.set("secrets_in_file", bool(enabled))

    # -- preferences (the Settings dialog) ---------------------------------------------------------
    @property
    def preferences(self) -> Preferences:
        return Preferences.from_json(self._doc.get("preferences"))

    @preferences.setter
    def preferences(self, prefs: Preferences) -> None:
        self.set("preferences", prefs.to_json())

    # -- per workflow ------------------------------------------------------------------------------
    def workflow_prefs(self, key: str) -> WorkflowPrefs:
        all_prefs = self._doc.get("workflows")
        return WorkflowPrefs.from_json(all_prefs.get(key) if isinstance(all_prefs, dict) else None)

    def set_workflow_prefs(self, key: str, prefs: WorkflowPrefs) -> bool:
        all_prefs = self._doc.get("workflows")
        if not isinstance(all_prefs, dict):
            all_prefs = {}
        doc = prefs.to_json()
        if all_prefs.get(key) == doc:
            return False
        all_prefs[key] = doc
        self._doc["workflows"] = all_prefs
        self.save()
        return True

    def update_workflow_prefs(self, key: str, **changes: Any) -> bool:
        """Change some fields of one workflow's prefs (values, pinned, hidden, last_seed)."""
        prefs = self.workflow_prefs(key)
        for name, value in changes.items():
            if not hasattr(prefs, name):
                raise AttributeError(name)
            if isinstance(value, Mapping):
                value = dict(value)
            setattr(prefs, name, value)
        return self.set_workflow_prefs(key, prefs)

    def rename_workflow_prefs(self, old: str, new: str) -> None:
        all_prefs = self._doc.get("workflows")
        if isinstance(all_prefs, dict) and old in all_prefs:
            all_prefs[new] = all_prefs.pop(old)
            if self.last_workflow == old:
                self._doc["last_workflow"] = new
            self.save()
