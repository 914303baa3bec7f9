"""Probe findings 5 (library) and 6: a damaged or hostile settings, profiles or library file is set aside or
shown as broken, never fatal, and never hides the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfydesk.store.profiles import ProfileStore
from comfydesk.store.settings import Settings, WorkflowPrefs

DEEP = "[" * 100_000 + "]" * 100_000


def _set_aside(folder: Path, name: str) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(f"{name}.corrupt-")]


def test_profiles_with_a_number_for_profiles_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text('{"profiles": 5}', encoding="utf-8")
    store = ProfileStore(path)
    assert [p.id for p in store.all()] == ["local"]
    assert store.notice is not None and "set aside as profiles.json.corrupt-" in store.notice
    kept = _set_aside(tmp_path, "profiles.json")
    assert len(kept) == 1 and kept[0].read_text("utf-8") == '{"profiles": 5}'  # the user's data is kept
    assert not path.exists()


@pytest.mark.parametrize("content", [DEEP, '{"a": ' + DEEP + "}", "{not json", "[1, 2]", "\xff\xfe garbage"])
def test_damaged_settings_are_set_aside_and_defaults_used(tmp_path: Path, content: str) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape") if content[0] != "\xff" else b"\xff\xfe x")
    settings = Settings(path)
    assert settings.notice is not None and "defaults are used" in settings.notice
    assert len(_set_aside(tmp_path, "settings.json")) == 1
    assert settings.set("last_profile", "local")  # and the app can write a fresh file
    assert json.loads(path.read_text("utf-8"))["last_profile"] == "local"


def test_a_good_settings_file_has_no_notice(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"version": 1, "last_profile": "x"}', encoding="utf-8")
    settings = Settings(path)
    assert settings.notice is None and settings.get("last_profile") == "x"
    assert _set_aside(tmp_path, "settings.json") == []


def test_mistyped_workflow_prefs_read_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps(
            {
                "workflows": {"local:a.json": {"pinned": 5, "hidden": {"x": 1}, "collapsed": "abc"}},
                "preferences": {"thumbnail_size": [1], "theme": {"a": 1}},
            }
        ),
        encoding="utf-8",
    )
    settings = Settings(path)
    prefs = settings.workflow_prefs("local:a.json")
    assert (prefs.pinned, prefs.hidden, prefs.collapsed) == ([], [], [])
    assert settings.preferences.thumbnail_size == "medium" and settings.preferences.theme == "system"
    assert WorkflowPrefs.from_json({"pinned": ["a", 5]}).pinned == ["a"]


def test_one_hostile_library_file_does_not_hide_the_others(tmp_path: Path) -> None:
    from comfydesk.app.library import _scan_local

    (tmp_path / "good.json").write_text(
        json.dumps({"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "a"}}}), encoding="utf-8"
    )
    (tmp_path / "deep.json").write_text(DEEP, encoding="utf-8")
    (tmp_path / "list.json").write_text(
        '{"1": {"class_type": "SaveImage", "inputs": {"x": ' + "[" * 950 + "]" * 950 + "}}}", encoding="utf-8"
    )
    entries = {e.name: e for e in _scan_local(tmp_path, "local", None)}
    assert set(entries) == {"good", "deep", "list"}
    assert entries["good"].error == ""
    assert "too complex to open" in entries["deep"].error
    assert "too complex to open" in entries["list"].error
