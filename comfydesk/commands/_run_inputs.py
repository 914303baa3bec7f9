"""`run --set NAME=VALUE`: which form field a name addresses, the typed value, and output files on disk.

Pure functions over a `FormSpec` (no network), so the CLI's rules are unit-tested on their own.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfydesk.commands._common import error
from comfydesk.core.errors import ComfyDeskError, ValidationError, ValidationIssue
from comfydesk.core.limits import printable
from comfydesk.core.templates import FieldKind, FormField, FormSpec
from comfydesk.store.atomic import write_new_file

__all__ = [
    "Abort",
    "ImageFile",
    "SetError",
    "fit_name",
    "node_title",
    "parse_assignment",
    "parse_value",
    "print_issues",
    "resolve_key",
    "resolve_sets",
    "safe_stem",
    "text_of",
    "write_unique",
]

_TRUE = frozenset({"true", "1", "yes", "on", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "off", "n", "f"})
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


# --------------------------------------------------------------------------------------------------------
# Leaving a run, and what was wrong with its inputs


class Abort(Exception):
    """Leave the run with an exit code after the message was printed."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def print_issues(exc: ValidationError, form: FormSpec | None) -> None:
    n = len(exc.issues)
    error(f"the workflow is not valid ({n} problem{'s' if n != 1 else ''}):")
    placeholders = {f.key for f in form.placeholders} if form else set()
    for issue in exc.issues:
        line = issue.describe()
        if issue.field_key in placeholders and issue.kind == "required_input_missing":
            line += f" Pass --set {issue.field_key}=VALUE."
        print(f"  {printable(line)}", file=sys.stderr)
    if any(i.field_key and i.field_key not in placeholders for i in exc.issues):
        print("  (change a value with --set NODE_ID.input=VALUE)", file=sys.stderr)


# --------------------------------------------------------------------------------------------------------
# --set: addressing and values


class SetError(ComfyDeskError):
    """A --set option that names nothing, names several things, or is not NAME=VALUE."""


@dataclass(frozen=True, slots=True)
class ImageFile:
    """An image input given as a local file: uploaded before the run, replaced by the server's name."""

    path: Path


