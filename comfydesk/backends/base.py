"""The Backend protocol: what the app needs from a server, whatever the server speaks.

Both the native ComfyUI backend (`comfydesk.backends.comfyui`) and the `/api/v1` backend implement it. A
backend yields core types and ONE async stream, `events()`, of everything that happens: execution events
for every execution this client submitted (`comfydesk.core.events`), plus `ConnectionChanged` and
`QueueChanged`. The app layer drives the whole UI from that stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from comfydesk.core.events import ExecutionEvent, OutputRef
from comfydesk.core.graph import ApiGraph
from comfydesk.core.nodes import NodeCatalog

__all__ = [
    "Backend",
    "BackendEvent",
    "ConnectionChanged",
    "ConnectionState",
    "ConnectionStatus",
    "DeviceInfo",
    "Execution",
    "HistoryEntry",
    "QueueChanged",
    "QueueItem",
    "ServerInfo",
    "Throttled",
    "UploadedImage",
    "WorkflowSummary",
]


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """Where the connection stands; `attempt`/`next_try_in` while reconnecting, `reason` when down."""

    state: ConnectionState
    attempt: int = 0
    next_try_in: float | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    status: ConnectionStatus


@dataclass(frozen=True, slots=True)
class QueueChanged:
    """The server's queue length changed (`remaining` counts running + pending, all clients)."""

    remaining: int


@dataclass(frozen=True, slots=True)
class Throttled:
    """The server said "too many requests" (HTTP 429): the backend waits `retry_after` seconds, then retries
    `what` by itself. Shown to the user so the wait is visible."""

    retry_after: float
    what: str = ""


BackendEvent = ExecutionEvent | ConnectionChanged | QueueChanged | Throttled


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    name: str
    type: str
    vram_total: int | None = None
    vram_free: int | None = None


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What `check` prints and the status bar shows."""

    kind: str  # "comfyui" or "comfydesk-gateway"
    version: str
    url: str
    name: str = ""
    python_version: str = ""
    os: str = ""
    devices: tuple[DeviceInfo, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkflowSummary:
    """A workflow the server offers. `source` is `userdata`, `template` or `v1`."""

    id: str
    name: str
    source: str
    description: str = ""
    category: str = ""


@dataclass(frozen=True, slots=True)
class Execution:
    """A submitted run. `id` is the server's prompt id (ComfyUI) or execution id (/api/v1)."""

    id: str
    number: int | None = None
    graph: ApiGraph | None = None
    workflow_id: str | None = None


@dataclass(frozen=True, slots=True)
class QueueItem:
    execution_id: str
    number: float
    running: bool
    mine: bool
    position: int = 0


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    execution_id: str
    status: str  # "success" | "error" | "interrupted" | "unknown"
    completed: bool
    outputs: tuple[OutputRef, ...] = ()
    messages: tuple[tuple[str, Mapping[str, Any]], ...] = ()


@dataclass(frozen=True, slots=True)
class UploadedImage:
    name: str
    subfolder: str = ""
    type: str = "input"

    @property
    def input_value(self) -> str:
        """The value a LoadImage `image` input takes."""
        return f"{self.subfolder}/{self.name}" if self.subfolder else self.name


@runtime_checkable
class Backend(Protocol):
    """A connection to one server. All methods raise `comfydesk.core.errors.BackendError` subclasses."""

    url: str

    async def connect(self) -> None:
        """Open the event stream (WebSocket); returns once connected or raises ServerUnreachable."""

    async def close(self) -> None: ...

    @property
    def status(self) -> ConnectionStatus: ...

    async def server_info(self) -> ServerInfo: ...

    async def node_catalog(self, *, refresh: bool = False) -> NodeCatalog: ...

    async def list_workflows(self) -> list[WorkflowSummary]: ...

    async def get_workflow(self, workflow_id: str) -> Any:
        """The workflow document (API, UI or /api/v1 shape) as parsed JSON."""

    async def submit(
        self,
        graph: ApiGraph | None = None,
        *,
        workflow_id: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        front: bool = False,
        ui_workflow: Mapping[str, Any] | None = None,
        prompt_id: str | None = None,
    ) -> Execution:
        """Start a run. `ui_workflow`, the UI-format document `graph` came from, travels along where the
        server can keep it (ComfyUI embeds it in saved images, as its own frontend does). `prompt_id` is an
        id the caller chose and recorded before posting, where the server takes one (ComfyUI does; a
        gateway chooses its own and ignores it)."""

    async def cancel(self, execution_id: str) -> None:
        """Remove a pending execution, or interrupt it when it is running."""

    async def interrupt(self) -> None: ...

    async def queue(self) -> list[QueueItem]: ...

    async def clear_queue(self) -> None: ...

    async def history(self, execution_id: str | None = None) -> list[HistoryEntry]: ...

    async def fetch_output(self, ref: OutputRef) -> bytes: ...

    async def upload_image(
        self, data: bytes, filename: str, *, subfolder: str = "", overwrite: bool = False
    ) -> UploadedImage: ...

    def events(self) -> AsyncIterator[BackendEvent]: ...
