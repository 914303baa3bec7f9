"""Helpers for the window-against-a-gateway tests: an in-memory keyring, a saved gateway profile, the spec's
"Blog Post Image" workflow, and admin calls to the gateway for checking what the window did."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import keyring
from keyring.backend import KeyringBackend

from comfydesk.store.profiles import Profile, ProfileStore

SERVICE = "comfydesk"
GATEWAY_PROFILE_ID = "team"

#: The local (API-format) workflow the spec's "Blog Post Image" is published from.
BLOG_POST_IMAGE: dict[str, Any] = {
    "text_to_image": {
        "class_type": "text_to_image",
        "inputs": {"prompt": "A beautiful landscape", "negative_prompt": "ugly, blurry"},
        "_meta": {"title": "Text to image"},
    }
}


class MemoryKeyring(KeyringBackend):
    """A working keyring that keeps secrets in a dict (never the user's real keyring)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.values.pop((service, username), None)


def memory_keyring() -> Iterator[MemoryKeyring]:
    """Body of a fixture: the memory keyring installed for the test, the previous one back afterwards."""
    old = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(old)


def save_gateway_profile(data_dir: Path, url: str, token: str, ring: MemoryKeyring) -> Profile:
    """A gateway profile saved as the dialog saves it (token in the keyring), the first in the file."""
    profile = Profile(id=GATEWAY_PROFILE_ID, name="Team gateway", kind="v1-gateway", url=url, auth="token")
    data_dir.mkdir(parents=True, exist_ok=True)
    store = ProfileStore(data_dir / "profiles.json")
    store.save(profile)
    store.delete("local")  # the window starts on the first profile
    ring.set_password(SERVICE, profile.secret_key, token)
    return profile


def admin_get(url: str, token: str, route: str) -> Any:
    resp = httpx.get(f"{url}/api/v1/comfyui{route}", headers={"Authorization": f"Bearer {token}"})
    resp.raise_for_status()
    return resp.json()["data"]


def server_workflows(url: str, token: str) -> list[dict[str, Any]]:
    workflows: list[dict[str, Any]] = admin_get(url, token, "/workflows")["workflows"]
    return workflows


def token_refused(url: str, token: str) -> bool:
    resp = httpx.get(f"{url}/api/v1/comfyui/workflows", headers={"Authorization": f"Bearer {token}"})
    return resp.status_code == 401
