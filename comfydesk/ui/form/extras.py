"""What the form does beyond one value per field: a dynamic combo's values kept per option, size presets and
swap for a width/height pair, server image previews and fresh image lists. A mixin of FormView."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import SIGNAL, SignalInstance
from PySide6.QtGui import QImage

from comfydesk.core.templates import FieldKind, FormField, FormSpec, size_presets
from comfydesk.ui.form.editors import ChoiceEditor
from comfydesk.ui.form.image_field import ImageEditor
from comfydesk.ui.form.parts import FieldRow, FormGroupBox
from comfydesk.ui.form.size_tools import SizeTools

__all__ = ["FormExtras"]

_MODEL_INPUTS = ("ckpt_name", "unet_name", "model_name")


def _listed(value: Any, choices: Sequence[Any] | None) -> bool:
    return choices is None or value in choices


class FormExtras:
    """Dynamic options, size tools and image previews of FormView (which owns the state named below)."""

    _spec: FormSpec | None
    _server_graph: bool
    _values: dict[str, Any]
    _defaults: dict[str, Any]
    _pinned: list[str]
    _hidden: set[str]
    _previews: dict[str, QImage | None]
    _option_values: dict[str, dict[Any, dict[str, Any]]]
    _rows: dict[str, FieldRow]
    _size_tools: dict[str, SizeTools]

    if TYPE_CHECKING:
        image_preview_wanted: SignalInstance
        values_changed: SignalInstance

        def values(self) -> dict[str, Any]: ...

        def set_value(self, key: str, value: Any) -> None: ...

        def _validate_field(self, key: str) -> None: ...

        def receivers(self, signal: str) -> int: ...

        def drop_kept_forms(self) -> None: ...

        def _flush(self) -> None: ...

    def set_image_thumbnail(self, key: str, image: QImage | None, name: str | None = None) -> None:
        """Show a preview (made by the caller, off the UI thread) of server image `name` (default: the
        field's value); one for a name the field no longer holds is kept for later, not shown."""
        name = name if name is not None else self._values.get(key)
        if not isinstance(name, str):
            return
        self._previews[name] = image
        row = self._rows.get(key)
        if row is not None and isinstance(row.editor, ImageEditor) and self._values.get(key) == name:
            row.editor.set_thumbnail(image)

    def set_image_choices(self, choices: Sequence[str]) -> None:
        """A fresh list of the server's input images for every image field (values are kept)."""
        self._previews.clear()  # an upload may have replaced a file of the same name
        self.drop_kept_forms()  # forms kept aside have the old list
        self._flush()  # every image field gets the list, not only those built so far
        for key, row in self._rows.items():
            if isinstance(row.editor, ImageEditor) and row.field.choices is not None:
                row.editor.set_choices(list(choices))
                self._want_preview(key)

    def _same_form(
        self, spec: FormSpec | None, pinned: Iterable[str], hidden: Iterable[str], server_graph: bool
    ) -> bool:
        old = self._spec
        if old is None or spec is None or spec is old or not self._rows:
            return False
        return (
            spec.workflow_name == old.workflow_name
            and server_graph == self._server_graph
            and [(f.key, f.kind, f.value) for f in spec.fields()]
            == [(f.key, f.kind, f.value) for f in old.fields()]
            and [k for k in dict.fromkeys(pinned) if k in self._defaults] == self._pinned
            and {k for k in hidden if k in self._defaults} == self._hidden
        )

    def _refresh_choices(self, spec: FormSpec) -> None:
        """The same form with fresh option lists (the server's models or images changed): every combo gets
        its new list in place, keeping the value chosen. A value that went missing (or came back) is checked
        again, so its field says so; one missing before and still missing keeps the mark it has."""
        self._flush()  # rows still to come would be built from the old spec's choices
        self._spec = spec
        for f in spec.fields():
            row = self._rows.get(f.key)
            if row is None or f.choices == row.field.choices:
                continue
            before = row.field.choices
            row.field = f
            if isinstance(row.editor, ImageEditor):
                row.editor.set_choices(list(f.choices or ()))
                self._want_preview(f.key)
            elif isinstance(row.editor, ChoiceEditor):
                row.editor.set_choices(list(f.choices or ()))
            else:
                continue
            value = self._values.get(f.key)
            if _listed(value, before) != _listed(value, f.choices):
                self._validate_field(f.key)

    def _want_preview(self, key: str) -> None:
        """Ask for a server image's preview (a local file or pasted image previews itself); none for a name
        the server's list lacks (its box says "Not on the server")."""
        value = self._values.get(key)
        row = self._rows.get(key)
        if not isinstance(value, str) or not value or row is None or not isinstance(row.editor, ImageEditor):
            return
        if row.editor.missing_on_server():
            row.editor.set_thumbnail(None)
        elif value in self._previews:
            row.editor.set_thumbnail(self._previews[value])
        elif self.receivers(SIGNAL("image_preview_wanted(QString,QString)")) > 0:
            self.image_preview_wanted.emit(key, value)
        else:
            row.editor.set_thumbnail(None)  # nobody to ask: say so rather than "Loading…" forever

    def _add_size_tools(self, box: FormGroupBox, added: FormField) -> None:
        """Presets and Swap under a group's width/height pair, once both rows are in."""
        fields = [r.field for r in box.rows]
        width = next((f for f in fields if f.input_name == "width" and f.kind is FieldKind.INT), None)
        height = next((f for f in fields if f.input_name == "height" and f.kind is FieldKind.INT), None)
        if width is None or height is None or added not in (width, height) or self._spec is None:
            return
        model = next(
            (
                v
                for f in self._spec.fields()
                if f.input_name in _MODEL_INPUTS and isinstance(v := self._values.get(f.key), str)
            ),
            None,
        )
        step = int(width.step) if isinstance(width.step, int | float) and width.step >= 1 else 8
        presets = [
            p
            for p in size_presets(model, step=step)
            if (width.max is None or p.width <= width.max) and (height.max is None or p.height <= height.max)
        ]
        tools = SizeTools(presets, box.header.text() if box.header is not None else "Size", box.body)
        tools.size_picked.connect(lambda w, h, a=width.key, b=height.key: self._set_pair(a, w, b, h))
        tools.swap_requested.connect(
            lambda a=width.key, b=height.key: self._set_pair(a, self._values.get(b), b, self._values.get(a))
        )
        box.add_widget(tools)
        self._size_tools[box.key] = tools

    def _set_pair(self, first: str, first_value: Any, second: str, second_value: Any) -> None:
        for key, value in ((first, first_value), (second, second_value)):
            self.set_value(key, value)
            self._validate_field(key)
            self._mark_changed(key)
        self.values_changed.emit(self.values())

    def _mark_changed(self, key: str) -> None:
        row = self._rows.get(key)
        if row is not None:
            row.set_changed(self._values.get(key) != self._defaults.get(key))

    def _sub_fields(self, field: FormField) -> tuple[FormField, ...]:
        """A dynamic combo's fields for the option it holds now; each option's values are kept while the
        form is open (they start at the workflow's values, else the defaults)."""
        subs = field.sub_fields(self._values.get(field.key, field.value))
        for sub in subs:
            self._values.setdefault(sub.key, sub.value)
            self._defaults.setdefault(sub.key, sub.value)
        return subs

    def _switch_option(self, field: FormField, old: Any, new: Any) -> None:
        """Keep the sub-values of option `old` and bring back those of `new` (its workflow values or
        defaults the first time): options may share sub-input names, each keeps its own values."""
        kept = self._option_values.setdefault(field.key, {})
        kept[old] = {sub.key: self._values.get(sub.key) for sub in field.sub_fields(old)}
        for sub in field.sub_fields(old):
            self._values.pop(sub.key, None)
        restored = kept.get(new, {})
        for sub in field.sub_fields(new):
            self._values[sub.key] = restored.get(sub.key, sub.value)
            self._defaults[sub.key] = sub.value
