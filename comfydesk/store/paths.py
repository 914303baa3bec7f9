"""Where comfydesk keeps its files: platform dirs by default, everything under one `data_dir` when given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["AppPaths", "default_data_dir", "resolve_paths"]

APP_NAME = "comfydesk"


def default_data_dir() -> Path:
    """The user's data dir for comfydesk (e.g. ~/.local/share/comfydesk)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True, slots=True)
class AppPaths:
    """Every file and folder the app writes, all under `data_dir`."""

    data_dir: Path

    @property
    def settings_file(self) -> Path:
        return self.data_dir / "settings.json"

    @property
    def profiles_file(self) -> Path:
        return self.data_dir / "profiles.json"

    @property
    def secrets_file(self) -> Path:
        return self.data_dir / "secrets.json"

    @property
    def library_dir(self) -> Path:
        return self.data_dir / "workflows"

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def journal_file(self) -> Path:
        """The run journal (SQLite)."""
        return self.data_dir / "journal.sqlite3"

    @property
    def blobs_dir(self) -> Path:
        """The journal's content-addressed output files."""
        return self.data_dir / "blobs"

    @property
    def demo_dir(self) -> Path:
        return self.data_dir / "demo"

    def ensure(self) -> AppPaths:
        """Create the folders that must exist (cheap; safe to call on start-up)."""
        for folder in (self.data_dir, self.library_dir, self.results_dir, self.blobs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def resolve_paths(data_dir: Path | str | None = None) -> AppPaths:
    """`data_dir` when given (tests, portable installs), else the platform's user data dir."""
    return AppPaths(Path(data_dir).expanduser().resolve() if data_dir is not None else default_data_dir())
