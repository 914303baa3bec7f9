"""Store: atomic settings, profiles round trip, secrets in the keyring / session / 0600 file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from comfydesk.store import (
    FileSecretStore,
    Profile,
    ProfileStore,
    SecretStore,
    Settings,
    WorkflowPrefs,
    keyring_works,
    resolve_paths,
)
from comfydesk.store.atomic import atomic_write_bytes


class MemoryKeyring(KeyringBackend):
    priority = 10  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.values.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    old = keyring.get_keyring()
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    yield kr
    keyring.set_keyring(old)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    old = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(old)


def test_paths_under_data_dir(tmp_path: Path) -> None:
    paths = resolve_paths(tmp_path).ensure()
    assert paths.settings_file.parent == tmp_path
    assert paths.library_dir == tmp_path / "workflows"
    assert paths.library_dir.is_dir() and paths.results_dir.is_dir()


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "settings.json"
    atomic_write_bytes(target, b"old")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_settings_round_trip(tmp_path: Path) -> None:
    s = Settings(tmp_path / "settings.json")
    s.set_window_geometry(b"\x01\x02geometry")
    s.last_workflow = "local:Blog.json"
    s.update_workflow_prefs("local:Blog.json", values={"prompt": "a cat", "img": object()}, last_seed=42)
    s.update_workflow_prefs("local:Blog.json", pinned=["seed"], hidden=["cfg"])
    again = Settings(tmp_path / "settings.json")
    assert again.window_geometry() == b"\x01\x02geometry"
    assert again.last_workflow == "local:Blog.json"
    prefs = again.workflow_prefs("local:Blog.json")
    assert prefs == WorkflowPrefs(values={"prompt": "a cat"}, pinned=["seed"], hidden=["cfg"], last_seed=42)
    assert again.workflow_prefs("other") == WorkflowPrefs()


def test_settings_write_only_on_change(tmp_path: Path) -> None:
    s = Settings(tmp_path / "settings.json")
    assert s.set("x", 1) is True
    assert s.set("x", 1) is False
    with pytest.raises(TypeError):
        s.set("y", object())


def test_broken_settings_file_does_not_stop_startup(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text("{not json")
    assert Settings(tmp_path / "settings.json").last_workflow is None


def test_profiles_round_trip(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "profiles.json")
    assert [p.id for p in store.all()] == ["local"]
    remote = Profile.new(
        "Studio GPU",
        kind="comfyui-remote",
        url="https://gpu-box:8188",
        auth="basic",
        username="ann",
        ca_file="/etc/ca.pem",
        verify_tls=False,
    )
    store.save(remote)
    again = ProfileStore(tmp_path / "profiles.json")
    assert again.get(remote.id) == remote
    assert again.find_by_url("https://gpu-box:8188/") == remote
    assert "token" not in (tmp_path / "profiles.json").read_text()
    again.delete(remote.id)
    again.delete("local")
    assert [p.id for p in ProfileStore(tmp_path / "profiles.json").all()] == ["local"]


def test_secrets_in_keyring(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    store = SecretStore(tmp_path / "secrets.json")
    assert store.persistent and store.keyring_available
    store.set("profile:a", "s3cret")
    assert memory_keyring.values[("comfydesk", "profile:a")] == "s3cret"
    assert SecretStore(tmp_path / "secrets.json").get("profile:a") == "s3cret"
    store.delete("profile:a")
    assert store.get("profile:a") is None
    assert not (tmp_path / "secrets.json").exists()


def test_no_keyring_keeps_secrets_for_the_session_only(tmp_path: Path, no_keyring: None) -> None:
    assert not keyring_works()
    store = SecretStore(tmp_path / "secrets.json")
    assert not store.persistent
    assert "session only" in store.description
    store.set("profile:a", "s3cret")
    assert store.get("profile:a") == "s3cret"
    assert not (tmp_path / "secrets.json").exists()
    assert SecretStore(tmp_path / "secrets.json").get("profile:a") is None


def test_file_store_opt_in_is_0600(tmp_path: Path, no_keyring: None) -> None:
    store = SecretStore(tmp_path / "secrets.json")
    store.set("profile:a", "s3cret")
    store.use_file(True)
    assert store.persistent and store.uses_file
    mode = stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode)
    assert mode == 0o600
    assert SecretStore(tmp_path / "secrets.json", use_file=True).get("profile:a") == "s3cret"
    store.set("profile:b", "other")
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    store.use_file(False)
    assert not (tmp_path / "secrets.json").exists()


def test_file_secret_store_created_private(tmp_path: Path) -> None:
    fs = FileSecretStore(tmp_path / "sub" / "s.json")
    fs.set("k", "v")
    assert stat.S_IMODE((tmp_path / "sub" / "s.json").stat().st_mode) == 0o600
    assert fs.get("k") == "v"
    fs.delete("k")
    assert fs.get("k") is None
