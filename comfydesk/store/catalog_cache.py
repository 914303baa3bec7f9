"""The node catalog each server gave the last session, kept on disk so the next start shows it at once.

One file per server address under `<data dir>/cache/catalogs/`; the app shows the cached catalog while the
server is asked for the fresh one, then replaces it. A missing, damaged or outdated file is simply no cache.

A file is three lines of JSON: which server and when, what a list shows of each node (`NodeSummary`), then
every definition. `load_summaries` reads the first two only (about a tenth of the bytes to parse), so that
the window's start lists the nodes before the definitions are read (`load`, off the UI thread).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from comfydesk.store.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from comfydesk.core.nodes import NodeCatalog, NodeSummary

__all__ = ["FILE_FORMAT", "CatalogCache", "catalogs_dir", "server_key"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

FILE_FORMAT = 2
"""Version of the file's layout (2: three lines); any other is no cache (and is replaced on the next save)."""


def catalogs_dir(data_dir: Path) -> Path:
    """Where the node cache of the data dir `data_dir` keeps its files."""
    return data_dir / "cache" / "catalogs"


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

    def _read(self, url: str, line: int, parse: Callable[[Any], _T]) -> _T | None:
        """`parse` of the JSON on `line` (1: the summaries, 2: the definitions) of the file saved for `url`,
        or None when there is none of this layout for that server, or it is damaged (`CatalogError`)."""
        from comfydesk.core.errors import CatalogError

        path = self.path_for(url)
        try:
            lines = path.read_bytes().split(b"\n", 2)
            head = json.loads(lines[0])
            if (
                not isinstance(head, dict)
                or head.get("format") != FILE_FORMAT
                or head.get("server") != server_key(url)
                or len(lines) != 3
            ):
                return None
            return parse(json.loads(lines[line]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, CatalogError) as exc:
            log.warning("ignoring the cached node list %s: %s", path, exc)
            return None

    def load_summaries(self, url: str) -> list[NodeSummary] | None:
        """What a list shows of each node saved for `url` (not their definitions), or None as `load`."""
        from comfydesk.core.nodes import summaries_from_cache

        return self._read(url, 1, summaries_from_cache)

    def load(self, url: str) -> NodeCatalog | None:
        """The catalog saved for `url`, or None (never saved, unreadable, another format, another server)."""
        from comfydesk.core.nodes import catalog_from_cache

        return self._read(url, 2, catalog_from_cache)

    def save(self, url: str, catalog: NodeCatalog) -> Path:
        """Keep `catalog` as the one `url` gave (replacing the file atomically); returns the file."""
        from comfydesk.core.nodes import catalog_to_cache, summaries_to_cache

        path = self.path_for(url)
        head = {"format": FILE_FORMAT, "server": server_key(url), "saved": time.time()}
        # json.dumps escapes every line break inside strings: each part is one line.
        parts = (head, summaries_to_cache(catalog), catalog_to_cache(catalog))
        atomic_write_bytes(path, b"\n".join(_dumps(p) for p in parts))
        return path


def _dumps(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")
