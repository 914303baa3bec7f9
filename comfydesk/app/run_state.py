"""The state of the current run, driven by core execution events.

`RunState` turns the backend's event stream into a few signals a view can bind to. It is built for floods: a
sampler can send thousands of `Progress` events and a preview per step, so step progress is throttled (at most
one emission per `STEP_THROTTLE_MS`), and previews are decoded in a worker thread with only the newest pending
frame kept. Lifecycle signals (`status_changed`, `node_changed`, `failed`, `finished`) are emitted at once and
in order, so a test (or a log) can assert the sequence of states.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QImage

from comfydesk.app.images import decode_image_async
from comfydesk.core.errors import UnsafeInputError
from comfydesk.core.events import (
    Cached,
    Completed,
    ExecutionStatus,
    Failed,
    Interrupted,
    NodeOutput,
    NodeStarted,
    Preview,
    Progress,
    Queued,
    Started,
)
from comfydesk.core.graph import ApiGraph

__all__ = ["PREVIEW_MAX_SIZE", "STEP_THROTTLE_MS", "PastedImage", "ResultItem", "RunState"]

log = logging.getLogger(__name__)

STEP_THROTTLE_MS = 30
"""At most one step-progress emission per this many milliseconds (the last value always lands)."""

PREVIEW_MAX_SIZE = (1024, 1024)
"""Live previews are scaled to fit this box while decoding; the canvas scales them to fit its room."""


@dataclass(frozen=True, slots=True)
class PastedImage:
    """An image pasted into an image field: encoded bytes the caller stores and uploads."""

    data: bytes = field(repr=False)
    mime: str = "image/png"


@dataclass(slots=True)
class ResultItem:
    """One result image of a run, as the results strip shows it."""

    path: Path
    execution_id: str
    workflow_name: str
    node_id: str
    created: datetime
    thumbnail: QImage | None = None
    workflow_key: str = ""  # the library key of the workflow that made it
    batch_id: str = ""  # the same for every run of one press of Run
    batch_index: int = 0  # this run's place in its batch


class RunState(QObject):
    """State of the current run; `apply` every core event of it, `begin` a new one, `reset` to idle."""

    status_changed = Signal(object)  # ExecutionStatus | None
    queue_position_changed = Signal(object)  # int | None
    node_changed = Signal(str, str)  # node id, title ("" when none)
    step_progress_changed = Signal(int, int)  # value, max
    eta_changed = Signal(object)  # float seconds | None
    overall_progress_changed = Signal(int, int)  # done nodes (cached included), total nodes
    preview_changed = Signal(object)  # QImage
    failed = Signal(object)  # FailureInfo
    finished = Signal(object)  # the terminal event

    def __init__(self, parent: QObject | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(parent)
        self._clock = clock
        self._generation = 0
        self._execution_id: str | None = None
        self._workflow_key = ""
        self._graph: ApiGraph = ApiGraph()
        self._titles: dict[str, str] = {}
        self._batch = (0, 1)
        self._status: ExecutionStatus | None = None
        self._queue_position: int | None = None
        self._node: str = ""
        self._done: set[str] = set()
        self._overall = (0, 0)
        self._step = (0, 0)
        self._eta: float | None = None
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._rate_origin: tuple[float, int] | None = None  # (time, value) of the node's first step event
        self._pending_step: tuple[int, int] | None = None
        self._eta_pending: float | None = None
        self._step_timer = QTimer(self)
        self._step_timer.setSingleShot(True)
        self._step_timer.setInterval(STEP_THROTTLE_MS)
        self._step_timer.timeout.connect(self._flush_step)
        self._preview_pending: bytes | None = None
        self._preview_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # strong references until done (asyncio keeps weak ones)
        self._preview: QImage | None = None

    # ----------------------------------------------------------------------------------------- read access
    @property
    def execution_id(self) -> str | None:
        return self._execution_id

    @property
    def workflow_key(self) -> str:
        """The library key of the workflow the followed run belongs to ("" when none or unknown)."""
        return self._workflow_key

    @property
    def status(self) -> ExecutionStatus | None:
        return self._status

    @property
    def queue_position(self) -> int | None:
        return self._queue_position

    @property
    def node(self) -> tuple[str, str]:
        """(node id, title) of the node executing now, ("", "") when none."""
        return self._node, self._title(self._node) if self._node else ""

    @property
    def step_progress(self) -> tuple[int, int]:
        return self._step

    @property
    def eta(self) -> float | None:
        return self._eta

    @property
    def overall_progress(self) -> tuple[int, int]:
        return self._overall

    @property
    def preview(self) -> QImage | None:
        return self._preview

    @property
    def batch(self) -> tuple[int, int]:
        """(index, total) of this run in its batch."""
        return self._batch

    def node_title(self, node_id: str) -> str:
        """The title shown for a node of the current graph."""
        return self._title(node_id)

    def elapsed(self) -> float:
        """Seconds since `Started` (frozen once the run ended); 0.0 before it started."""
        if self._started_at is None:
            return 0.0
        end = self._ended_at if self._ended_at is not None else self._clock()
        return max(0.0, end - self._started_at)

    # ----------------------------------------------------------------------------------------- slots
    def begin(
        self,
        execution_id: str,
        *,
        graph: ApiGraph,
        node_titles: Mapping[str, str],
        batch_index: int = 0,
        batch_total: int = 1,
        workflow_key: str = "",
    ) -> None:
        """Start following `execution_id` (a run of the workflow `workflow_key`); the run is queued until its
        `Started` event."""
        self._clear()
        self._execution_id = execution_id
        self._workflow_key = workflow_key
        self._graph = graph
        self._titles = dict(node_titles)
        self._batch = (batch_index, batch_total)
        self._set_status(ExecutionStatus.QUEUED)
        self._set_overall(0, len(graph))

    def reset(self) -> None:
        """Back to idle: no run followed."""
        self._clear()
        self._workflow_key = ""
        self._graph = ApiGraph()
        self._titles = {}
        self._batch = (0, 1)
        self._set_status(None)
        self._set_overall(0, 0)

    def apply(self, event: object) -> None:
        """Take one core event; events of other executions (or after the end) are ignored."""
        if self._execution_id is None or getattr(event, "execution_id", None) != self._execution_id:
            return
        if self._status is not None and self._status.finished:
            return
        match event:
            case Progress():
                self._on_progress(event)
            case Preview():
                self._on_preview(event)
            case Queued(position=position):
                if self._status is ExecutionStatus.QUEUED:
                    self._set_queue_position(position)
            case Started():
                self._mark_started()
            case NodeStarted(node_id=node_id):
                self._mark_started()
                self._enter_node(node_id)
            case Cached(node_ids=node_ids):
                self._mark_started()
                self._mark_done(node_ids)
            case NodeOutput(node_id=node_id):
                self._mark_done((node_id,))
            case Completed():
                self._finish(ExecutionStatus.COMPLETED, event, all_done=True)
            case Failed(error=error):
                self._finish(ExecutionStatus.FAILED, event, failure=error)
            case Interrupted():
                self._finish(ExecutionStatus.CANCELLED, event)
            case _:
                pass

    # ----------------------------------------------------------------------------------------- internals
    def _clear(self) -> None:
        self._generation += 1  # a preview still decoding for the old run is dropped when it lands
        self._execution_id = None
        self._step_timer.stop()
        self._pending_step = None
        self._preview_pending = None
        self._preview_task = None
        self._preview = None
        self._done = set()
        self._started_at = None
        self._ended_at = None
        self._rate_origin = None
        self._set_queue_position(None)
        self._set_node("")
        self._set_step(0, 0)
        self._set_eta(None)

    def _title(self, node_id: str) -> str:
        if node_id in self._titles:
            return self._titles[node_id]
        return self._graph.title_of(node_id) or node_id

    def _set_status(self, status: ExecutionStatus | None) -> None:
        if status != self._status:
            self._status = status
            self.status_changed.emit(status)

    def _set_queue_position(self, position: int | None) -> None:
        if position != self._queue_position:
            self._queue_position = position
            self.queue_position_changed.emit(position)

    def _set_node(self, node_id: str) -> None:
        if node_id != self._node:
            self._node = node_id
            self.node_changed.emit(node_id, self._title(node_id) if node_id else "")

    def _set_step(self, value: int, maximum: int) -> None:
        if (value, maximum) != self._step:
            self._step = (value, maximum)
            self.step_progress_changed.emit(value, maximum)

    def _set_eta(self, eta: float | None) -> None:
        if eta is not None:
            eta = round(eta, 1)
        if eta != self._eta:
            self._eta = eta
            self.eta_changed.emit(eta)

    def _set_overall(self, done: int, total: int) -> None:
        if (done, total) != self._overall:
            self._overall = (done, total)
            self.overall_progress_changed.emit(done, total)

    def _mark_started(self) -> None:
        if self._started_at is None:
            self._started_at = self._clock()
        self._set_queue_position(None)
        self._set_status(ExecutionStatus.RUNNING)

    def _enter_node(self, node_id: str) -> None:
        if self._node and self._node != node_id:
            self._mark_done((self._node,))  # ComfyUI runs one node at a time: starting one ends the last
        self._flush_step()
        self._rate_origin = None
        self._set_node(node_id)
        self._set_step(0, 0)
        self._set_eta(None)

    def _mark_done(self, node_ids: tuple[str, ...] | list[str]) -> None:
        known = set(self._graph) if len(self._graph) else None
        self._done.update(n for n in node_ids if known is None or n in known)
        total = max(len(self._graph), len(self._done))
        self._set_overall(min(len(self._done), total), total)

    def _on_progress(self, event: Progress) -> None:
        self._mark_started()
        if event.node_id and event.node_id != self._node:
            self._enter_node(event.node_id)
        now = self._clock()
        value, maximum = event.value, event.max
        if self._rate_origin is None or value < self._rate_origin[1]:
            self._rate_origin = (now, value)
        t0, v0 = self._rate_origin
        if value > v0 and now > t0:
            rate = (value - v0) / (now - t0)
            self._eta_pending = max(0.0, (maximum - value) / rate)
        else:
            self._eta_pending = None
        self._pending_step = (value, maximum)
        if not self._step_timer.isActive():
            self._flush_step()  # leading edge: the first step of a burst shows at once
            self._step_timer.start()

    def _flush_step(self) -> None:
        if self._pending_step is None:
            return
        value, maximum = self._pending_step
        self._pending_step = None
        self._set_step(value, maximum)
        self._set_eta(self._eta_pending)
        if self._status is not None and not self._status.finished:
            self._step_timer.start()  # trailing edge: keep throttling while events keep coming

    def _on_preview(self, event: Preview) -> None:
        self._mark_started()
        self._preview_pending = event.image  # a newer frame replaces one not yet decoded
        if self._preview_task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                log.debug("no running asyncio loop: preview dropped")
                self._preview_pending = None
                return
            task = loop.create_task(self._decode_previews(self._generation))
            self._preview_task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _decode_previews(self, generation: int) -> None:
        try:
            while generation == self._generation and self._preview_pending is not None:
                data, self._preview_pending = self._preview_pending, None
                try:
                    image = await decode_image_async(data, max_size=PREVIEW_MAX_SIZE)
                except UnsafeInputError as exc:
                    log.warning("preview frame skipped: %s", exc)
                    continue
                if generation != self._generation:
                    return
                self._preview = image
                self.preview_changed.emit(image)
        finally:
            if generation == self._generation:
                self._preview_task = None

    def _finish(
        self,
        status: ExecutionStatus,
        event: object,
        *,
        all_done: bool = False,
        failure: object = None,
    ) -> None:
        self._flush_step()
        self._step_timer.stop()
        if self._started_at is not None:
            self._ended_at = self._clock()
        if all_done:
            total = len(self._graph)
            self._done.update(self._graph)
            self._set_overall(total, total)
            self._set_eta(None)
        self._set_queue_position(None)
        self._set_node("")
        self._set_status(status)
        if failure is not None:
            self.failed.emit(failure)
        self.finished.emit(event)
