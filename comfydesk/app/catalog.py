"""The node catalog of the connected server, as app state.

With a `CatalogCache`, connecting to a server shows the catalog it gave the last session at once (read off
the UI thread), while the fresh one is fetched; the fresh one then replaces it and is kept for next time.
With an `ObjectInfoPrefetch` (the window's start asks a ComfyUI on this computer for its definitions before
the app state exists), those are shown as soon as they are there, and the connection to that server takes
them instead of asking again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from comfydesk.app.tasks import TaskRunner
from comfydesk.backends.base import Backend
from comfydesk.core.nodes import NodeCatalog
from comfydesk.store.catalog_cache import CatalogCache, server_key

if TYPE_CHECKING:
    from comfydesk.backends.prefetch import ObjectInfoPrefetch

__all__ = ["CatalogModel"]

log = logging.getLogger(__name__)


class CatalogModel(QObject):
    """The node definitions of the connected server (None until they arrive)."""

    catalog_changed = Signal(object)  # NodeCatalog | None

    def __init__(
        self, tasks: TaskRunner, parent: QObject | None = None, *, cache: CatalogCache | None = None
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._cache = cache
        self._catalog: NodeCatalog | None = None
        self._server = ""  # server_key of the server being connected to ("" when not known)
        self._fresh = False  # the catalog shown came from the server itself in this session
        self._generation = 0  # bumped per server: a late cached read never replaces a newer catalog
        self._backend: Backend | None = None
        self._prefetch: ObjectInfoPrefetch | None = None  # used once, for the server it was made for
        self._saved: NodeCatalog | None = None  # the catalog last given to the cache

    @property
    def catalog(self) -> NodeCatalog | None:
        return self._catalog

    @property
    def is_cached(self) -> bool:
        """True while the catalog shown is the one kept from the last session (not yet refreshed)."""
        return self._catalog is not None and not self._fresh

    def set_catalog(self, catalog: NodeCatalog | None) -> None:
        self._fresh = True
        self._show(catalog)

    def _show(self, catalog: NodeCatalog | None) -> None:
        if catalog is not self._catalog:
            self._catalog = catalog
            self.catalog_changed.emit(catalog)

    def server_changed(self, profile: object) -> None:
        """Connecting to another server: show its cached catalog (when there is one) until the fresh one."""
        url = getattr(profile, "url", "")
        if isinstance(url, str) and self._switch_to(url) and self._cache is not None:
            self._tasks.start(self._show_cached(url, self._generation), what="Reading the saved node list")

    def use_prefetch(self, prefetch: ObjectInfoPrefetch) -> None:
        """The definitions `prefetch` is fetching (since the window's start) stand for the server's fresh
        catalog: shown by `show_cached` when they are there, and taken by the first connection to that
        server instead of asking again."""
        self._prefetch = prefetch

    def _prefetch_for(self, key: str) -> ObjectInfoPrefetch | None:
        prefetch = self._prefetch
        if prefetch is not None and server_key(prefetch.url) != key:
            return None
        return prefetch

    async def show_cached(self, url: str) -> None:
        """Show the catalog cached for `url` now (start-up, before connecting to it), or the definitions the
        start fetched from it when they came already; returns once shown, or at once when there is none."""
        if not self._switch_to(url):
            return
        prefetch = self._prefetch_for(self._server)
        fetched = prefetch.catalog() if prefetch is not None else None
        if fetched is not None:
            self._fresh_from_server(fetched)
        elif self._cache is not None:
            await self._show_cached(url, self._generation)

    def _switch_to(self, url: str) -> bool:
        """Another server from now on (True), or the one already current (False)."""
        key = server_key(url)
        if not key or key == self._server:
            return False
        self._server = key
        self._generation += 1
        self._fresh = False
        if self._prefetch is not None and server_key(self._prefetch.url) != key:
            self._prefetch = None  # made for another server
        return True

    async def _show_cached(self, url: str, generation: int) -> None:
        assert self._cache is not None
        cached = await asyncio.to_thread(self._cache.load, url)
        if cached is not None and generation == self._generation and not self._fresh:
            self._show(cached)

    def load_from(self, backend: Backend | None, *, refresh: bool = False) -> None:
        """Read the catalog of `backend` in the background (keeps the old one when `backend` is None)."""
        self._backend = backend  # the connection now current (None: lost; older reads no longer count)
        if backend is not None:
            self._tasks.start(self._load(backend, refresh), what="Reading the node definitions")

    async def _load(self, backend: Backend, refresh: bool) -> None:
        generation = self._generation
        prefetch = None if refresh else self._prefetch_for(server_key(backend.url))
        if prefetch is not None:
            self._prefetch = None  # once: a later connection (a reconnect) asks the server again
            await asyncio.to_thread(prefetch.wait)  # bounded by its own timeout
            fetched = prefetch.catalog()
            if fetched is not None:
                adopt = getattr(backend, "adopt_catalog", None)
                if callable(adopt):
                    adopt(fetched)  # the backend's own answer from now on, as if it had asked
                if generation == self._generation and backend is self._backend:
                    self._fresh_from_server(fetched)
                return
        try:
            catalog = await backend.node_catalog(refresh=refresh)
        except Exception:
            if generation != self._generation or backend is not self._backend:
                return  # that connection was replaced or lost meanwhile: its error is not news
            raise
        if generation != self._generation or backend is not self._backend:
            return  # connected elsewhere meanwhile
        self._fresh_from_server(catalog)

    def _fresh_from_server(self, catalog: NodeCatalog) -> None:
        """`catalog` came from the current server in this session: shown, and kept for next time (once)."""
        self.set_catalog(catalog)
        if self._cache is not None and self._server and catalog is not self._saved:
            self._saved = catalog
            self._tasks.start(self._save(self._server, catalog), what="Saving the node list")

    async def _save(self, url: str, catalog: NodeCatalog) -> None:
        assert self._cache is not None
        try:
            await asyncio.to_thread(self._cache.save, url, catalog)
        except OSError as exc:  # a cache: not worth a message to the user
            log.warning("could not keep the node list for next time: %s", exc)
