"""The node catalog each server gave the last session, kept on disk so the next start shows it at once.

One file per server address under `<data dir>/cache/catalogs/`; the app shows the cached catalog while the
server is asked for the fresh one, then replaces it. Both methods block (file I/O and JSON): call them off
the UI thread. A missing, damaged or outdated file is simply no cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from comfydesk.core.errors import CatalogError
from comfydesk.core.nodes import NodeCatalog, catalog_from_cache, catalog_to_cache
from comfydesk.store.atomic import atomic_write_bytes

__all__ = ["CatalogCache", "server_key"]

log = logging.getLogger(__name__)


def server_key(url: str) -> str:
    """The same server under small spelling differences (case of the host, a trailing slash)."""
    return url.strip().rstrip("/").lower()


class CatalogCache:
    """Node catalogs by server address, as JSON files in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, url: str) -> Path:
        digest = hashlib.sha256(server_key(url).encode("utf-8")).hexdigest()[:24]
        return self.folder / f"{digest}.json"

    def load(self, url: str) -> NodeCatalog | None:
        """The catalog saved for `url`, or None (never saved, unreadable, another format, another server)."""
        path = self.path_for(url)
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring the cached node list %s: %s", path, exc)
            return None
        if not isinstance(doc, dict) or doc.get("server") != server_key(url):
            return None
        try:
            return catalog_from_cache(doc.get("catalog"))
        except CatalogError as exc:
            log.warning("ignoring the cached node list %s: %s", path, exc)
            return None

    def save(self, url: str, catalog: NodeCatalog) -> Path:
        """Keep `catalog` as the one `url` gave (replacing the file atomically); returns the file."""
        path = self.path_for(url)
        doc = {"server": server_key(url), "saved": time.time(), "catalog": catalog_to_cache(catalog)}
        atomic_write_bytes(path, json.dumps(doc, separators=(",", ":")).encode("utf-8"))
        return path
