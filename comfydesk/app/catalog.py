"""The node catalog of the connected server, as app state."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from comfydesk.app.tasks import TaskRunner
from comfydesk.backends.base import Backend
from comfydesk.core.nodes import NodeCatalog

__all__ = ["CatalogModel"]


class CatalogModel(QObject):
    """The node definitions of the connected server (None until they arrive)."""

    catalog_changed = Signal(object)  # NodeCatalog | None

    def __init__(self, tasks: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._catalog: NodeCatalog | None = None

    @property
    def catalog(self) -> NodeCatalog | None:
        return self._catalog

    def set_catalog(self, catalog: NodeCatalog | None) -> None:
        if catalog is not self._catalog:
            self._catalog = catalog
            self.catalog_changed.emit(catalog)

    def load_from(self, backend: Backend | None, *, refresh: bool = False) -> None:
        """Read the catalog of `backend` in the background (keeps the old one when `backend` is None)."""
        if backend is not None:
            self._tasks.start(self._load(backend, refresh), what="Reading the node definitions")

    async def _load(self, backend: Backend, refresh: bool) -> None:
        self.set_catalog(await backend.node_catalog(refresh=refresh))
