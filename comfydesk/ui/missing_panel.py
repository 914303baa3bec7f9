"""The panel above the form that says what a workflow needs and the server lacks, and what to do about it.

One frame, shown only when something is missing that only this panel says: the custom node packs to install
(with their node types) and the models to download (file name, folder, size, a "Copy link" button for the
URL the workflow file gives, and "Choose another" to pick one of the server's models in the form; a model
field itself only carries a short mark pointing here). A setting the server does not offer and an input file
it does not have are said on their field, once, so the panel leaves them out; it lists them only when no
field of the form holds them.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from comfydesk.core.missing import MissingModel, MissingPieces, MissingValue, format_size
from comfydesk.ui.theme import accent_palette, set_style, status_color

__all__ = ["MissingPanel"]

TITLE = "This workflow needs things this server doesn't have"
NODES_HINT = (
    "Install these node packs on the server (ComfyUI-Manager finds them by name), restart ComfyUI, then "
    "press F5 here."
)
MODELS_HINT = (
    "Download each file into that folder under the server's <i>models</i> folder, then press F5 here. "
    "Or choose a model this server already has."
)

FieldLookup = Callable[[str, str], "str | None"]


def _label(text: str, parent: QWidget, name: str = "", *, rich: bool = True) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
    if name:
        label.setObjectName(name)
    return label


#: How many panels (the last ones shown) are kept for going back to their workflows.
KEEP_BODIES = 4


class MissingPanel(QFrame):
    """See the module docstring. `set_pieces(None)` hides it."""

    field_requested = Signal(str)  # a form field key: bring it into view to pick another value
    link_copied = Signal(str)  # the URL put on the clipboard

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("missingPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._pieces: MissingPieces | None = None
        self._field_key: FieldLookup = lambda _n, _i: None
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(10, 8, 10, 8)
        self._layout.setSpacing(4)
        self._body: QWidget | None = None
        self._signature: object = (None, ())  # what is shown (see _rebuild): nothing
        # The panels built last, by what they show, newest last: switching back to a workflow shows its
        # panel again instead of building it anew (the body on screen is one of them).
        self._kept: list[tuple[object, tuple[QWidget, dict[str, QPushButton], dict[str, QPushButton]]]] = []
        #: The "Copy link" button of each model, by file name (for tests and keyboard users).
        self.copy_buttons: dict[str, QPushButton] = {}
        self.choose_buttons: dict[str, QPushButton] = {}
        self._restyle()
        self.hide()

    @property
    def pieces(self) -> MissingPieces | None:
        return self._pieces

    def set_pieces(self, pieces: MissingPieces | None, field_key: FieldLookup | None = None) -> None:
        """Show what is missing; `field_key(node_id, input_name)` finds the form field of an input."""
        self._pieces = pieces if pieces is not None and not pieces.empty else None
        if field_key is not None:
            self._field_key = field_key
        self._rebuild()

    # ------------------------------------------------------------------------------------------ building
    def _rebuild(self) -> None:
        shown = self._without_fields(self._pieces) if self._pieces is not None else None
        if shown is not None and shown.empty:
            shown = None
        # What the panel would show, with the field each "Choose another" leads to: when that is what it
        # shows already (most workflow switches, most edits of the form), its widgets stay.
        signature = (shown, tuple(self._model_key(m) for m in shown.models) if shown is not None else ())
        if signature == self._signature:
            return
        self._signature = signature
        if self._body is not None:  # kept (hidden) for going back to it: see _kept
            self._body.hide()
            self._body = None
        self.copy_buttons, self.choose_buttons = {}, {}
        if shown is None:
            self.hide()
            return
        for i, (kept_signature, kept) in enumerate(self._kept):
            if kept_signature == signature:  # shown a moment ago (the workflow switched back to)
                self._kept.append(self._kept.pop(i))
                self._body, self.copy_buttons, self.choose_buttons = kept
                self._body.show()
                self.show()
                return
        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        title = TITLE if shown.blocking else "Check this before you run"
        layout.addWidget(_label(f"<b>⚠ {html.escape(title, quote=False)}</b>", body, "missingTitle"))
        if shown.nodes:
            layout.addWidget(self._nodes_section(shown, body))
        if shown.models:
            layout.addWidget(self._models_section(shown.models, body))
        if shown.choices:
            layout.addWidget(self._values_section(shown.choices, body, "missingChoices"))
        if shown.files:
            layout.addWidget(self._values_section(shown.files, body, "missingFiles"))
        self._layout.addWidget(body)
        self._body = body
        self._kept.append((signature, (body, self.copy_buttons, self.choose_buttons)))
        while len(self._kept) > KEEP_BODIES:
            _, (old_body, _c, _b) = self._kept.pop(0)
            self._layout.removeWidget(old_body)
            old_body.deleteLater()
        self.show()

    def _without_fields(self, pieces: MissingPieces) -> MissingPieces:
        """What the panel says: settings and files that a form field shows (and says) are left out."""

        def loose(values: tuple[MissingValue, ...]) -> tuple[MissingValue, ...]:
            return tuple(v for v in values if self._field_key(v.node_id, v.input_name) is None)

        return replace(pieces, choices=loose(pieces.choices), files=loose(pieces.files))

    def _nodes_section(self, pieces: MissingPieces, parent: QWidget) -> QWidget:
        box = QWidget(parent)
        box.setObjectName("missingNodes")
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(2)
        n = pieces.node_type_count
        layout.addWidget(_label(f"<b>Custom node{'s' if n != 1 else ''} missing</b>", box))
        for group in pieces.nodes:
            types = ", ".join(html.escape(t, quote=False) for t in group.node_types)
            pack = (
                f"<b>{html.escape(group.pack, quote=False)}</b>"
                if group.pack
                else "A node pack the file does not name"
            )
            line = _label(f"• {pack}: {types}", box, "missingPack")
            line.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            layout.addWidget(line)
        hint = _label(NODES_HINT, box, "missingHint")
        hint.setEnabled(False)  # the palette's muted text colour
        layout.addWidget(hint)
        return box

    def _models_section(self, models: tuple[MissingModel, ...], parent: QWidget) -> QWidget:
        box = QWidget(parent)
        box.setObjectName("missingModels")
        outer = QVBoxLayout(box)
        outer.setContentsMargins(0, 4, 0, 0)
        outer.setSpacing(2)
        outer.addWidget(_label(f"<b>Model{'s' if len(models) != 1 else ''} missing</b>", box))
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(2)
        for index, model in enumerate(models):
            row = index * 2
            name = _label(f"• {html.escape(model.name, quote=False)}", box, "missingModelName")
            name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(name, row, 0)
            folder = f"models/{model.folder}" if model.folder else "a models folder the file does not name"
            size = format_size(model.size)
            where = _label(
                f"goes in {html.escape(folder, quote=False)}" + (f" · {size}" if size else ""),
                box,
                "missingModelFolder",
            )
            where.setContentsMargins(12, 0, 0, 0)
            where.setEnabled(False)  # muted
            where.setToolTip("The folder of the server's ComfyUI installation this file goes in")
            grid.addWidget(where, row + 1, 0)
            copy = QPushButton("Copy link", box)
            copy.setObjectName("copyModelLink")
            copy.setAccessibleName(f"Copy the download link of {model.name}")
            if model.url:
                copy.setToolTip(model.url)
                copy.clicked.connect(lambda _c=False, url=model.url, b=copy: self._copy(url, b))
            else:
                copy.setEnabled(False)
                copy.setToolTip("The workflow file does not say where to download this model")
            grid.addWidget(copy, row, 1, 2, 1, Qt.AlignmentFlag.AlignVCenter)
            self.copy_buttons[model.name] = copy
            key = self._model_key(model)
            if key is not None:
                choose = QPushButton("Choose another", box)
                choose.setObjectName("chooseOtherModel")
                choose.setAccessibleName(f"Choose another model instead of {model.name}")
                if model.choices:
                    choose.setToolTip("Pick one of this server's models in the form")
                else:
                    choose.setEnabled(False)
                    choose.setToolTip(f"This server has no models in models/{model.folder}")
                choose.clicked.connect(lambda _c=False, k=key: self.field_requested.emit(k))
                grid.addWidget(choose, row, 2, 2, 1, Qt.AlignmentFlag.AlignVCenter)
                self.choose_buttons[model.name] = choose
        grid.setColumnStretch(0, 1)
        outer.addLayout(grid)
        hint = _label(MODELS_HINT, box, "missingHint")
        hint.setEnabled(False)
        outer.addWidget(hint)
        return box

    def _model_key(self, model: MissingModel) -> str | None:
        """The form field that picks `model` (for "Choose another"), if the form shows one."""
        return next((k for spot in model.inputs if (k := self._field_key(*spot)) is not None), None)

    def _values_section(self, values: tuple[MissingValue, ...], parent: QWidget, name: str) -> QWidget:
        box = QWidget(parent)
        box.setObjectName(name)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(2)
        files = name == "missingFiles"
        head = "Files the server doesn't have" if files else "Settings this server doesn't offer"
        layout.addWidget(_label(f"<b>{head}</b>", box))
        for value in values:
            where = (
                f"{html.escape(value.node_title, quote=False)} › {html.escape(value.input_name, quote=False)}"
            )
            what = f"“{html.escape(value.value, quote=False)}”"
            todo = "pick another, or Browse… for the file" if files else "pick one of the listed options"
            key = self._field_key(value.node_id, value.input_name)
            link = f' — <a href="{html.escape(key)}">{todo}</a>' if key is not None else f" — {todo}"
            line = _label(f"• {what} ({where}){link}", box, "missingValue")
            line.linkActivated.connect(self.field_requested.emit)
            layout.addWidget(line)
        return box

    # ------------------------------------------------------------------------------------------ actions
    def _copy(self, url: str, button: QPushButton) -> None:
        QGuiApplication.clipboard().setText(url)
        button.setText("Copied")
        button.setAccessibleDescription("The link is on the clipboard")
        self.link_copied.emit(url)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() is QEvent.Type.PaletteChange:
            self._restyle()
        super().changeEvent(event)

    def _restyle(self) -> None:
        amber = status_color("connecting", accent_palette(self)).name()
        set_style(self, f"QFrame#missingPanel {{ border: 1px solid {amber}; border-radius: 4px; }}")
