"""The ComfyUI wire protocol as pure functions: WebSocket messages -> core events, HTTP bodies -> core types.

No I/O here, so every captured transcript can be replayed through `ProtocolMapper` in a unit test. The
mapper is stateful per client: it knows which prompts this client submitted (`track`), which node is
executing (to attribute legacy type-1 preview frames), and, per run, what has already been delivered, so
that a reconnect can top up from `/history` without sending anything twice.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from comfydesk.backends.base import BackendEvent, HistoryEntry, QueueChanged
from comfydesk.core.errors import (
    UnsafeInputError,
)
from comfydesk.core.events import (
    Cached,
    Completed,
    ExecutionEvent,
    Failed,
    FailureInfo,
    Interrupted,
    NodeOutput,
    NodeStarted,
    OutputRef,
    Preview,
    Progress,
    Started,
)
from comfydesk.core.limits import loads_bounded, printable

__all__ = [
    "FEATURE_FLAGS_MESSAGE",
    "LOST_RUN_MESSAGE",
    "BinaryPreview",
    "ProtocolMapper",
    "RunState",
    "events_from_history",
    "history_entry_from_json",
    "history_shows_finished",
    "lost_connection_message",
    "missing_outputs_from_history",
    "outputs_from_ui",
    "parse_binary_frame",
    "safe_output_name",
]

log = logging.getLogger(__name__)

FEATURE_FLAGS_MESSAGE: dict[str, Any] = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
LOST_RUN_MESSAGE = "the server restarted and lost this run"


def lost_connection_message(server: str) -> str:
    """Why a run ends when the connection is given up: we can no longer know what became of it."""
    return (
        f"the connection to {server} was lost and could not be re-established; "
        "the outcome of this run is unknown (it may still finish on the server)"
    )


_PREVIEW_IMAGE = 1
_PREVIEW_IMAGE_WITH_METADATA = 4
_IMAGE_FORMATS = {1: "image/jpeg", 2: "image/png"}
# ui-dict keys that describe outputs rather than being outputs (SaveAnimatedWEBP adds `animated`).
_NON_OUTPUT_KEYS = frozenset({"animated"})
# The real server serialises with json.dumps defaults; this prefix lets the hottest message skip parsing.
PROGRESS_STATE_PREFIX = '{"type": "progress_state"'


# --------------------------------------------------------------------------------------------------------
# Binary frames


@dataclass(frozen=True, slots=True)
class BinaryPreview:
    """A decoded preview frame; `node_id`/`prompt_id` only for type-4 frames (metadata)."""

    image: bytes
    mime: str
    node_id: str | None = None
    prompt_id: str | None = None
    display_node_id: str | None = None


def parse_binary_frame(frame: bytes) -> BinaryPreview | None:
    """Decode a binary WebSocket frame; None for frame types that carry no preview (or are malformed)."""
    if len(frame) < 8:
        return None
    (event_type,) = struct.unpack(">I", frame[:4])
    if event_type == _PREVIEW_IMAGE:
        (fmt,) = struct.unpack(">I", frame[4:8])
        return BinaryPreview(image=frame[8:], mime=_IMAGE_FORMATS.get(fmt, "image/jpeg"))
    if event_type == _PREVIEW_IMAGE_WITH_METADATA:
        (length,) = struct.unpack(">I", frame[4:8])
        if len(frame) < 8 + length:
            return None
        try:
            meta = loads_bounded(frame[8 : 8 + length].decode("utf-8"))
        except ValueError:  # not UTF-8, not JSON, or nested past the limits (a RecursionError before)
            return None
        if not isinstance(meta, dict):
            return None
        return BinaryPreview(
            image=frame[8 + length :],
            mime=str(meta.get("image_type") or "image/jpeg"),
            node_id=_opt_str(meta.get("node_id")),
            prompt_id=_opt_str(meta.get("prompt_id")),
            display_node_id=_opt_str(meta.get("display_node_id")),
        )
    return None


def _opt_str(value: Any) -> str | None:
    return None if value is None else printable(str(value))


def _ids(value: Any) -> tuple[str, ...]:
    """Node ids from a list the server sends (`nodes`, `executed`); anything else reads as none."""
    if not isinstance(value, list):
        return ()
    return tuple(printable(str(n)) for n in value if isinstance(n, str | int) and not isinstance(n, bool))


# --------------------------------------------------------------------------------------------------------
# Outputs


def outputs_from_ui(node_id: str, ui: Any) -> tuple[OutputRef, ...]:
    """Turn a node's ui dict (`{"images": [{filename, subfolder, type}]}`, `{"text": [...]}`) into refs."""
    if not isinstance(ui, Mapping):
        return ()
    refs: list[OutputRef] = []
    for kind, items in ui.items():
        if kind in _NON_OUTPUT_KEYS or not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, Mapping) and "filename" in item:
                refs.append(
                    OutputRef(
                        node_id=node_id,
                        kind=str(kind),
                        filename=str(item.get("filename") or ""),
                        subfolder=str(item.get("subfolder") or ""),
                        type=str(item.get("type") or "output"),
                    )
                )
            else:
                refs.append(OutputRef(node_id=node_id, kind=str(kind), data=item))
    return tuple(refs)


