"""How one gallery tile is painted: thumbnail or placeholder, broken tile with its reason, star, run group.

Grouping by run is drawn here, from the model's `GroupRole` and `RunParityRole`: every tile of a run sits on
the same shade (two shades alternate from run to run) and the first (newest) tile of a run carries the run's
header (date, workflow, seed) in its caption; the other tiles show their size.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from comfydesk.app.gallery import GroupRole, RecordRole, RunParityRole, ThumbStateRole
from comfydesk.app.thumbnails import BROKEN, LOADING
from comfydesk.store.journal import OutputRecord

__all__ = ["TILE", "GalleryDelegate"]

TILE = 176  # the picture's box inside a tile, px
PAD = 6
CAPTION = 34  # two lines of small text under the picture
STAR = "★"
STAR_COLOR = QColor(255, 196, 0)
BROKEN_COLOR = QColor(214, 69, 65)

Index = QModelIndex | QPersistentModelIndex


class GalleryDelegate(QStyledItemDelegate):
    """See the module docstring. Tiles have one size: `cell_size()`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tile = TILE

    def cell_size(self) -> QSize:
        return QSize(self.tile + 2 * PAD, self.tile + CAPTION + 2 * PAD)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        view = self.parent()
        if isinstance(view, QListView) and view.gridSize().isValid():
            return view.gridSize()  # the whole cell: a run's shade has no gaps
        return self.cell_size()

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        record = index.data(RecordRole)
        if not isinstance(record, OutputRecord):
            return
        palette = option.palette  # type: ignore[attr-defined]
        rect: QRect = option.rect  # type: ignore[attr-defined]
        state_flags = option.state  # type: ignore[attr-defined]
        selected = bool(state_flags & QStyle.StateFlag.State_Selected)
        focused = bool(state_flags & QStyle.StateFlag.State_HasFocus)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)

        # The run's shade: the cell, edge to edge, so a run's tiles read as one band.
        base = palette.color(QPalette.ColorRole.Base)
        shade = base.darker(108) if index.data(RunParityRole) else base.lighter(104)
        if base.lightness() < 128:
            shade = base.lighter(135) if index.data(RunParityRole) else base.lighter(115)
        painter.fillRect(rect, shade)

        box = QRect(rect.x() + (rect.width() - self.tile) // 2, rect.y() + PAD, self.tile, self.tile)
        state = str(index.data(ThumbStateRole) or "")
        if state.startswith(BROKEN):
            self._paint_broken(painter, box, state.removeprefix(BROKEN), palette)
        elif state == "none":
            self._paint_kind(painter, box, record, palette)
        else:
            pixmap = index.data(Qt.ItemDataRole.DecorationRole)
            if state == LOADING or not isinstance(pixmap, QPixmap) or pixmap.isNull():
                self._paint_placeholder(painter, box, palette)
            else:
                self._paint_picture(painter, box, pixmap)

        if record.starred:
            font = QFont(painter.font())
            font.setPixelSize(20)
            painter.setFont(font)
            badge = QRect(box.right() - 26, box.top() + 2, 24, 24)
            painter.setPen(QColor(0, 0, 0, 150))
            painter.drawText(badge.translated(1, 1), Qt.AlignmentFlag.AlignCenter, STAR)
            painter.setPen(STAR_COLOR)
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, STAR)

        self._paint_caption(painter, rect, record, index.data(GroupRole), palette)

        if selected or focused:
            color = palette.color(QPalette.ColorRole.Highlight)
            pen_width = 3 if selected else 1
            painter.setPen(color if selected else palette.color(QPalette.ColorRole.Mid))
            pen = painter.pen()
            pen.setWidth(pen_width)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(QRectF(rect).adjusted(2.5, 2.5, -2.5, -2.5), 6, 6)
            if selected:
                tint = QColor(color)
                tint.setAlpha(40)
                painter.fillRect(rect.adjusted(3, 3, -3, -3), tint)
        painter.restore()

    # -- parts -------------------------------------------------------------------------------------
    def _paint_picture(self, painter: QPainter, box: QRect, pixmap: QPixmap) -> None:
        size = pixmap.size()
        if size.width() > box.width() or size.height() > box.height():  # never blown up, only fitted
            size = size.scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRect(0, 0, size.width(), size.height())
        target.moveCenter(box.center())
        painter.drawPixmap(target, pixmap)

    def _paint_placeholder(self, painter: QPainter, box: QRect, palette: QPalette) -> None:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(palette.color(QPalette.ColorRole.Button))
        painter.drawRoundedRect(QRectF(box).adjusted(8, 8, -8, -8), 8, 8)
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, "Loading…")

    def _paint_broken(self, painter: QPainter, box: QRect, reason: str, palette: QPalette) -> None:
        inner = QRectF(box).adjusted(8, 8, -8, -8)
        pen = painter.pen()
        pen.setColor(BROKEN_COLOR)
        pen.setWidth(2)
        pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(inner, 8, 8)
        font = QFont(painter.font())
        font.setPixelSize(28)
        painter.setFont(font)
        painter.setPen(BROKEN_COLOR)
        painter.drawText(
            inner.adjusted(0, 10, 0, 0), Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, "⚠"
        )
        small = QFont(painter.font())
        small.setPixelSize(11)
        painter.setFont(small)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        text_box = inner.adjusted(10, 50, -10, -8).toRect()
        metrics = QFontMetrics(small)
        text = f"Cannot show: {reason}"
        lines = max(1, text_box.height() // metrics.lineSpacing())
        painter.drawText(
            text_box,
            Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
            _fit(metrics, text, text_box.width(), lines),
        )

    def _paint_kind(self, painter: QPainter, box: QRect, record: OutputRecord, palette: QPalette) -> None:
        inner = QRectF(box).adjusted(8, 8, -8, -8)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
        painter.drawRoundedRect(inner, 8, 8)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        small = QFont(painter.font())
        small.setPixelSize(11)
        painter.setFont(small)
        text = record.text if record.text else f"{record.kind} ({record.mime or 'file'})"
        metrics = QFontMetrics(small)
        area = inner.adjusted(8, 8, -8, -8).toRect()
        painter.drawText(
            area,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
            _fit(metrics, text, area.width(), max(1, area.height() // metrics.lineSpacing())),
        )

    def _paint_caption(
        self, painter: QPainter, rect: QRect, record: OutputRecord, header: object, palette: QPalette
    ) -> None:
        area = QRect(
            rect.x() + (rect.width() - self.tile) // 2, rect.y() + PAD + self.tile + 1, self.tile, CAPTION - 2
        )
        small = QFont(painter.font())
        small.setPixelSize(11)
        metrics = QFontMetrics(small)
        line = metrics.lineSpacing()
        if isinstance(header, str):
            when, _sep, rest = header.partition(" · ")
            bold = QFont(small)
            bold.setBold(True)
            painter.setFont(bold)
            painter.setPen(palette.color(QPalette.ColorRole.Text))
            first = QRect(area.x(), area.y(), area.width(), line)
            painter.drawText(
                first,
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                QFontMetrics(bold).elidedText(rest or when, Qt.TextElideMode.ElideRight, area.width()),
            )
            painter.setFont(small)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            second = QRect(area.x(), area.y() + line, area.width(), line)
            painter.drawText(
                second,
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                metrics.elidedText(when, Qt.TextElideMode.ElideRight, area.width()),
            )
        else:
            painter.setFont(small)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            dims = f"{record.width} × {record.height}" if record.width and record.height else record.kind
            first = QRect(area.x(), area.y(), area.width(), line)
            painter.drawText(first, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, dims)


def _fit(metrics: QFontMetrics, text: str, width: int, lines: int) -> str:
    """`text` cut to about `lines` wrapped lines of `width`, with an ellipsis when cut."""
    budget = max(8, (width // max(1, metrics.averageCharWidth())) * lines)
    text = " ".join(text.split())
    return text if len(text) <= budget else text[: budget - 1].rstrip() + "…"
