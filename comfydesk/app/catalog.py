"""The node catalog of the connected server, as app state.

With a `CatalogCache`, connecting to a server shows the catalog it gave the last session at once (read off
the UI thread), while the fresh one is fetched; the fresh one then replaces it and is kept for next time.
"""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtCore import QObject, Signal

from comfydesk.app.tasks import TaskRunner
from comfydesk.backends.base import Backend
from comfydesk.core.nodes import NodeCatalog
from comfydesk.store.catalog_cache import CatalogCache, server_key

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

    async def show_cached(self, url: str) -> None:
        """Show the catalog cached for `url` now (start-up, before connecting to it); returns once shown, or
        at once when there is none."""
        if self._switch_to(url) and self._cache is not None:
            await self._show_cached(url, self._generation)

    def _switch_to(self, url: str) -> bool:
        """Another server from now on (True), or the one already current (False)."""
        key = server_key(url)
        if not key or key == self._server:
            return False
        self._server = key
        self._generation += 1
        self._fresh = False
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
        try:
            catalog = await backend.node_catalog(refresh=refresh)
        except Exception:
            if generation != self._generation or backend is not self._backend:
                return  # that connection was replaced or lost meanwhile: its error is not news
            raise
        if generation != self._generation or backend is not self._backend:
            return  # connected elsewhere meanwhile
        self.set_catalog(catalog)
        if self._cache is not None and self._server:
            self._tasks.start(self._save(self._server, catalog), what="Saving the node list")

    async def _save(self, url: str, catalog: NodeCatalog) -> None:
        assert self._cache is not None
        try:
            await asyncio.to_thread(self._cache.save, url, catalog)
        except OSError as exc:  # a cache: not worth a message to the user
            log.warning("could not keep the node list for next time: %s", exc)