def safe_output_name(ref: OutputRef) -> str:
    """The output's file name, safe to join to a local directory; raises UnsafeInputError otherwise.

    Control characters (terminal escapes, line breaks) are removed first: the name reaches a terminal,
    logs and the file system."""
    name = printable(ref.filename).strip()
    if (
        "\x00" in ref.filename
        or not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or ".." in name
    ):
        raise UnsafeInputError(
            f"refusing the server's output file name {printable(repr(ref.filename))}: it is empty or "
            "contains a path",
            hint="The server sent a file name that could escape the output folder.",
        )
    if len(name) >= 2 and name[1] == ":":
        raise UnsafeInputError(f"refusing the server's output file name {name!r}: it names a drive")
    sub = ref.subfolder.replace("\\", "/")
    if sub.startswith("/") or "\x00" in sub or ".." in sub.split("/") or (len(sub) >= 2 and sub[1] == ":"):
        raise UnsafeInputError(f"refusing the server's output subfolder {ref.subfolder!r}")
    return _portable_name(name)


_NOT_PORTABLE = re.compile(r'[<>:"|?*]')
_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{kind}{n}" for kind in ("COM", "LPT") for n in (*"0123456789", "\u00b9", "\u00b2", "\u00b3")}
)
MAX_OUTPUT_NAME_BYTES = 200
"""Longest output file name, in UTF-8 bytes (file systems allow 255; room is left for a `-<n>` suffix)."""


def _portable_name(name: str) -> str:
    """`name` as a file name every system accepts: Windows' reserved characters replaced, no trailing dots or
    spaces (Windows drops them), not a device name (`CON`, `nul.png`, `COM1.txt`: prefixed with `_`), and
    at most `MAX_OUTPUT_NAME_BYTES` long, its extension kept."""
    name = _NOT_PORTABLE.sub("_", name)
    if len(name.encode("utf-8")) > MAX_OUTPUT_NAME_BYTES:
        dot = name.rfind(".")
        suffix = name[dot:] if dot > 0 and len(name[dot:].encode("utf-8")) <= 16 else ""
        room = MAX_OUTPUT_NAME_BYTES - len(suffix.encode("utf-8"))
        name = name[: len(name) - len(suffix)].encode("utf-8")[:room].decode("utf-8", "ignore") + suffix
    name = name.rstrip(". ") or "output"
    if name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED_NAMES:
        name = f"_{name}"
    return name


# --------------------------------------------------------------------------------------------------------
# Per-run state and the message mapper


@dataclass(slots=True)
class RunState:
    """What this client knows and has delivered about one of its prompts."""

    prompt_id: str
    cached_nodes: frozenset[str] = frozenset()
    outputs: list[OutputRef] = field(default_factory=list)
    delivered_nodes: set[str] = field(default_factory=set)
    started: bool = False
    terminal: bool = False
    # Set when the socket dropped while this run was unfinished: messages may be missing.
    gap: bool = False


KEEP_ENDED_RUNS = 256
"""Ended runs the mapper still recognises (newest first); older ones are forgotten."""


