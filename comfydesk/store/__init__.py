"""Persistence on platform dirs: settings and profiles, secrets, history, image cache (no Qt)."""

from comfydesk.store.atomic import atomic_write_bytes, atomic_write_json
from comfydesk.store.paths import AppPaths, default_data_dir, resolve_paths
from comfydesk.store.profiles import DEFAULT_LOCAL_URL, Profile, ProfileStore
from comfydesk.store.secrets import FileSecretStore, SecretStore, keyring_works
from comfydesk.store.settings import Settings, WorkflowPrefs
from comfydesk.store.writer import SettingsWriter

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
