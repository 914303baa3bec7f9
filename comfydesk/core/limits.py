"""Bounds on what hostile input may cost, and text made safe to show: pure functions, no I/O.

- JSON: `loads_bounded` parses text whose nesting and number of containers (objects and lists) stay under
  the limits; a document past them raises `JsonTooComplex` (a ValueError) with a plain sentence, never a
  RecursionError, and is refused *before* it is parsed when its size alone says it would be too big.
  `check_shape` checks an already-parsed document the same way, without recursion.
- Text: `printable` strips control characters (terminal escapes, newlines in names, NUL) from anything a
  server or a file says before it reaches a terminal, a log or a file name.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "CATALOG_MAX_CONTAINERS",
    "MAX_CONTAINERS",
    "MAX_JSON_DEPTH",
    "JsonTooComplex",
    "check_shape",
    "loads_bounded",
    "printable",
]

#: Deepest nesting of objects/lists accepted in a workflow, catalog or settings document. Real ComfyUI
#: documents stay under 15; Python's own recursion limit (1000) is far above this.
MAX_JSON_DEPTH = 100
#: Most objects + lists in one document (a large real workflow has about 50,000; a big server's
#: object_info about 500,000, and is read with a higher limit).
MAX_CONTAINERS = 1_000_000
#: The same for a server's node definitions (object_info), which are larger than any workflow.
CATALOG_MAX_CONTAINERS = 8_000_000


class JsonTooComplex(ValueError):
    """A JSON document nested too deeply or holding too many objects and lists."""


def _too_deep(limit: int) -> JsonTooComplex:
    return JsonTooComplex(f"it is nested more than {limit} levels deep")


def _too_many(limit: int) -> JsonTooComplex:
    return JsonTooComplex(f"it holds more than {limit:,} objects and lists")


def check_shape(doc: Any, *, max_depth: int = MAX_JSON_DEPTH, max_containers: int = MAX_CONTAINERS) -> None:
    """Raise JsonTooComplex when `doc` nests deeper than `max_depth` or holds more than `max_containers`
    dicts and lists (iterative: safe on any depth)."""
    # Level by level: one list of the containers at each depth, so a document's millions of scalars cost
    # one isinstance each in a comprehension, not a tuple and a stack push each.
    containers = (dict, list, tuple)
    level = [doc] if isinstance(doc, containers) else []
    depth, seen = 1, 0
    while level:
        if depth > max_depth:
            raise _too_deep(max_depth)
        seen += len(level)
        if seen > max_containers:
            raise _too_many(max_containers)
        below: list[Any] = []
        for value in level:
            children = value.values() if isinstance(value, dict) else value
            below += [child for child in children if isinstance(child, containers)]
        level = below
        depth += 1


def loads_bounded(
    text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH, max_containers: int = MAX_CONTAINERS
) -> Any:
    """`json.loads(text)` within the limits; raises JsonTooComplex past them, ValueError when not JSON."""
    # Counting brackets over-counts (brackets inside strings), so it only refuses what is surely too big,
    # before the parser allocates it.
    if isinstance(text, bytes | bytearray):
        opened = text.count(b"{") + text.count(b"[")
    else:
        opened = text.count("{") + text.count("[")
    if opened > 2 * max_containers:
        raise _too_many(max_containers)
    try:
        doc = json.loads(text)
    except RecursionError:
        raise _too_deep(max_depth) from None
    check_shape(doc, max_depth=max_depth, max_containers=max_containers)
    return doc


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: str, *, keep_newlines: bool = False, replacement: str = "") -> str:
    """`text` without control characters (ANSI/OSC escapes lose their ESC and BEL), bidi overrides and,
    unless `keep_newlines`, line breaks and tabs. Safe to print to a terminal or write to a log line."""
    pattern = _CONTROL if keep_newlines else _CONTROL_OR_NEWLINE
    return pattern.sub(replacement, text)