class ProtocolMapper:
    """Maps ComfyUI WebSocket messages to core events for the prompts this client tracks."""

    def __init__(self, *, track_all: bool = False) -> None:
        self.runs: dict[str, RunState] = {}
        self.track_all = track_all
        self.current_prompt: str | None = None
        self.current_node: str | None = None
        self.server_sends_terminals = False
        self.features: dict[str, Any] = {}
        self.last_remaining: int | None = None

    def track(self, prompt_id: str) -> RunState:
        run = self.runs.get(prompt_id)
        if run is None:
            run = self.runs[prompt_id] = RunState(prompt_id)
            if len(self.runs) > KEEP_ENDED_RUNS * 2:
                self._forget_oldest_ended()
        return run

    def _forget_oldest_ended(self) -> None:
        """An overnight batch must not keep every run it ever saw: ended runs are kept (so that a late
        message about one is recognised and ignored) only for the newest KEEP_ENDED_RUNS."""
        ended = [pid for pid, r in self.runs.items() if r.terminal]
        for pid in ended[: max(0, len(ended) - KEEP_ENDED_RUNS)]:
            del self.runs[pid]

    def forget(self, prompt_id: str) -> None:
        self.runs.pop(prompt_id, None)

    def unfinished(self) -> list[RunState]:
        return [r for r in self.runs.values() if not r.terminal]

    def reset_connection(self) -> None:
        """A new socket: the queue length will be re-announced and the executing node is unknown."""
        self.last_remaining = None
        self.current_prompt = None
        self.current_node = None

    def _run(self, prompt_id: Any) -> RunState | None:
        if not isinstance(prompt_id, str):
            return None
        run = self.runs.get(prompt_id)
        if run is None and self.track_all:
            run = self.track(prompt_id)
        return run

    # -- text messages --------------------------------------------------------------------------------

    def feed_text(self, raw: str) -> list[BackendEvent]:
        """Map one text frame; cheap for `progress_state`, the most frequent message."""
        if raw.startswith(PROGRESS_STATE_PREFIX):
            return []
        try:
            msg = loads_bounded(raw)
        except ValueError:  # not JSON, or nested / sized past what any real message is (JsonTooComplex)
            log.warning("skipped a WebSocket message that is not usable JSON: %s", printable(raw[:120]))
            return []
        return self.feed(msg)

    def feed(self, msg: Any) -> list[BackendEvent]:
        """Map one parsed text message."""
        if not isinstance(msg, dict):
            return []
        kind = msg.get("type")
        data = msg.get("data")
        if not isinstance(data, dict) or kind == "progress_state":
            return []
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        return handler(self, data) if handler else []

    def _on_status(self, data: dict[str, Any]) -> list[BackendEvent]:
        status = data.get("status")
        exec_info = status.get("exec_info") if isinstance(status, dict) else None
        remaining = exec_info.get("queue_remaining") if isinstance(exec_info, dict) else None
        if not isinstance(remaining, int) or remaining == self.last_remaining:
            return []
        self.last_remaining = remaining
        return [QueueChanged(remaining)]

    def _on_feature_flags(self, data: dict[str, Any]) -> list[BackendEvent]:
        self.features = dict(data)
        return []

    def _on_execution_start(self, data: dict[str, Any]) -> list[BackendEvent]:
        pid = data.get("prompt_id")
        run = self._run(pid)
        self.current_prompt = pid if isinstance(pid, str) else None
        self.current_node = None
        if run is None or run.started or run.terminal:
            return []
        run.started = True
        return [Started(run.prompt_id)]

    def _on_execution_cached(self, data: dict[str, Any]) -> list[BackendEvent]:
        run = self._run(data.get("prompt_id"))
        if run is None or run.terminal:
            return []
        nodes = _ids(data.get("nodes"))
        run.cached_nodes = run.cached_nodes | frozenset(nodes)
        return [*self._begin(run), Cached(run.prompt_id, nodes)]

    def _on_executing(self, data: dict[str, Any]) -> list[BackendEvent]:
        pid = data.get("prompt_id")
        node = data.get("node")
        run = self._run(pid)
        if node is None:
            # Legacy end-of-prompt signal; it follows execution_success/_error/_interrupted on servers that
            # send those, so it only ends a run on servers that never do.
            if self.current_prompt == pid:
                self.current_prompt = self.current_node = None
            if run is None or run.terminal or self.server_sends_terminals:
                return []
            return self._finish(run, Completed(run.prompt_id, tuple(run.outputs)))
        self.current_prompt = pid if isinstance(pid, str) else self.current_prompt
        self.current_node = str(node)
        if run is None or run.terminal:
            return []
        display = data.get("display_node")
        return [
            *self._begin(run),
            NodeStarted(run.prompt_id, str(node), None if display is None else str(display)),
        ]

    def _on_progress(self, data: dict[str, Any]) -> list[BackendEvent]:
        pid = data.get("prompt_id")
        node = data.get("node")
        if isinstance(pid, str):
            self.current_prompt = pid
        if node is not None:
            self.current_node = str(node)
        run = self._run(pid)
        if run is None or run.terminal:
            return []
        try:
            value, maximum = int(data.get("value", 0)), int(data.get("max", 0))
        except (TypeError, ValueError):
            return []
        return [
            *self._begin(run),
            Progress(run.prompt_id, None if node is None else str(node), value, maximum),
        ]

    def _on_executed(self, data: dict[str, Any]) -> list[BackendEvent]:
        run = self._run(data.get("prompt_id"))
        node = data.get("node")
        if run is None or run.terminal or node is None:
            return []
        node_id = str(node)
        if node_id in run.delivered_nodes:
            return []
        refs = outputs_from_ui(node_id, data.get("output"))
        run.delivered_nodes.add(node_id)
        run.outputs.extend(refs)
        return [
            *self._begin(run),
            NodeOutput(run.prompt_id, node_id, refs, cached=node_id in run.cached_nodes),
        ]

    def _on_execution_success(self, data: dict[str, Any]) -> list[BackendEvent]:
        self.server_sends_terminals = True
        run = self._run(data.get("prompt_id"))
        if run is None or run.terminal:
            return []
        return self._finish(run, Completed(run.prompt_id, tuple(run.outputs)))

    def _on_execution_error(self, data: dict[str, Any]) -> list[BackendEvent]:
        self.server_sends_terminals = True
        run = self._run(data.get("prompt_id"))
        if run is None or run.terminal:
            return []
        return self._finish(run, Failed(run.prompt_id, failure_from_error(data)))

    def _on_execution_interrupted(self, data: dict[str, Any]) -> list[BackendEvent]:
        self.server_sends_terminals = True
        run = self._run(data.get("prompt_id"))
        if run is None or run.terminal:
            return []
        return self._finish(run, Interrupted(run.prompt_id, _opt_str(data.get("node_id"))))

    def _begin(self, run: RunState) -> list[BackendEvent]:
        """`Started` when a run's `execution_start` was lost (socket gap) and it evidently runs."""
        if run.started:
            return []
        run.started = True
        return [Started(run.prompt_id)]

    def _finish(self, run: RunState, event: ExecutionEvent) -> list[BackendEvent]:
        run.terminal = True
        if self.current_prompt == run.prompt_id:
            self.current_prompt = self.current_node = None
        return [*self._begin(run), event]

    # -- binary frames --------------------------------------------------------------------------------

    def feed_binary(self, frame: bytes) -> list[BackendEvent]:
        """Map a binary frame; a type-1 preview belongs to the node executing now."""
        preview = parse_binary_frame(frame)
        if preview is None:
            return []
        pid = preview.prompt_id if preview.prompt_id is not None else self.current_prompt
        node = preview.node_id if preview.node_id is not None else self.current_node
        run = self._run(pid)
        if run is None or run.terminal:
            return []
        return [*self._begin(run), Preview(run.prompt_id, node, preview.image, preview.mime)]


