"""Qt-facing application state: QObjects that own a backend and publish state through signals.

`create_main_window` and `run_app` are imported lazily, so importing `comfydesk.app` does not pull in
every widget.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow

__all__ = ["create_main_window", "run_app"]


def create_main_window(server: str | None = None, data_dir: Path | None = None) -> QMainWindow:
    """The main window with its app state built (see `comfydesk.app.main.create_main_window`)."""
    from comfydesk.app.main import create_main_window as create

    return create(server=server, data_dir=data_dir)


def run_app(server: str | None = None, data_dir: Path | None = None) -> int:
    """Open the window and run until it closes."""
    from comfydesk.app.main import run

    return run(server=server, data_dir=data_dir)
