"""GalleryModel: every output in the journal as a list model, newest first, paged in as the view scrolls.

One row per `OutputRecord`. Pages of `page_size` come from the JournalModel (its worker thread, awaited on the
qasync loop) when the view asks `fetchMore`; nothing touches the database on the UI thread. Outputs the
journal announces (`outputs_added`) are inserted at the top without a reset, so a view keeps its place;
removals and changes (a star) arrive the same way. `set_filter` re-queries the journal and swaps the rows in
one reset once the first page is there (no blank grid meanwhile).

Grouping by run is a role, not rows: `GroupRole` gives the header of a run's group (date, workflow, seed) on
the first (newest) tile of each run in the current order and None on the others, and `RunParityRole` says
which of two alternating shades a run's tiles share; the delegate draws both. So the model keeps one row per
output (the contract of the `gallery` view), and grouping follows any filter for free.

Thumbnails come from a `ThumbnailCache`: asking `DecorationRole` of a row is what requests one, so only
painted rows cost work. Until it is there the role answers the placeholder and `ThumbStateRole` "loading";
a file that cannot be shown answers "broken: <reason>"; outputs with no picture (text, audio, video)
answer "none".
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QPixmap

from comfydesk.app.gallery_records import group_header, has_picture, matches, newest_first, thumb_key
from comfydesk.app.tasks import TaskRunner
from comfydesk.app.thumbnails import BROKEN, LOADING, READY, ThumbnailCache
from comfydesk.store.journal import OutputFilter, OutputRecord

__all__ = [
    "NO_PICTURE",
    "GalleryModel",
    "GroupRole",
    "RecordRole",
    "RunParityRole",
    "ThumbStateRole",
    "has_picture",
    "matches",
]

RecordRole = Qt.ItemDataRole.UserRole + 1
ThumbStateRole = Qt.ItemDataRole.UserRole + 2
GroupRole = Qt.ItemDataRole.UserRole + 3
RunParityRole = Qt.ItemDataRole.UserRole + 4
NO_PICTURE = "none"
PAGE_SIZE = 200
PIXMAPS_KEPT = 300  # QPixmaps made from cached QImages: a few screens of tiles
_FLUSH_MS = 16  # thumbnails that arrive within one frame are announced together

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()


class JournalSource(Protocol):
    """What the gallery needs of `comfydesk.app.journal.JournalModel`."""

    outputs_added: Any
    outputs_removed: Any
    outputs_changed: Any
    facets_changed: Any

    async def outputs(self, flt: OutputFilter, limit: int, offset: int) -> list[OutputRecord]: ...
    async def count(self, flt: OutputFilter) -> int: ...
    async def facets(self) -> dict[str, list[str]]: ...


class GalleryModel(QAbstractListModel):
    """See the module docstring. Signals: `loading_changed(bool)`, `total_changed(int)`,
    `facets_changed(dict)`, `filter_changed(OutputFilter)`."""

    loading_changed = Signal(bool)
    total_changed = Signal(int)
    facets_changed = Signal(object)
    filter_changed = Signal(object)

    def __init__(
        self,
        journal: JournalSource,
        thumbnails: ThumbnailCache,
        tasks: TaskRunner,
        *,
        page_size: int = PAGE_SIZE,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.journal = journal
        self.thumbnails = thumbnails
        self.tasks = tasks
        self.page_size = page_size
        self._rows: list[OutputRecord] = []
        self._ids: set[int] = set()
        self._row_of: dict[int, int] | None = None  # id -> row, rebuilt lazily after inserts/removals
        self._by_key: dict[str, set[int]] = {}  # thumbnail key -> output ids showing it
        self._filter = OutputFilter()
        self._total: int | None = None  # outputs matching the filter in the journal; None before a count
        self._generation = 0  # bumped by every filter change: answers for an older filter are dropped
        self._fetching = False
        self._early: list[OutputRecord] = []  # announced while the first page was on its way
        self._ahead: tuple[tuple[int, int, int], list[OutputRecord]] | None = None  # the next page, read
        self._reading: tuple[int, int, int] | None = None  # the key of the page being read ahead
        self._waiting = False  # fetchMore is waiting for that page
        self._changes = 0  # bumped by every insert or removal outside paging
        self._facets: dict[str, list[str]] = {"workflow": [], "server": []}
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._placeholder = QPixmap()
        self._changed_keys: set[str] = set()
        self._flush = QTimer(self)
        self._flush.setSingleShot(True)
        self._flush.setInterval(_FLUSH_MS)
        self._flush.timeout.connect(self._flush_thumbnails)
        thumbnails.thumbnail_ready.connect(self._on_thumbnail)
        journal.outputs_added.connect(self._on_added)
        journal.outputs_removed.connect(self._on_removed)
        journal.outputs_changed.connect(self._on_changed)
        journal.facets_changed.connect(self._on_facets)

    # -- state -------------------------------------------------------------------------------------
    @property
    def filter(self) -> OutputFilter:
        return self._filter

    @property
    def total(self) -> int | None:
        """Outputs matching the filter in the journal (None until counted)."""
        return self._total

    @property
    def loading(self) -> bool:
        return self._fetching

    @property
    def facets(self) -> dict[str, list[str]]:
        return self._facets

    def records(self) -> list[OutputRecord]:
        """The loaded rows, newest first."""
        return list(self._rows)

    def record(self, row: int) -> OutputRecord | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, output_id: int) -> int | None:
        if self._row_of is None:
            self._row_of = {r.id: i for i, r in enumerate(self._rows)}
        return self._row_of.get(output_id)

    def set_placeholder(self, pixmap: QPixmap) -> None:
        """What DecorationRole answers while a thumbnail loads (the view sets one sized for its tiles)."""
        self._placeholder = pixmap

    # -- Qt model ----------------------------------------------------------------------------------
    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        record = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return record.workflow_name
        if role == RecordRole:
            return record
        if role == Qt.ItemDataRole.DecorationRole:
            return self._pixmap(record)
        if role == ThumbStateRole:
            return self._state(record)
        if role == GroupRole:
            row = index.row()
            if row == 0 or self._rows[row - 1].run_id != record.run_id:
                return group_header(record)
            return None
        if role == RunParityRole:
            return record.run_id % 2
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(record)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{record.workflow_name}, {group_header(record)}"
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = super().flags(index)
        if (
            index.isValid()
            and 0 <= index.row() < len(self._rows)
            and self._rows[index.row()].path is not None
        ):
            return base | Qt.ItemFlag.ItemIsDragEnabled
        return base

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        """Dragging tiles out hands other applications the stored files (no copy is made)."""
        mime = QMimeData()
        paths = [
            r.path for r in (self._rows[i.row()] for i in indexes if 0 <= i.row() < len(self._rows)) if r.path
        ]
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
        return mime

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def canFetchMore(self, parent: Index = _ROOT) -> bool:
        if parent.isValid() or self._fetching:
            return False
        return self._total is None or len(self._rows) < self._total

    def fetchMore(self, parent: Index = _ROOT) -> None:
        if not self.canFetchMore(parent):
            return
        key = self._ahead_key()
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == key:  # read ahead already: in at once
            self._add_page(ahead[1], None)
            self._prefetch()
            return
        if self._reading == key:  # being read ahead: it goes in when it lands
            self._waiting = True
            self._set_fetching(True)
            return
        if self._total is None:  # the first page: the filter menus want the facets too
            self.load_facets()
        self._set_fetching(True)
        self.tasks.start(
            self._fetch_page(self._generation), what="Loading the gallery", on_error=self._failed
        )

    # -- filters -----------------------------------------------------------------------------------
    def set_filter(self, flt: OutputFilter) -> None:
        """Show the outputs matching `flt`: the journal is asked again; the rows are swapped in one reset."""
        if flt == self._filter and self._total is not None:
            return
        self._filter = flt
        self._generation += 1
        self._waiting = False
        self.thumbnails.cancel_pending()
        self.filter_changed.emit(flt)
        self._set_fetching(True)
        self.tasks.start(self._reload(self._generation), what="Filtering the gallery", on_error=self._failed)

    def reload(self) -> None:
        """Ask the journal again with the same filter (after an import, say)."""
        self._total = None
        self._generation += 1
        self._waiting = False
        self._set_fetching(True)
        self.tasks.start(self._reload(self._generation), what="Loading the gallery", on_error=self._failed)

    def load_facets(self) -> None:
        self.tasks.start(self._load_facets(), what="Loading the gallery filters")

    async def _load_facets(self) -> None:
        self._on_facets(await self.journal.facets())

    async def _reload(self, generation: int) -> None:
        flt = self._filter
        total = await self.journal.count(flt)
        page = await self.journal.outputs(flt, self.page_size, 0)
        if generation != self._generation:
            return
        self.beginResetModel()
        self._rows = []
        self._ids = set()
        self._by_key = {}
        self._row_of = None
        self._append(page)
        self.endResetModel()
        self._set_total(max(total, len(self._rows)))
        self._set_fetching(False)
        self._take_early()
        self._prefetch()

    async def _fetch_page(self, generation: int) -> None:
        flt = self._filter
        first = self._total is None
        total = await self.journal.count(flt) if first else None
        page = await self.journal.outputs(flt, self.page_size, len(self._rows))
        if generation != self._generation:
            return
        self._add_page(page, total)
        self._set_fetching(False)
        self._take_early()
        self._prefetch()

    def _add_page(self, page: list[OutputRecord], total: int | None) -> None:
        fresh = [r for r in page if r.id not in self._ids]
        if fresh:
            start = len(self._rows)
            self.beginInsertRows(_ROOT, start, start + len(fresh) - 1)
            self._append(fresh)
            self.endInsertRows()
        if total is not None:
            self._set_total(max(total, len(self._rows)))
        elif len(page) < self.page_size:  # the journal has no more than this: stop asking
            self._set_total(len(self._rows))

    # Reading ahead: once a page is in, the next one is asked for, so scrolling to it costs no round trip.
    # It is only used if nothing changed meanwhile (same filter, no insert or removal, same row count).
    def _ahead_key(self) -> tuple[int, int, int]:
        return (self._generation, self._changes, len(self._rows))

    def _prefetch(self) -> None:
        if self._reading is not None or self._fetching or self._total is None:
            return
        if len(self._rows) >= self._total:
            return
        key = self._ahead_key()
        self._reading = key
        self.tasks.start(self._read_ahead(key), what="Loading the gallery", on_error=self._ahead_failed)

    async def _read_ahead(self, key: tuple[int, int, int]) -> None:
        page = await self.journal.outputs(self._filter, self.page_size, key[2])
        self._reading = None
        waiting, self._waiting = self._waiting, False
        if key != self._ahead_key():  # something changed meanwhile: this page may not follow on
            if waiting:
                self.tasks.start(
                    self._fetch_page(self._generation), what="Loading the gallery", on_error=self._failed
                )
            else:
                self._prefetch()
        elif waiting:
            self._add_page(page, None)
            self._set_fetching(False)
            self._take_early()
            self._prefetch()
        else:
            self._ahead = (key, page)

    def _ahead_failed(self, exc: BaseException) -> None:
        self._reading = None
        if self._waiting:  # the view asked for it: say why it did not come
            self._waiting = False
            self._failed(exc)

    def _take_early(self) -> None:
        early, self._early = self._early, []
        if early:
            self._on_added(early)

    def _failed(self, exc: BaseException) -> None:
        self._set_fetching(False)
        self.tasks.errors.report_exception(exc, what="Loading the gallery")

    def _append(self, records: Sequence[OutputRecord]) -> None:
        for record in records:
            self._rows.append(record)
            self._ids.add(record.id)
            self._by_key.setdefault(thumb_key(record), set()).add(record.id)
        self._row_of = None

    def _set_total(self, total: int) -> None:
        if total != self._total:
            self._total = total
            self.total_changed.emit(total)

    def _set_fetching(self, fetching: bool) -> None:
        if fetching != self._fetching:
            self._fetching = fetching
            self.loading_changed.emit(fetching)

    # -- live changes from the journal ------------------------------------------------------------
    def _on_added(self, records: object) -> None:
        if not isinstance(records, list) or not records:
            return
        if self._fetching:  # a page or a new filter is on its way: once it is in, they go in
            self._early.extend(r for r in records if isinstance(r, OutputRecord))
            return
        if self._total is None:  # nothing loaded yet: the first page will have them
            return
        verdicts = [matches(self._filter, r) for r in records]
        if any(v is None for v in verdicts):  # only the journal can judge a text search
            self.tasks.start(self._fetch_top(self._generation, len(records)), what="Updating the gallery")
            return
        self._insert_top([r for r, ok in zip(records, verdicts, strict=True) if ok])

    async def _fetch_top(self, generation: int, count: int) -> None:
        page = await self.journal.outputs(self._filter, count + 8, 0)
        if generation == self._generation:
            newest = self._rows[0].created_at if self._rows else float("-inf")
            self._insert_top([r for r in reversed(page) if r.created_at >= newest])

    def _insert_top(self, records: Sequence[OutputRecord]) -> None:
        """Insert `records` where they belong in the newest-first order: new outputs at the top, in one
        block; restored (undone) ones back in their place, or left for paging when below the loaded rows."""
        fresh = [r for r in records if r.id not in self._ids]
        if not fresh:
            return
        fresh.sort(key=newest_first)
        if not self._rows or newest_first(fresh[-1]) < newest_first(self._rows[0]):
            self._insert_block(0, fresh)
        else:
            for record in fresh:
                row = bisect.bisect_left(self._rows, newest_first(record), key=newest_first)
                if row < len(self._rows) or self._total is None or len(self._rows) >= self._total:
                    self._insert_block(row, [record])
        self._set_total((self._total or 0) + len(fresh))

    def _insert_block(self, row: int, records: list[OutputRecord]) -> None:
        self._changes += 1
        self.beginInsertRows(_ROOT, row, row + len(records) - 1)
        self._rows[row:row] = records
        for record in records:
            self._ids.add(record.id)
            self._by_key.setdefault(thumb_key(record), set()).add(record.id)
        self._row_of = None
        self.endInsertRows()
        after = row + len(records)
        if after < len(self._rows):  # the row below may no longer start its run's group
            below = self.index(after, 0)
            self.dataChanged.emit(below, below, [GroupRole])

    def _on_removed(self, ids: object) -> None:
        if not isinstance(ids, list):
            return
        rows = sorted((r for i in ids if (r := self.row_of(int(i))) is not None), reverse=True)
        self._changes += 1
        for row in rows:  # bottom up, so the rows above keep their numbers
            record = self._rows[row]
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._rows[row]
            self._ids.discard(record.id)
            owners = self._by_key.get(thumb_key(record))
            if owners is not None:
                owners.discard(record.id)
            self._row_of = None
            self.endRemoveRows()
            if row < len(self._rows):
                below = self.index(row, 0)
                self.dataChanged.emit(below, below, [GroupRole])
        if rows and self._total is not None:
            self._set_total(max(len(self._rows), self._total - len(rows)))

    def _on_changed(self, records: object) -> None:
        if not isinstance(records, list):
            return
        gone: list[int] = []
        for record in records:
            if not isinstance(record, OutputRecord):
                continue
            row = self.row_of(record.id)
            if row is None:
                continue
            if matches(self._filter, record) is False:  # e.g. unstarred while showing starred ones
                gone.append(record.id)
                continue
            self._rows[row] = record
            index = self.index(row, 0)
            self.dataChanged.emit(index, index)
        if gone:
            self._on_removed(gone)

    def _on_facets(self, facets: object) -> None:
        if isinstance(facets, dict) and facets != self._facets:
            self._facets = {k: list(v) for k, v in facets.items()}
            self.facets_changed.emit(self._facets)

    # -- thumbnails --------------------------------------------------------------------------------
    def _state(self, record: OutputRecord) -> str:
        if not has_picture(record):
            return NO_PICTURE
        key = thumb_key(record)
        if key in self._pixmaps:  # shown already, even if the cache's memory let its QImage go
            return READY
        return self.thumbnails.request(key, record.path) or LOADING

    def _pixmap(self, record: OutputRecord) -> QPixmap:
        if not has_picture(record):
            return self._placeholder
        key = thumb_key(record)
        pixmap = self._pixmaps.get(key)
        if pixmap is not None:
            self._pixmaps.move_to_end(key)
            return pixmap
        if self.thumbnails.request(key, record.path) != READY:
            return self._placeholder
        image = self.thumbnails.image(key)
        if image is None:
            return self._placeholder
        pixmap = QPixmap.fromImage(image)
        self._pixmaps[key] = pixmap
        while len(self._pixmaps) > PIXMAPS_KEPT:
            self._pixmaps.popitem(last=False)
        return pixmap

    def _on_thumbnail(self, key: str) -> None:
        if key in self._by_key:
            self._changed_keys.add(key)
            if not self._flush.isActive():
                self._flush.start()

    def _flush_thumbnails(self) -> None:
        keys, self._changed_keys = self._changed_keys, set()
        roles = [Qt.ItemDataRole.DecorationRole, ThumbStateRole]
        for key in keys:
            for output_id in self._by_key.get(key, ()):
                row = self.row_of(output_id)
                if row is not None:
                    index = self.index(row, 0)
                    self.dataChanged.emit(index, index, roles)

    def _tooltip(self, record: OutputRecord) -> str:
        lines = [
            record.workflow_name or "(untitled)",
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created_at)),
        ]
        if record.width and record.height:
            lines.append(f"{record.width} × {record.height} · {record.kind}")
        if record.seed is not None:
            lines.append(f"seed {record.seed}")
        if record.server:
            lines.append(record.server)
        state = self._state(record)
        if state.startswith(BROKEN):
            lines.append(f"Cannot show: {state.removeprefix(BROKEN)}")
        return "\n".join(lines)
