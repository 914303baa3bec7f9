"""Connection profiles: which server to talk to and how to sign in (secrets live in a SecretStore)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from comfydesk.store.atomic import atomic_write_json, read_json_or_set_aside

__all__ = [
    "DEFAULT_LOCAL_URL",
    "MANAGED_KIND",
    "AuthKind",
    "Profile",
    "ProfileKind",
    "ProfileStore",
    "profile_for_url",
]

ProfileKind = Literal["comfyui-local", "comfyui-remote", "v1-gateway", "comfyui-managed"]
AuthKind = Literal["none", "token", "basic"]
PROFILE_KINDS: tuple[ProfileKind, ...] = ("comfyui-local", "comfyui-remote", "v1-gateway", "comfyui-managed")
MANAGED_KIND: ProfileKind = "comfyui-managed"
"""A ComfyUI installed on this computer that comfydesk starts and stops (comfydesk.app.local_server)."""
AUTH_KINDS: tuple[AuthKind, ...] = ("none", "token", "basic")
DEFAULT_LOCAL_URL = "http://127.0.0.1:8188"


@dataclass(frozen=True, slots=True)
class Profile:
    """One server the user connects to. The token or password is NOT here: see `secret_key`."""

    id: str
    name: str
    kind: ProfileKind = "comfyui-local"
    url: str = DEFAULT_LOCAL_URL
    auth: AuthKind = "none"
    username: str = ""
    ca_file: str = ""
    verify_tls: bool = True
    # A managed ComfyUI (kind "comfyui-managed"): its folder (with main.py), the Python that runs it (empty:
    # detected from the folder) and extra command-line arguments; `url` keeps the port it was last given.
    comfyui_dir: str = ""
    python: str = ""
    extra_args: str = ""

    @classmethod
    def new(cls, name: str, **fields: Any) -> Profile:
        import uuid  # here: the window's start reads profiles before its frame, and makes none

        return cls(id=uuid.uuid4().hex[:12], name=name, **fields)

    @property
    def secret_key(self) -> str:
        """The key of this profile's token/password in the secret store."""
        return f"profile:{self.id}"

    @property
    def host_port(self) -> str:
        parts = urlsplit(self.url)
        return parts.netloc or self.url

    def with_changes(self, **fields: Any) -> Profile:
        return replace(self, **fields)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Any) -> Profile | None:
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
            return None
        kind = doc.get("kind")
        auth = doc.get("auth")
        return cls(
            id=doc["id"],
            name=str(doc.get("name") or doc.get("url") or "Server"),
            kind=kind if kind in PROFILE_KINDS else "comfyui-local",
            url=str(doc.get("url") or DEFAULT_LOCAL_URL),
            auth=auth if auth in AUTH_KINDS else "none",
            username=str(doc.get("username") or ""),
            ca_file=str(doc.get("ca_file") or ""),
            verify_tls=bool(doc.get("verify_tls", True)),
            comfyui_dir=str(doc.get("comfyui_dir") or ""),
            python=str(doc.get("python") or ""),
            extra_args=str(doc.get("extra_args") or ""),
        )


def _valid_profiles(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("profiles", []), list)


def _local_default() -> Profile:
    return Profile(id="local", name="Local ComfyUI", kind="comfyui-local", url=DEFAULT_LOCAL_URL)


class ProfileStore:
    """The profiles file (`profiles.json`); always holds at least the local default profile."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # A damaged file is set aside (renamed, `notice` says so) and the local default used: never fatal.
        doc, self.notice = read_json_or_set_aside(path, {}, valid=_valid_profiles)
        items = doc.get("profiles") if isinstance(doc, dict) else None
        loaded = [p for p in (Profile.from_json(d) for d in (items or [])) if p is not None]
        self._profiles: dict[str, Profile] = {p.id: p for p in loaded} or {"local": _local_default()}

    def all(self) -> list[Profile]:
        return list(self._profiles.values())

    def get(self, profile_id: str | None) -> Profile | None:
        return self._profiles.get(profile_id) if profile_id else None

    def first(self) -> Profile:
        return next(iter(self._profiles.values()))

    def starting(self, server: str | None, last_profile: str | None) -> Profile:
        """The profile a window connects to first: the address `server` (`--server`: its saved profile, else
        one made for it), else the profile `last_profile` (the settings' last used one), else the first."""
        if server:
            return self.find_by_url(server) or profile_for_url(server)
        return self.get(last_profile) or self.first()

    def find_by_url(self, url: str) -> Profile | None:
        wanted = url.rstrip("/")
        return next((p for p in self._profiles.values() if p.url.rstrip("/") == wanted), None)

    def save(self, profile: Profile) -> None:
        """Add or replace a profile and write the file."""
        self._profiles[profile.id] = profile
        self._write()

    def delete(self, profile_id: str) -> None:
        if self._profiles.pop(profile_id, None) is not None:
            if not self._profiles:
                self._profiles["local"] = _local_default()
            self._write()

    def _write(self) -> None:
        atomic_write_json(self.path, {"profiles": [p.to_json() for p in self._profiles.values()]})


def profile_for_url(url: str) -> Profile:
    """A profile for an address given on the command line (not saved)."""
    if "://" not in url:
        url = f"http://{url}"
    host = (urlsplit(url).hostname or "").lower()
    local = host in ("127.0.0.1", "localhost", "::1")
    return Profile(
        id="cli",
        name=urlsplit(url).netloc or url,
        kind="comfyui-local" if local else "comfyui-remote",
        url=url,
    )
