"""The gallery's filter bar (`galleryFilter`): workflow, server, date range, status, starred, text search.

It only turns what the user picked into an `OutputFilter` (`filter_changed`); the model re-queries the
journal. The workflow and server menus are filled from the model's facets. Typing in the search box waits for
a short pause before it filters, so a word typed is one query, not one per letter.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QDate, QDateTime, QTime, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QToolButton,
    QWidget,
)

from comfydesk.store.journal import OutputFilter

__all__ = ["CUSTOM_RANGE", "DATE_RANGES", "STATUSES", "GalleryFilterBar", "custom_range"]

ANY = ""
SEARCH_DELAY_MS = 250
CUSTOM_RANGE = "Custom range…"
DATE_RANGES = ("Any time", "Today", "Yesterday", "Last 7 days", "Last 30 days", CUSTOM_RANGE)
STATUSES = (
    ("Any status", ANY),
    ("Completed", "completed"),
    ("Failed", "failed"),
    ("Cancelled", "cancelled"),
    ("Imported", "imported"),
    ("Running", "running"),
)


def date_range(choice: str, now: float | None = None) -> tuple[float | None, float | None]:
    """(since, until) in epoch seconds for one of DATE_RANGES, in local time."""
    stamp = QDateTime.fromSecsSinceEpoch(int(now if now is not None else time.time()))
    midnight = QDateTime(stamp.date(), QTime(0, 0)).toSecsSinceEpoch()
    day = 86_400
    if choice == "Today":
        return float(midnight), None
    if choice == "Yesterday":
        yesterday = QDateTime(stamp.date().addDays(-1), QTime(0, 0)).toSecsSinceEpoch()
        return float(yesterday), float(midnight)
    if choice == "Last 7 days":
        return float(midnight - 6 * day), None
    if choice == "Last 30 days":
        return float(QDateTime(QDate(stamp.date()).addDays(-29), QTime(0, 0)).toSecsSinceEpoch()), None
    return None, None


def custom_range(first: QDate, last: QDate) -> tuple[float, float]:
    """(since, until) covering the whole days from `first` to `last` (either order), in local time."""
    if last < first:
        first, last = last, first
    since = QDateTime(first, QTime(0, 0)).toSecsSinceEpoch()
    until = QDateTime(last.addDays(1), QTime(0, 0)).toSecsSinceEpoch()
    return float(since), float(until)


class GalleryFilterBar(QWidget):
    """See the module docstring."""

    filter_changed = Signal(object)  # OutputFilter

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("galleryFilter")
        self.workflow = QComboBox()
        self.workflow.setObjectName("galleryWorkflow")
        self.workflow.setAccessibleName("Workflow")
        self.workflow.setToolTip("Show the outputs of one workflow")
        self.server = QComboBox()
        self.server.setObjectName("galleryServer")
        self.server.setAccessibleName("Server")
        self.server.setToolTip("Show the outputs of one server")
        self.dates = QComboBox()
        self.dates.setObjectName("galleryDates")
        self.dates.setAccessibleName("Date range")
        self.dates.addItems(DATE_RANGES)
        today = QDate.currentDate()
        self.first_day = QDateEdit(today.addDays(-6))
        self.first_day.setObjectName("galleryFirstDay")
        self.first_day.setAccessibleName("From")
        self.last_day = QDateEdit(today)
        self.last_day.setObjectName("galleryLastDay")
        self.last_day.setAccessibleName("To")
        for edit in (self.first_day, self.last_day):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
        self.custom = QWidget()
        custom = QHBoxLayout(self.custom)
        custom.setContentsMargins(0, 0, 0, 0)
        custom.addWidget(QLabel("From"))
        custom.addWidget(self.first_day, 1)
        custom.addWidget(QLabel("to"))
        custom.addWidget(self.last_day, 1)
        self.custom.setVisible(False)
        self.status = QComboBox()
        self.status.setObjectName("galleryStatus")
        self.status.setAccessibleName("Run status")
        for label, value in STATUSES:
            self.status.addItem(label, value)
        self.starred = QToolButton()
        self.starred.setObjectName("galleryStarred")
        self.starred.setText("★")
        self.starred.setCheckable(True)
        self.starred.setToolTip("Only starred outputs")
        self.starred.setAccessibleName("Only starred")
        self.search = QLineEdit()
        self.search.setObjectName("gallerySearch")
        self.search.setPlaceholderText("Search prompts…")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search prompts")
        self.set_facets({})

        # Menus two by two, so the dock can be narrow: the search and the star, then the four menus.
        layout = QGridLayout(self)
        layout.setContentsMargins(4, 4, 4, 2)
        layout.setSpacing(4)
        top = QHBoxLayout()
        top.setSpacing(4)
        top.addWidget(self.search, 1)
        top.addWidget(self.starred)
        layout.addLayout(top, 0, 0, 1, 2)
        for n, widget in enumerate((self.workflow, self.server, self.dates, self.status)):
            widget.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            widget.setMinimumContentsLength(4)
            layout.addWidget(widget, 1 + n // 2, n % 2)
        layout.addWidget(self.custom, 3, 0, 1, 2)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SEARCH_DELAY_MS)
        self._debounce.timeout.connect(self._emit)
        self.search.textChanged.connect(lambda _t: self._debounce.start())
        self.search.returnPressed.connect(self._emit)
        for combo in (self.workflow, self.server, self.dates, self.status):
            combo.currentIndexChanged.connect(lambda _i: self._emit())
        self.starred.toggled.connect(lambda _on: self._emit())
        self.dates.currentTextChanged.connect(lambda text: self.custom.setVisible(text == CUSTOM_RANGE))
        for edit in (self.first_day, self.last_day):
            edit.dateChanged.connect(lambda _d: self._emit())
        self._last = OutputFilter()

    def set_facets(self, facets: object) -> None:
        """Fill the workflow and server menus, keeping what is picked when it is still there."""
        values = facets if isinstance(facets, dict) else {}
        for combo, key, everything in (
            (self.workflow, "workflow", "All workflows"),
            (self.server, "server", "All servers"),
        ):
            picked = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(everything, ANY)
            for name in values.get(key, []):
                combo.addItem(name or "(untitled)", name)
            found = combo.findData(picked) if picked else 0
            combo.setCurrentIndex(max(0, found))
            combo.blockSignals(False)
            if picked and found < 0:  # what was picked is gone: the filter changes with it
                self._emit()

    def current_filter(self) -> OutputFilter:
        since: float | None
        until: float | None
        if self.dates.currentText() == CUSTOM_RANGE:
            since, until = custom_range(self.first_day.date(), self.last_day.date())
        else:
            since, until = date_range(self.dates.currentText())
        workflow = self.workflow.currentData()
        server = self.server.currentData()
        status = self.status.currentData()
        return OutputFilter(
            workflow=workflow if self.workflow.currentIndex() > 0 else None,
            server=server if server else None,
            since=since,
            until=until,
            status=status if status else None,
            starred=True if self.starred.isChecked() else None,
            text=self.search.text().strip(),
        )

    def _emit(self) -> None:
        self._debounce.stop()
        flt = self.current_filter()
        if flt != self._last:
            self._last = flt
            self.filter_changed.emit(flt)
