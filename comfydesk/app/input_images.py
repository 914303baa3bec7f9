"""The server's input images for the form: previews of a chosen image (`/view` of the input, made into a
thumbnail off the UI thread) and refreshing the list the image fields offer (re-reading the node catalog,
whose LoadImage choices are the server's input folder)."""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from comfydesk.app.catalog import CatalogModel
from comfydesk.app.images import make_thumbnail_async
from comfydesk.app.tasks import TaskRunner
from comfydesk.backends.base import Backend
from comfydesk.core.events import OutputRef

__all__ = ["PREVIEW_SIZE", "InputImages"]

PREVIEW_SIZE = 96
#: A list refresh on focus at most this often (seconds): tabbing through a form must not hammer the server.
REFRESH_EVERY = 5.0


class InputImages(QObject):
    """Fetches input image previews and refreshes the server's image list; the form shows what it emits."""

    preview_ready = Signal(str, str, object)  # field key, image name, QImage | None (the server lacks it)

    def __init__(
        self,
        tasks: TaskRunner,
        backend: Callable[[], Backend | None],
        catalog: CatalogModel,
        parent: QObject | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._backend = backend
        self._catalog = catalog
        self._clock = clock
        self._cache: dict[str, QImage | None] = {}
        self._last_refresh: float | None = None

    def preview(self, key: str, name: str) -> None:
        """Emit `preview_ready(key, name, image)` for the server's input image `name` (cached per name)."""
        if name in self._cache:
            self.preview_ready.emit(key, name, self._cache[name])
            return
        backend = self._backend()
        if backend is not None and name:
            self._tasks.start(
                self._fetch(backend, key, name), what="Loading an image preview", on_error=lambda _e: None
            )

    def refresh_list(self, *, force: bool = False) -> bool:
        """Re-read the server's image list (at most every few seconds unless `force`); True when asked."""
        now = self._clock()
        if not force and self._last_refresh is not None and now - self._last_refresh < REFRESH_EVERY:
            return False
        backend = self._backend()
        if backend is None:
            return False
        self._last_refresh = now
        self._cache.clear()  # an upload may have replaced a file of the same name
        self._catalog.load_from(backend, refresh=True)
        return True

    async def _fetch(self, backend: Backend, key: str, name: str) -> None:
        subfolder, _, filename = name.rpartition("/")
        ref = OutputRef(node_id="", kind="images", filename=filename, subfolder=subfolder, type="input")
        try:
            data = await backend.fetch_output(ref)
            image: QImage | None = await make_thumbnail_async(data, PREVIEW_SIZE)
        except Exception:  # any failure means "no preview", never an error dialog
            image = None
        self._cache[name] = image
        self.preview_ready.emit(key, name, image)
