"""Matching a UI-format node's saved widget values to the widget inputs of its definition, as the editor
does: definition order, the seed's `control_after_generate` value and the image-upload value skipped, a V3
dynamic combo followed by its chosen option's sub-widgets (`<combo>.<sub>`), defaults for what was not
saved. Used by `core.convert` (the UI -> API conversion)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from comfydesk.core.nodes import InputSpec, NodeDef
from comfydesk.core.uigraph import UiNode

__all__ = [
    "has_control_widget",
    "primitive_control",
    "primitive_value",
    "short_repr",
    "unknown_widget_values",
    "widget_values",
    "wrap_value",
]

_LEGACY_SEED_NAMES = frozenset({"seed", "noise_seed"})


def widget_values(
    node: UiNode,
    node_def: NodeDef,
    label: str,
    guessed: list[str],
    controls: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Widget inputs in definition order, valued from `widgets_values` (a list, or an object by name).

    The control mode saved after a seed-like widget goes into `controls` (widget name -> mode), when
    the values carry one; what had to be guessed (defaults, mismatched counts) is added to `guessed`.
    """
    stored = node.widgets_values
    slots = _widget_slots(node_def.inputs, "", stored, [])
    found: dict[str, str] = {} if controls is None else controls
    if any(spec.is_dynamic and not spec.is_dynamic_combo for spec in node_def.inputs):
        guessed.append(f"{label} has growing or type-matching inputs; its links are used as saved")
    out: dict[str, Any] = {}
    if isinstance(stored, dict):
        mode = stored.get("control_after_generate")
        owner = next((n for n, _ in _controlled(slots)), None)
        if isinstance(mode, str) and owner is not None:
            found[owner] = mode
        for name, dict_spec in slots:
            if dict_spec is None:
                continue
            if name in stored:
                out[name] = wrap_value(copy.deepcopy(stored[name]))
            else:
                out[name] = wrap_value(_default(dict_spec))
                guessed.append(f"{label} '{name}' not saved; the default {out[name]!r} is used")
        return out
    values = stored or []
    if len(values) != len(slots):
        no_upload = [s for s in slots if s[0] != "upload" or s[1] is not None]
        plain = [s for s in slots if s[1] is not None]
        if len(values) == len(no_upload):
            slots = no_upload
        elif len(values) == len(plain):
            slots = plain
            guessed.append(
                f"{label} saved its widget values without the seed-control values; matched without them"
            )
        elif slots or values:
            guessed.append(
                f"{label} has {len(values)} widget values where its definition has {len(slots)} widgets; "
                "matched in order"
            )
    for owner, i in _controlled(slots):
        if i < len(values) and isinstance(values[i], str):
            found[owner] = values[i]
    for i, (name, maybe_spec) in enumerate(slots):
        if maybe_spec is None:
            continue
        if i < len(values):
            out[name] = wrap_value(copy.deepcopy(values[i]))
        else:
            out[name] = wrap_value(_default(maybe_spec))
            guessed.append(f"{label} '{name}' not saved; the default {out[name]!r} is used")
    return out


def has_control_widget(spec: InputSpec) -> bool:
    """Whether the editor puts a "control after generate" widget (and value) after this one."""
    flag = spec.options.get("control_after_generate")
    if flag is not None:
        return bool(flag)
    return spec.type == "INT" and spec.name in _LEGACY_SEED_NAMES


def _widget_slots(
    specs: tuple[InputSpec, ...], prefix: str, stored: Any, slots: list[tuple[str, InputSpec | None]]
) -> list[tuple[str, InputSpec | None]]:
    """The editor's widgets of `specs` in order, as (name, spec); spec None for a value the prompt skips.

    A dynamic combo (V3) is a combo widget followed by the sub-widgets of the option it holds, named
    `<combo>.<sub>`; which option it holds is read from the saved values (by position or by name).
    """
    for spec in specs:
        name = prefix + spec.name
        if spec.is_dynamic_combo:
            options = spec.dynamic_options()
            index = len(slots)
            slots.append((name, _combo_spec(spec, name, options)))
            if isinstance(stored, list):
                chosen = stored[index] if index < len(stored) else None
            else:
                chosen = stored.get(name) if isinstance(stored, Mapping) else None
            if not isinstance(chosen, str) or chosen not in options:
                chosen = spec.default if spec.default in options else next(iter(options), None)
            if chosen is not None:
                _widget_slots(options[chosen], name + ".", stored, slots)
            continue
        if not spec.is_widget:
            continue
        slots.append((name, spec))
        if has_control_widget(spec):
            slots.append(("control_after_generate", None))
        if spec.upload:
            slots.append(("upload", None))
    return slots


def _combo_spec(spec: InputSpec, name: str, options: Mapping[str, Any]) -> InputSpec:
    """The dynamic combo's own widget, as a plain combo of its option keys."""
    default = spec.default if spec.default in options else next(iter(options), None)
    return InputSpec(name=name, type="COMBO", section=spec.section, default=default, choices=tuple(options))


def unknown_widget_values(node: UiNode) -> dict[str, Any]:
    """What the editor writes for a node type it does not know: every widget is named "UNKNOWN"."""
    stored = node.widgets_values
    if isinstance(stored, dict):
        return {str(k): wrap_value(copy.deepcopy(v)) for k, v in stored.items()}
    if isinstance(stored, list) and stored:
        return {"UNKNOWN": wrap_value(copy.deepcopy(stored[-1]))}
    return {}


def _controlled(slots: list[tuple[str, InputSpec | None]]) -> list[tuple[str, int]]:
    """(widget name, index of its control value) for each control slot in `slots`."""
    return [
        (slots[i - 1][0], i)
        for i, (name, spec) in enumerate(slots)
        if i > 0 and spec is None and name == "control_after_generate"
    ]


def _default(spec: InputSpec) -> Any:
    if spec.default is not None:
        return copy.deepcopy(spec.default)
    if spec.choices:
        return spec.choices[0]
    return {"INT": 0, "FLOAT": 0, "BOOLEAN": False, "STRING": ""}.get(spec.type)


def wrap_value(value: Any) -> Any:
    """A list is a link in the API format; the editor boxes list values so the server unboxes them."""
    return {"__value__": value} if isinstance(value, list) else value


def short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def primitive_value(node: UiNode) -> Any:
    stored = node.widgets_values
    if isinstance(stored, list) and stored:
        return stored[0]
    if isinstance(stored, dict) and stored:
        return next(iter(stored.values()))
    return None


def primitive_control(node: UiNode) -> str | None:
    """The control mode a PrimitiveNode saved after its value (number widgets get one), if any."""
    stored = node.widgets_values
    if isinstance(stored, list) and len(stored) >= 2 and isinstance(stored[1], str):
        return stored[1]
    if isinstance(stored, dict) and isinstance(mode := stored.get("control_after_generate"), str):
        return mode
    return None