def failure_from_error(data: Mapping[str, Any]) -> FailureInfo:
    """FailureInfo from an `execution_error` message (also found in history messages)."""
    tb = data.get("traceback")
    return FailureInfo(
        message=printable(
            str(data.get("exception_message") or "the node failed"), keep_newlines=True
        ).strip(),
        node_id=_opt_str(data.get("node_id")),
        node_type=_opt_str(data.get("node_type")),
        exception_type=printable(str(data.get("exception_type") or "")),
        traceback=tuple(printable(str(line), keep_newlines=True) for line in tb)
        if isinstance(tb, list)
        else (),
        executed=_ids(data.get("executed")),
    )


_HANDLERS = {
    "status": ProtocolMapper._on_status,
    "feature_flags": ProtocolMapper._on_feature_flags,
    "execution_start": ProtocolMapper._on_execution_start,
    "execution_cached": ProtocolMapper._on_execution_cached,
    "executing": ProtocolMapper._on_executing,
    "progress": ProtocolMapper._on_progress,
    "executed": ProtocolMapper._on_executed,
    "execution_success": ProtocolMapper._on_execution_success,
    "execution_error": ProtocolMapper._on_execution_error,
    "execution_interrupted": ProtocolMapper._on_execution_interrupted,
}


# --------------------------------------------------------------------------------------------------------
# History and queue documents


