"""ImageCanvas: one image (or two, split by a draggable divider), crisp at any zoom.

The canvas keeps a scale and the image's top-left corner in widget coordinates. The wheel and a pinch zoom
around the cursor (the image point under it stays put), a drag pans, a double click switches between fit and
100%. Up to the fit scale the image is filtered (smooth, also when a small image or a live preview is
scaled up to fill the room); zoomed in beyond both fit and 100% pixels are drawn as squares (no blur).
Only the visible part of the image is drawn, so a deep zoom into a large image stays cheap. Nothing here
loads or decodes anything.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QMouseEvent,
    QNativeGestureEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QGestureEvent, QPinchGesture, QSizePolicy, QWidget

from comfydesk.ui.theme import BACKDROP

__all__ = ["MAX_SCALE", "MIN_SCALE", "ImageCanvas"]

MIN_SCALE = 0.02
MAX_SCALE = 64.0
WHEEL_STEP = 1.0015  # per 1/8 degree: one notch (120) zooms by about 20 %
HANDLE = 8  # px either side of the divider that grab it


class ImageCanvas(QWidget):
    """See the module docstring. `view_changed` fires after every zoom, pan, fit or divider move."""

    view_changed = Signal()
    divider_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageCanvas")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.grabGesture(Qt.GestureType.PinchGesture)
        self._pixmap: QPixmap | None = None
        self._overlay: QPixmap | None = None  # the second image of a split compare
        self._message = ""
        self._scale = 1.0
        self._offset = QPointF(0, 0)
        self._fit = True
        self._divider = 0.5  # fraction of the image's width
        self._drag_from: QPointF | None = None
        self._drag_divider = False
        self.labels = ("", "")  # names drawn on each side of a split

    # ------------------------------------------------------------------------------------ content
    def set_image(self, image: QImage | None, *, keep_view: bool = False) -> None:
        """Show `image` (None: nothing, or the message); fitted unless `keep_view`."""
        self._pixmap = QPixmap.fromImage(image) if image is not None and not image.isNull() else None
        if self._pixmap is not None:
            self._message = ""
        if not keep_view or self._pixmap is None:
            self._fit = True
        self._relayout()

    def set_overlay(self, image: QImage | None) -> None:
        """The second image of a split view, drawn right of the divider over the first (None: no split)."""
        self._overlay = QPixmap.fromImage(image) if image is not None and not image.isNull() else None
        self.update()

    def set_message(self, text: str) -> None:
        """Text shown instead of an image: "Loading…", or why the file cannot be shown."""
        self._message = text
        if text:
            self._pixmap = None
        self.update()

    def message(self) -> str:
        return self._message

    def has_image(self) -> bool:
        return self._pixmap is not None

    def image_size(self) -> QSize:
        return self._pixmap.size() if self._pixmap is not None else QSize()

    # ------------------------------------------------------------------------------------ view state
    @property
    def scale(self) -> float:
        return self._scale

    @property
    def fitted(self) -> bool:
        return self._fit

    def offset(self) -> QPointF:
        return QPointF(self._offset)

    def fit_scale(self) -> float:
        size = self.image_size()
        if size.isEmpty() or self.width() <= 0 or self.height() <= 0:
            return 1.0
        return max(MIN_SCALE, min(self.width() / size.width(), self.height() / size.height()))

    def fit(self) -> None:
        """The whole image in view, centred."""
        self._fit = True
        self._relayout()

    def actual_size(self, anchor: QPointF | None = None) -> None:
        """100 %: one image pixel per screen pixel, around `anchor` (the centre by default)."""
        self.zoom_to(1.0, anchor)

    def zoom_to(self, scale: float, anchor: QPointF | None = None) -> None:
        """Zoom to `scale`, keeping the image point under `anchor` (widget coordinates) where it is."""
        if self._pixmap is None:
            return
        scale = max(MIN_SCALE, min(MAX_SCALE, scale))
        at = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        image_point = self.map_to_image(at)
        self._fit = False
        self._scale = scale
        self._offset = at - image_point * scale
        self._clamp()
        self.update()
        self.view_changed.emit()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self.zoom_to(self._scale * factor, anchor)

    def pan_by(self, dx: float, dy: float) -> None:
        if self._pixmap is None:
            return
        self._fit = False
        self._offset += QPointF(dx, dy)
        self._clamp()
        self.update()
        self.view_changed.emit()

    def set_view(self, scale: float, offset: QPointF, *, fitted: bool = False) -> None:
        """Take another canvas's view (synchronised compare); no `view_changed`."""
        if fitted:
            self._fit = True
            self._relayout(emit=False)
            return
        self._fit = False
        self._scale = max(MIN_SCALE, min(MAX_SCALE, scale))
        self._offset = QPointF(offset)
        self.update()

    def map_to_image(self, point: QPointF) -> QPointF:
        """Widget coordinates -> image pixel coordinates (may lie outside the image)."""
        return (point - self._offset) / self._scale

    def map_from_image(self, point: QPointF) -> QPointF:
        return point * self._scale + self._offset

    @property
    def divider(self) -> float:
        return self._divider

    def set_divider(self, fraction: float) -> None:
        fraction = max(0.0, min(1.0, fraction))
        if fraction != self._divider:
            self._divider = fraction
            self.update()
            self.divider_changed.emit(fraction)

    def divider_x(self) -> float:
        """The divider's x in widget coordinates."""
        return self._offset.x() + self.image_size().width() * self._scale * self._divider

    # ------------------------------------------------------------------------------------ internals
    def _relayout(self, *, emit: bool = True) -> None:
        if self._fit and self._pixmap is not None:
            self._scale = self.fit_scale()
            size = self.image_size()
            self._offset = QPointF(
                (self.width() - size.width() * self._scale) / 2,
                (self.height() - size.height() * self._scale) / 2,
            )
        self.update()
        if emit:
            self.view_changed.emit()

    def _clamp(self) -> None:
        """Keep part of the image in view (a quarter of the window, or all of a smaller image): a pan cannot
        lose it, and a zoom around a point inside the image keeps that point exactly under the cursor."""
        size = self.image_size()
        self._offset = QPointF(
            _clamp_axis(self._offset.x(), size.width() * self._scale, self.width()),
            _clamp_axis(self._offset.y(), size.height() * self._scale, self.height()),
        )

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._fit:
            self._relayout()
        elif self._pixmap is not None:
            self._clamp()

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKDROP)
        if self._pixmap is None:
            if self._message:
                painter.setPen(QColor(225, 226, 230))
                painter.drawText(
                    self.rect().adjusted(24, 24, -24, -24),
                    Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                    self._message,
                )
            painter.end()
            return
        size = self.image_size()
        target = QRectF(
            self._offset.x(), self._offset.y(), size.width() * self._scale, size.height() * self._scale
        )
        visible = target.intersected(QRectF(self.rect()))
        if visible.isEmpty():
            painter.end()
            return
        self._checker(painter, visible)
        smooth = self._scale < 1.0 or self._scale <= self.fit_scale() + 1e-9
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        split = self._overlay is not None
        cut = self.divider_x() if split else visible.right()
        left = QRectF(visible.topLeft(), QPointF(min(cut, visible.right()), visible.bottom()))
        self._draw(painter, self._pixmap, left)
        if self._overlay is not None:
            right = QRectF(QPointF(max(cut, visible.left()), visible.top()), visible.bottomRight())
            self._draw(painter, self._overlay, right)
            self._draw_divider(painter, cut, visible)
        painter.end()

    def _draw(self, painter: QPainter, pixmap: QPixmap, target: QRectF) -> None:
        if target.width() <= 0 or target.height() <= 0:
            return
        top_left = self.map_to_image(target.topLeft())
        bottom_right = self.map_to_image(target.bottomRight())
        source = QRectF(top_left, bottom_right)
        if pixmap.size() != self.image_size():  # the other image of a compare: stretched onto this one
            sx = pixmap.width() / max(1, self.image_size().width())
            sy = pixmap.height() / max(1, self.image_size().height())
            source = QRectF(source.x() * sx, source.y() * sy, source.width() * sx, source.height() * sy)
        painter.drawPixmap(target, pixmap, source)

    def _checker(self, painter: QPainter, rect: QRectF) -> None:
        """A checkerboard under the image, so transparency reads as such."""
        if self._pixmap is None or not self._pixmap.hasAlphaChannel():
            return
        tile = QPixmap(16, 16)
        tile.fill(QColor(200, 200, 200))
        p = QPainter(tile)
        p.fillRect(0, 0, 8, 8, QColor(240, 240, 240))
        p.fillRect(8, 8, 8, 8, QColor(240, 240, 240))
        p.end()
        painter.fillRect(rect, QBrush(tile))

    def _draw_divider(self, painter: QPainter, x: float, visible: QRectF) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(QColor(255, 255, 255, 230), 2))
        painter.drawLine(QPointF(x, visible.top()), QPointF(x, visible.bottom()))
        mid = QPointF(x, visible.center().y())
        painter.setBrush(QColor(30, 30, 30, 200))
        painter.drawEllipse(mid, 12, 12)
        painter.setPen(QPen(QColor(255, 255, 255), 2))
        painter.drawLine(mid + QPointF(-6, 0), mid + QPointF(-2, -4))
        painter.drawLine(mid + QPointF(-6, 0), mid + QPointF(-2, 4))
        painter.drawLine(mid + QPointF(6, 0), mid + QPointF(2, -4))
        painter.drawLine(mid + QPointF(6, 0), mid + QPointF(2, 4))
        for text, right in ((self.labels[0], False), (self.labels[1], True)):
            if not text:
                continue
            metrics = painter.fontMetrics()
            width = metrics.horizontalAdvance(text) + 12
            box = QRectF(0, visible.top() + 8, width, metrics.height() + 6)
            box.moveLeft(x + 10 if right else x - 10 - width)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(20, 20, 20, 180))
            painter.drawRoundedRect(box, 4, 4)
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    # ------------------------------------------------------------------------------------ input
    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta and self._pixmap is not None:
            self.zoom_by(WHEEL_STEP**delta, event.position())
            event.accept()
        else:
            super().wheelEvent(event)

    def event(self, event: QEvent) -> bool:
        # A touch screen's pinch (QPinchGesture) and a trackpad's (a native zoom gesture, macOS and Wayland).
        if event.type() == QEvent.Type.Gesture and isinstance(event, QGestureEvent):
            pinch = event.gesture(Qt.GestureType.PinchGesture)
            if isinstance(pinch, QPinchGesture):
                centre = self.mapFromGlobal(pinch.centerPoint().toPoint())
                self.zoom_by(pinch.scaleFactor(), QPointF(centre))
                event.accept(pinch)
                return True
        if event.type() == QEvent.Type.NativeGesture and isinstance(event, QNativeGestureEvent):
            if event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
                self.zoom_by(1.0 + event.value(), event.position())
                return True
            if event.gestureType() == Qt.NativeGestureType.SmartZoomNativeGesture:
                self.fit() if not self._fit else self.actual_size(event.position())
                return True
        return super().event(event)

    def _near_divider(self, x: float) -> bool:
        return self._overlay is not None and abs(x - self.divider_x()) <= HANDLE

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._pixmap is not None:
            self._drag_divider = self._near_divider(event.position().x())
            self._drag_from = event.position()
            if not self._drag_divider:
                self.setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._drag_from is not None:
            if self._drag_divider:
                width = self.image_size().width() * self._scale
                if width > 0:
                    self.set_divider((pos.x() - self._offset.x()) / width)
            else:
                delta = pos - self._drag_from
                self.pan_by(delta.x(), delta.y())
            self._drag_from = pos
            event.accept()
            return
        if self._near_divider(pos.x()):
            self.setCursor(Qt.CursorShape.SplitHCursor)
        elif self._pixmap is not None:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        else:
            self.unsetCursor()
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._drag_from is not None and event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = None
            self._drag_divider = False
            self.setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self._pixmap is None:
            return
        if self._fit or abs(self._scale - 1.0) > 1e-6:
            self.actual_size(event.position())
        else:
            self.fit()


def _clamp_axis(start: float, length: float, room: float) -> float:
    """At least `min(length, room / 4)` of the image stays inside the window along this axis."""
    margin = min(length, room / 4)
    return min(room - margin, max(margin - length, start))
