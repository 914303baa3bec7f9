"""Tokens and passwords: in the OS keyring, else for this session only, or (by explicit choice) a 0600 file.

Secrets are never logged and never put into exception text; errors name the key, not the value.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from comfydesk.store.atomic import atomic_write_json, read_json

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = ["FileSecretStore", "SecretBackend", "SecretStore", "keyring_works"]

log = logging.getLogger(__name__)
SERVICE = "comfydesk"


class SecretBackend(Protocol):
    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str) -> None: ...
    def delete(self, key: str) -> None: ...


def keyring_works(backend: KeyringBackend | None = None) -> bool:
    """True when the keyring backend can actually store secrets (not the failing or null backend)."""
    import keyring  # ~0.2 s with finding its backend: only once a secret is wanted, not at start-up

    kr = backend or keyring.get_keyring()
    name = f"{type(kr).__module__}.{type(kr).__name__}"
    if name in ("keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"):
        return False
    backends = getattr(kr, "backends", None)  # the chainer: works only if it chains something
    if backends is not None and not list(backends):
        return False
    try:
        return float(kr.priority) > 0
    except Exception:  # some backends raise from priority when unusable
        return False


def _keyring_error() -> type[Exception]:
    import keyring.errors

    return keyring.errors.KeyringError


class _KeyringBackend:
    def __init__(self, service: str) -> None:
        self.service = service

    def get(self, key: str) -> str | None:
        import keyring

        return keyring.get_password(self.service, key)

    def set(self, key: str, value: str) -> None:
        import keyring

        keyring.set_password(self.service, key, value)

    def delete(self, key: str) -> None:
        import keyring
        import keyring.errors

        with contextlib.suppress(keyring.errors.PasswordDeleteError):
            keyring.delete_password(self.service, key)


class _SessionBackend:
    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    def set(self, key: str, value: str) -> None:
        self._values[key] = value

    def delete(self, key: str) -> None:
        self._values.pop(key, None)


class FileSecretStore:
    """Secrets in a JSON file that only the user can read (mode 0600, created with os.open)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, str]:
        doc = read_json(self.path, {})
        return {k: v for k, v in doc.items() if isinstance(v, str)} if isinstance(doc, dict) else {}

    def _ensure_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Create it 0600 from the start, so there is no moment when others could read it.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)

    def get(self, key: str) -> str | None:
        return self._read().get(key)

    def set(self, key: str, value: str) -> None:
        self._ensure_file()
        doc = self._read()
        doc[key] = value
        atomic_write_json(self.path, doc, mode=0o600)

    def delete(self, key: str) -> None:
        doc = self._read()
        if doc.pop(key, None) is not None:
            atomic_write_json(self.path, doc, mode=0o600)


class SecretStore:
    """Where tokens live: the OS keyring when one works; otherwise this session only, or the 0600 file.

    `persistent` tells the UI whether a token saved now is still there after a restart.
    """

    def __init__(self, file_path: Path, *, use_file: bool = False, service: str = SERVICE) -> None:
        self.file_path = file_path
        self.service = service
        self._session = _SessionBackend()
        # Whether the keyring works is found out when first needed (it costs a start-up otherwise).
        self._keyring_available: bool | None = None
        self._wants_file = use_file
        self._backend_now: SecretBackend | None = None

    @property
    def keyring_available(self) -> bool:
        if self._keyring_available is None:
            self._keyring_available = keyring_works()
        return self._keyring_available

    @keyring_available.setter
    def keyring_available(self, value: bool) -> None:
        self._keyring_available = value

    @property
    def _use_file(self) -> bool:
        return self._wants_file and not self.keyring_available

    @_use_file.setter
    def _use_file(self, value: bool) -> None:
        self._wants_file = value

    @property
    def _backend(self) -> SecretBackend:
        if self._backend_now is None:
            self._backend_now = self._pick()
        return self._backend_now

    @_backend.setter
    def _backend(self, value: SecretBackend) -> None:
        self._backend_now = value

    def _pick(self) -> SecretBackend:
        if self.keyring_available:
            return _KeyringBackend(self.service)
        if self._use_file:
            return FileSecretStore(self.file_path)
        return self._session

    @property
    def persistent(self) -> bool:
        return self.keyring_available or self._use_file

    @property
    def uses_file(self) -> bool:
        return self._use_file

    @property
    def description(self) -> str:
        """One sentence for the profile dialog."""
        if self.keyring_available:
            return "Tokens are kept in the system keyring."
        if self._use_file:
            return f"Tokens are kept in {self.file_path}, readable only by you."
        return "No system keyring is available: tokens are kept for this session only."

    def use_file(self, enabled: bool) -> None:
        """Opt in (or out) of the 0600 file; only meaningful when there is no keyring."""
        if self.keyring_available or enabled == self._use_file:
            return
        old = self._backend
        self._use_file = enabled
        self._backend = self._pick()
        if enabled:  # move this session's secrets into the file
            for key, value in list(self._session._values.items()):
                self._backend.set(key, value)
            self._session._values.clear()  # the file holds them now: no stale copy to fall back to
        elif isinstance(old, FileSecretStore):
            # Back to this session only: keep what the file holds (the current values), then remove it.
            for key, value in old._read().items():
                self._session.set(key, value)
            with contextlib.suppress(OSError):
                self.file_path.unlink()

    def get(self, key: str) -> str | None:
        try:
            return self._backend.get(key)
        except _keyring_error() as exc:
            log.warning("keyring read failed for %s: %s", key, type(exc).__name__)
            return self._session.get(key)

    def set(self, key: str, value: str) -> None:
        if not value:
            self.delete(key)
            return
        try:
            self._backend.set(key, value)
        except _keyring_error() as exc:
            # The keyring said it works but refused: keep the secret for the session, say so.
            log.warning(
                "keyring write failed for %s (%s); keeping it for this session", key, type(exc).__name__
            )
            self.keyring_available = False
            self._backend = self._pick()
            self._backend.set(key, value)

    def delete(self, key: str) -> None:
        self._session.delete(key)
        try:
            self._backend.delete(key)
        except _keyring_error():
            log.warning("keyring delete failed for %s", key)