def _history_messages(entry: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    status = entry.get("status")
    raw = status.get("messages") if isinstance(status, dict) else None
    out: list[tuple[str, dict[str, Any]]] = []
    for item in raw if isinstance(raw, list) else ():
        if (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], dict)
        ):
            out.append((item[0], item[1]))
    return out


def _history_outputs(entry: Mapping[str, Any]) -> list[tuple[str, tuple[OutputRef, ...]]]:
    outputs = entry.get("outputs")
    if not isinstance(outputs, dict):
        return []
    return [(str(node_id), outputs_from_ui(str(node_id), ui)) for node_id, ui in outputs.items()]


def history_entry_from_json(prompt_id: str, entry: Any) -> HistoryEntry:
    """One `/history` entry as a HistoryEntry (`interrupted` when the run was stopped)."""
    if not isinstance(entry, Mapping):
        return HistoryEntry(prompt_id, "unknown", False)
    status = entry.get("status")
    status_str = str(status.get("status_str") or "unknown") if isinstance(status, dict) else "unknown"
    completed = bool(status.get("completed")) if isinstance(status, dict) else False
    messages = _history_messages(entry)
    if any(name == "execution_interrupted" for name, _ in messages):
        status_str = "interrupted"
    outputs = tuple(ref for _, refs in _history_outputs(entry) for ref in refs)
    return HistoryEntry(prompt_id, status_str, completed, outputs, tuple(messages))


def events_from_history(run: RunState, entry: Mapping[str, Any]) -> list[ExecutionEvent]:
    """The events a run still owes its consumer, from its `/history` entry; updates `run` so none repeat.

    Returns [] when the entry does not show a finished run yet.
    """
    if run.terminal:
        return []
    messages = _history_messages(entry)
    names = {name for name, _ in messages}
    status = entry.get("status")
    status_str = status.get("status_str") if isinstance(status, dict) else None
    if not history_shows_finished(entry):
        return []
    events: list[ExecutionEvent] = []
    if not run.started and "execution_start" in names:
        run.started = True
        events.append(Started(run.prompt_id))
    events += missing_outputs_from_history(run, entry)
    terminal: ExecutionEvent | None = None
    for name, data in messages:
        if name == "execution_error":
            terminal = Failed(run.prompt_id, failure_from_error(data))
        elif name == "execution_interrupted":
            terminal = Interrupted(run.prompt_id, _opt_str(data.get("node_id")))
    if terminal is None:
        if status_str == "error":
            terminal = Failed(run.prompt_id, FailureInfo("the server reported an error for this run"))
        else:
            terminal = Completed(run.prompt_id, tuple(run.outputs))
    run.terminal = True
    events.append(terminal)
    return events


def missing_outputs_from_history(run: RunState, entry: Mapping[str, Any]) -> list[NodeOutput]:
    """NodeOutputs in a history entry that the run has not delivered yet (marks them delivered)."""
    for name, data in _history_messages(entry):
        if name == "execution_cached":
            run.cached_nodes = run.cached_nodes | frozenset(_ids(data.get("nodes")))
    events: list[NodeOutput] = []
    for node_id, refs in _history_outputs(entry):
        if node_id in run.delivered_nodes:
            continue
        run.delivered_nodes.add(node_id)
        run.outputs.extend(refs)
        events.append(NodeOutput(run.prompt_id, node_id, refs, cached=node_id in run.cached_nodes))
    return events


def history_shows_finished(entry: Mapping[str, Any]) -> bool:
    """True when a /history entry records the end of its run."""
    names = {name for name, _ in _history_messages(entry)}
    status = entry.get("status")
    status_str = status.get("status_str") if isinstance(status, dict) else None
    return bool(names & {"execution_success", "execution_error", "execution_interrupted"}) or (
        status_str in ("success", "error")
    )
