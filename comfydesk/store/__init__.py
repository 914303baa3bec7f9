"""Persistence on platform dirs: settings and profiles, secrets, history, image cache (no Qt).

The names below are loaded when first used (PEP 562): the window's first frame reads its settings through
`comfydesk.store.settings` without importing the journal, the secret store and the writer thread's asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from comfydesk.store.atomic import atomic_write_bytes, atomic_write_json
    from comfydesk.store.paths import AppPaths, default_data_dir, resolve_paths
    from comfydesk.store.profiles import DEFAULT_LOCAL_URL, Profile, ProfileStore
    from comfydesk.store.secrets import FileSecretStore, SecretStore, keyring_works
    from comfydesk.store.settings import Settings, WorkflowPrefs
    from comfydesk.store.writer import SettingsWriter

_WHERE = {
    "DEFAULT_LOCAL_URL": "profiles",
    "AppPaths": "paths",
    "FileSecretStore": "secrets",
    "Profile": "profiles",
    "ProfileStore": "profiles",
    "SecretStore": "secrets",
    "Settings": "settings",
    "SettingsWriter": "writer",
    "WorkflowPrefs": "settings",
    "atomic_write_bytes": "atomic",
    "atomic_write_json": "atomic",
    "default_data_dir": "paths",
    "keyring_works": "secrets",
    "resolve_paths": "paths",
}

__all__ = [
    "DEFAULT_LOCAL_URL",
    "AppPaths",
    "FileSecretStore",
    "Profile",
    "ProfileStore",
    "SecretStore",
    "Settings",
    "SettingsWriter",
    "WorkflowPrefs",
    "atomic_write_bytes",
    "atomic_write_json",
    "default_data_dir",
    "keyring_works",
    "resolve_paths",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