def parse_assignment(text: str) -> tuple[str, str]:
    """`NAME=VALUE` -> (NAME, VALUE); the value may contain `=`."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise SetError(
            f"--set {text!r}: expected NAME=VALUE, e.g. --set prompt='a red fox' or --set 3.steps=20"
        )
    return name, value


def node_title(form: FormSpec, node_id: str) -> str:
    node = form.graph[node_id]
    if node.title:
        return node.title
    ndef = form.catalog.get(node.class_type)
    return ndef.title if ndef else node.class_type


def _describe_node(form: FormSpec, node_id: str) -> str:
    return f"node {node_id} ({node_title(form, node_id)})"


def _field_for_input(form: FormSpec, node_id: str, input_name: str, name: str) -> FormField:
    key = f"{node_id}.{input_name}"
    try:
        return form.field(key)
    except KeyError:
        pass
    node = form.graph[node_id]
    for f in form.placeholders:
        if (node_id, input_name) in f.targets:
            raise SetError(
                f"--set {name}: {_describe_node(form, node_id)} input '{input_name}' holds the placeholder "
                f"{{{f.key}}}; set it with --set {f.key}=VALUE"
            )
    if input_name in node.inputs:
        raise SetError(
            f"--set {name}: {_describe_node(form, node_id)} input '{input_name}' is linked to another node "
            "and cannot be set"
        )
    settable = [f.input_name for g in form.groups if g.node_id == node_id for f in g.fields if f.input_name]
    listed = ", ".join(settable) if settable else "none"
    raise SetError(
        f"--set {name}: {_describe_node(form, node_id)} has no input '{input_name}' (settable: {listed})"
    )


def resolve_key(form: FormSpec, name: str) -> FormField:
    """The form field `name` addresses: a placeholder, `NODE_ID.input` or `Title.input` (case-insensitive)."""
    for f in form.placeholders:
        if f.key == name:
            return f
    node_ref, dot, input_name = name.rpartition(".")
    if dot and node_ref and input_name:
        if node_ref in form.graph:
            return _field_for_input(form, node_ref, input_name, name)
        wanted = node_ref.casefold()
        matches = [nid for nid in form.graph if node_title(form, nid).casefold() == wanted]
        if not matches:  # a node without its own title may still be named by its type id
            matches = [nid for nid in form.graph if form.graph[nid].class_type.casefold() == wanted]
        if len(matches) > 1:
            raise SetError(
                f"--set {name}: the title '{node_ref}' is ambiguous, it names nodes "
                f"{', '.join(matches)}; use NODE_ID.{input_name} instead"
            )
        if matches:
            return _field_for_input(form, matches[0], input_name, name)
    hints = [f"{{{f.key}}}" for f in form.placeholders]
    known = f" (placeholders: {', '.join(hints)})" if hints else ""
    raise SetError(
        f"--set {name}: no placeholder, node id or node title is called that{known}",
        hint="Use a {placeholder} name, NODE_ID.input or 'Node title.input'.",
    )


def _bad_value(f: FormField, form: FormSpec, message: str, received: str) -> ValidationIssue:
    node_id, input_name = (f.node_id, f.input_name) if not f.targets else f.targets[0]
    return ValidationIssue(
        node_id=node_id or "",
        node_title=node_title(form, node_id) if node_id and node_id in form.graph else "",
        input_name=input_name,
        message=message,
        kind="invalid_input_type",
        field_key=f.key,
        received=received,
    )


def parse_value(f: FormField, text: str, *, base_dir: Path | None = None) -> Any:
    """The typed value of `text` for field `f`; raises ValueError with a sentence when it does not parse.

    Choices are matched as text (so `--set 4.ckpt_name=model.safetensors` works whatever the option type);
    an unknown choice is passed on so validation can list it with the server's options. For an image
    input, an existing local file becomes an `ImageFile` to upload.
    """
    kind = f.kind
    if kind in (FieldKind.INT, FieldKind.SEED):
        try:
            return int(text.strip().replace("_", ""), 10)
        except ValueError:
            raise ValueError(f"{f.label} must be a whole number, got {text!r}") from None
    if kind is FieldKind.FLOAT:
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"{f.label} must be a number, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{f.label} must be a finite number, got {text!r}")
        return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value
    if kind is FieldKind.BOOLEAN:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"{f.label} must be true or false, got {text!r}")
    if kind is FieldKind.IMAGE:
        local = Path(text).expanduser()
        if not local.is_absolute() and base_dir is not None:
            local = base_dir / local
        if local.is_file():
            return ImageFile(local)
    if kind in (FieldKind.CHOICE, FieldKind.IMAGE) and f.choices:
        for choice in f.choices:
            if str(choice) == text:
                return choice
    return text


def resolve_sets(form: FormSpec, assignments: Sequence[str]) -> dict[str, Any]:
    """Field key -> typed value for every --set; raises SetError (addressing) or ValidationError (values)."""
    values: dict[str, Any] = {}
    issues: list[ValidationIssue] = []
    for text in assignments:
        name, raw = parse_assignment(text)
        f = resolve_key(form, name)
        try:
            values[f.key] = parse_value(f, raw)
        except ValueError as exc:
            issues.append(_bad_value(f, form, str(exc), raw))
    if issues:
        raise ValidationError(issues)
    return values


# --------------------------------------------------------------------------------------------------------
# Outputs on disk


def safe_stem(text: str) -> str:
    return _UNSAFE_CHARS.sub("_", text).strip("._") or "output"


#: Longest file name written, in UTF-8 bytes: most file systems allow 255; room is left for `_<n>`.
MAX_NAME_BYTES = 200


def fit_name(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """`name` shortened to `limit` UTF-8 bytes, keeping its extension (a server may send any length)."""
    if len(name.encode("utf-8")) <= limit:
        return name
    base = Path(name)
    suffix = base.suffix if len(base.suffix.encode("utf-8")) <= 16 else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    room = limit - len(suffix.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(". ") or "output"
    return cut + suffix


def write_unique(directory: Path, name: str, data: bytes) -> Path:
    """Write `data` to `directory/name`, or `stem_1.ext`, `stem_2.ext`, ... if taken; never overwrites.

    The bytes go to a hidden temporary file first, which is then linked under its final name, so an
    interrupted write (Ctrl+C, a crash, a full disk) never leaves a partial file under that name. Names
    longer than the file system allows are shortened (`fit_name`)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = fit_name(name)
    base = Path(name)
    stem, suffix = base.stem or "output", base.suffix
    candidate = directory / name
    n = 0
    while True:
        try:
            write_new_file(candidate, data)  # another writer cannot be clobbered
            return candidate
        except FileExistsError:
            n += 1
            candidate = directory / f"{stem}_{n}{suffix}"


def text_of(data: Any) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, list) and all(isinstance(x, str) for x in data):
        return "\n".join(data)
    return json.dumps(data, ensure_ascii=False, indent=2)
