"""Execution events: the small immutable values every backend yields for a run.

A run goes ``Queued -> Started -> (Cached | NodeStarted -> Progress* -> Preview* -> NodeOutput?)* ->
Completed | Failed | Interrupted``. Every event names the execution it belongs to (`execution_id`, the
server's prompt id for ComfyUI). Exactly one terminal event (`Completed`, `Failed`, `Interrupted`) ends a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "TERMINAL_EVENTS",
    "Cached",
    "Completed",
    "ExecutionEvent",
    "ExecutionStatus",
    "Failed",
    "FailureInfo",
    "Interrupted",
    "NodeOutput",
    "NodeStarted",
    "OutputRef",
    "Preview",
    "Progress",
    "Queued",
    "Started",
]


class ExecutionStatus(StrEnum):
    """Lifecycle of one execution."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (
            ExecutionStatus.COMPLETED,
            ExecutionStatus.FAILED,
            ExecutionStatus.CANCELLED,
        )


@dataclass(frozen=True, slots=True)
class OutputRef:
    """One output a node produced: a file on the server (`filename`/`subfolder`/`type`) or inline data.

    `kind` is the key of the node's ui dict (`images`, `gifs`, `audio`, `text`, ...). For text outputs,
    `data` holds the value and `filename` is empty.
    """

    node_id: str
    kind: str
    filename: str = ""
    subfolder: str = ""
    type: str = "output"
    data: Any = None
    url: str = ""
    width: int | None = None
    height: int | None = None

    @property
    def is_file(self) -> bool:
        return bool(self.filename or self.url)

    @property
    def is_image(self) -> bool:
        name = (self.filename or self.url).lower()
        return self.kind == "images" and name.endswith((".png", ".jpg", ".jpeg", ".webp", ".gif"))


@dataclass(frozen=True, slots=True)
class FailureInfo:
    """What went wrong in a failed run, as the server said it."""

    message: str
    node_id: str | None = None
    node_type: str | None = None
    exception_type: str = ""
    traceback: tuple[str, ...] = ()
    executed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Event:
    execution_id: str


@dataclass(frozen=True, slots=True)
class Queued(_Event):
    """Accepted by the server; `position` is 0 when it is next (or running), None when unknown."""

    position: int | None = None


@dataclass(frozen=True, slots=True)
class Started(_Event):
    """The server began executing the graph."""


@dataclass(frozen=True, slots=True)
class NodeStarted(_Event):
    node_id: str
    display_node_id: str | None = None


@dataclass(frozen=True, slots=True)
class Progress(_Event):
    """Step progress inside a node (`value` of `max`)."""

    node_id: str | None
    value: int
    max: int


@dataclass(frozen=True, slots=True)
class Preview(_Event):
    """A live preview image (encoded bytes, `mime` like image/jpeg)."""

    node_id: str | None
    image: bytes = field(repr=False)
    mime: str = "image/jpeg"


@dataclass(frozen=True, slots=True)
class NodeOutput(_Event):
    """An output node finished (also sent for cached output nodes, with their old outputs)."""

    node_id: str
    outputs: tuple[OutputRef, ...]
    cached: bool = False


@dataclass(frozen=True, slots=True)
class Cached(_Event):
    """Nodes served from the server's cache, not executed again."""

    node_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Completed(_Event):
    """The run finished successfully; `outputs` are every output of every output node."""

    outputs: tuple[OutputRef, ...] = ()


@dataclass(frozen=True, slots=True)
class Failed(_Event):
    error: FailureInfo


@dataclass(frozen=True, slots=True)
class Interrupted(_Event):
    node_id: str | None = None
    reason: str = "interrupted"


ExecutionEvent = (
    Queued
    | Started
    | NodeStarted
    | Progress
    | Preview
    | NodeOutput
    | Cached
    | Completed
    | Failed
    | Interrupted
)
TERMINAL_EVENTS = (Completed, Failed, Interrupted)
