"""The live progress line of `comfydesk run`: one updating line on a terminal, plain lines otherwise."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from typing import IO

from comfydesk.core.events import Cached, NodeStarted, Progress, Queued, Started
from comfydesk.core.graph import ApiGraph
from comfydesk.core.limits import printable
from comfydesk.core.nodes import NodeCatalog

__all__ = ["ProgressView", "clock"]


# --------------------------------------------------------------------------------------------------------
# Progress on stderr


def clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


@dataclass
class ProgressView:
    """Tracks a run's events and renders one status line: overall %, node title, step k/n, elapsed."""

    graph: ApiGraph
    catalog: NodeCatalog
    stream: IO[str]
    tty: bool
    started_at: float = field(default_factory=time.monotonic)
    done: set[str] = field(default_factory=set)
    current: str | None = None
    step: tuple[int, int] | None = None
    reconnecting: bool = False
    _last: str = ""
    _width: int = 0

    def title(self, node_id: str) -> str:
        node = self.graph.get(node_id)
        if node is None:
            return f"node {node_id}"
        if node.title:
            return node.title
        ndef = self.catalog.get(node.class_type)
        return ndef.title if ndef else node.class_type

    def percent(self) -> int:
        total = max(len(self.graph), 1)
        frac = self.step[0] / self.step[1] if self.step and self.step[1] > 0 else 0.0
        return min(99, int(100 * (len(self.done) + frac) / total))

    def line(self) -> str:
        elapsed = clock(time.monotonic() - self.started_at)
        if self.current is None:
            what = f"{len(self.done)} cached" if self.done else "starting"
            return f"[{self.percent():3d}%] {what}  {elapsed}"
        text = f"[{self.percent():3d}%] {self.title(self.current)} (#{self.current})"
        if self.step:
            text += f"  step {self.step[0]}/{self.step[1]}"
        return f"{text}  {elapsed}"

    def show(self, text: str) -> None:
        text = printable(text)  # node titles come from the server's catalog: no terminal escapes
        if text == self._last:
            return
        self._last = text
        if self.tty:
            columns = shutil.get_terminal_size().columns - 1
            if len(text) > columns > 10:  # a wrapped line cannot be rewritten with \r
                text = text[: columns - 1] + "…"
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (queue position, reconnects), keeping the status line below it on a TTY."""
        self.end()
        self.stream.write(printable(text, keep_newlines=True) + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
        self._width = 0
        self._last = ""

    def handle(self, event: object) -> None:
        if isinstance(event, Queued):
            if event.position:
                self.message(f"queued: {event.position} ahead")
        elif isinstance(event, Started):
            self.show(self.line())
        elif isinstance(event, Cached):
            self.done.update(n for n in event.node_ids if n in self.graph)
            self.show(self.line())
        elif isinstance(event, NodeStarted):
            if self.current is not None:
                self.done.add(self.current)
            self.current, self.step = event.node_id, None
            self.show(self.line())
        elif isinstance(event, Progress):
            if event.node_id and event.node_id != self.current:
                if self.current is not None:
                    self.done.add(self.current)
                self.current = event.node_id
            self.step = (event.value, event.max)
            self.show(self.line())
