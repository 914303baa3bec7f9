"""Probe finding 6 at the level of the app: with damaged settings and profiles files the app still starts,
the files are set aside, and the error bar says so in plain words (a real app context, offscreen Qt)."""

from __future__ import annotations

import gc
from pathlib import Path

import qasync
from pytestqt.qtbot import QtBot

from comfydesk.app.context import build_context
from tests.gui.conftest import qloop  # noqa: F401  (the qasync loop fixture of the GUI tests)


def test_the_app_starts_with_damaged_settings_and_profiles(
    qtbot: QtBot,
    qloop: qasync.QEventLoop,  # noqa: F811
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "profiles.json").write_text('{"profiles": 5}', encoding="utf-8")
    (data / "settings.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    ctx = build_context(data_dir=data)
    try:
        error = ctx.errors.error
        assert error is not None and "set aside as" in error.text
        assert sorted(p.name.split(".corrupt-")[0] for p in data.glob("*.corrupt-*")) == [
            "profiles.json",
            "settings.json",
        ]
    finally:
        ctx.close()
        qtbot.waitUntil(lambda: ctx.closed, timeout=10_000)
        gc.collect()
