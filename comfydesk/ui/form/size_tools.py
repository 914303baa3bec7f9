"""Size presets and a swap button under a width/height pair of the form."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QToolButton, QWidget

from comfydesk.core.templates import SizePreset

__all__ = ["SizeTools"]


class SizeTools(QWidget):
    """ "Presets…" (the model family's native sizes, common aspect ratios) and "Swap" for a size pair."""

    size_picked = Signal(int, int)  # width, height
    swap_requested = Signal()

    def __init__(self, presets: Sequence[SizePreset], label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sizeTools")
        self.presets = list(presets)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 0, 0, 0)  # in line with the editors' frames
        layout.setSpacing(4)
        self.combo = QComboBox(self)
        self.combo.setObjectName("sizePresets")
        self.combo.setAccessibleName(f"{label} presets")
        self.combo.setToolTip("Common sizes for the model and aspect ratios")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(14)
        self.combo.addItem("Size presets…", None)
        for preset in self.presets:
            self.combo.addItem(preset.label, (preset.width, preset.height))
        self.combo.activated.connect(self._picked)
        self.swap = QToolButton(self)
        self.swap.setObjectName("sizeSwap")
        self.swap.setText("⇄ Swap")
        self.swap.setToolButtonStyle(self.swap.toolButtonStyle())
        self.swap.setToolTip("Swap width and height (portrait ↔ landscape)")
        self.swap.setAccessibleName(f"Swap {label.lower()} width and height")
        self.swap.clicked.connect(self.swap_requested)
        layout.addWidget(self.combo)
        layout.addWidget(self.swap)

    def pick(self, index: int) -> None:
        """Apply preset `index` (0-based in `presets`), as choosing it in the list does."""
        self.combo.setCurrentIndex(index + 1)
        self._picked(index + 1)

    def _picked(self, index: int) -> None:
        data = self.combo.itemData(index)
        self.combo.setCurrentIndex(0)  # a chooser, not a state: it always reads "Size presets…"
        if isinstance(data, tuple):
            self.size_picked.emit(int(data[0]), int(data[1]))
