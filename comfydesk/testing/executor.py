"""The fake's prompt worker: one thread that takes queued prompts and executes them like ComfyUI's
`PromptExecutor` (same message order, caching by input signature, interrupt at step checks)."""

from __future__ import annotations

import io
import json
import threading
import traceback
from collections.abc import Mapping
from typing import Any

from PIL import Image

from comfydesk.testing.demo_nodes import DEMO_NODES
from comfydesk.testing.engine import (
    NODES,
    Dirs,
    Interrupted,
    NodeContext,
    NodeResult,
    annotated_path,
    file_hash,
)
from comfydesk.testing.hub import Hub
from comfydesk.testing.state import FakeState, QueueItem, now_ms

__all__ = ["Executor"]

JSON = dict[str, Any]
IMPLEMENTATIONS = {**NODES, **DEMO_NODES}
_PREVIEW_MAX = 512


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def _jpeg(image: Image.Image) -> bytes:
    img = image.convert("RGB")
    if max(img.size) > _PREVIEW_MAX:
        img.thumbnail((_PREVIEW_MAX, _PREVIEW_MAX))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _describe(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], Image.Image):
        w, h = value[0].size
        return f"<IMAGE batch of {len(value)}, {w}x{h}>"
    return str(value)


def _num(value: Any) -> str:
    """A number as `json.dumps` writes it: an int (not a bool) as its digits, anything else through it."""
    return str(value) if type(value) is int else json.dumps(value)


def progress_text(value: Any, total: Any, quoted_pid: str, quoted_nid: str) -> str:
    """`json.dumps({"type": "progress", "data": {"value": value, "max": total, "prompt_id": ..., "node":
    ...}})`, the ids given already as json.dumps writes them: the text of a step's `progress` message."""
    return (
        f'{{"type": "progress", "data": {{"value": {_num(value)}, "max": {_num(total)}, '
        f'"prompt_id": {quoted_pid}, "node": {quoted_nid}}}}}'
    )


class _Progress:
    """ComfyUI's progress registry: every state change sends the full map of non-pending nodes.

    The message is the text `json.dumps` makes of `{"type": "progress_state", "data": {"prompt_id": ...,
    "nodes": {...}}}` (each node `{"value", "max", "state", "node_id", "prompt_id", "display_node_id",
    "parent_node_id": null, "real_node_id"}`), built from each node's part (`"<id>": {...}`, as json.dumps
    writes it inside the map), of which only the changed node's is written again: a sampler's step writes
    one node, not the whole map. tests/unit/test_fake_messages.py checks it against json.dumps."""

    def __init__(self, executor: Executor, item: QueueItem) -> None:
        self.ex, self.item = executor, item
        self.nodes: dict[str, JSON] = {}
        self._parts: dict[str, str] = {}  # same keys in the same order as `nodes`
        self.quoted_pid = json.dumps(item.prompt_id)
        self._quoted: dict[str, str] = {}
        self._head = '{"type": "progress_state", "data": {"prompt_id": ' + self.quoted_pid + ', "nodes": {'

    def quote(self, text: str) -> str:
        """`json.dumps(text)` of a node id or state, kept."""
        quoted = self._quoted.get(text)
        if quoted is None:
            quoted = self._quoted[text] = json.dumps(text)
        return quoted

    def _send(self, nid: str) -> None:
        s, q, qp = self.nodes[nid], self.quote(nid), self.quoted_pid
        value, total, state = _num(s["value"]), _num(s["max"]), self.quote(s["state"])
        self._parts[nid] = (
            f'{q}: {{"value": {value}, "max": {total}, "state": {state}, '
            f'"node_id": {q}, "prompt_id": {qp}, "display_node_id": {q}, "parent_node_id": null, '
            f'"real_node_id": {q}}}'
        )
        self.ex.send_client_text(self.item, self._head + ", ".join(self._parts.values()) + "}}}")

    def start(self, nid: str) -> None:
        self.nodes[nid] = {"value": 0.0, "max": 1.0, "state": "running"}
        self._send(nid)

    def update(self, nid: str, value: float, total: float) -> None:
        self.nodes[nid] = {"value": value, "max": total, "state": "running"}
        self._send(nid)

    def finish(self, nid: str) -> None:
        state = self.nodes.setdefault(nid, {"value": 0, "max": 1, "state": "pending"})
        state["state"], state["value"] = "finished", state["max"]
        self._send(nid)


class Executor:
    """Runs queued prompts on a daemon thread until `stop()`."""

    def __init__(
        self, state: FakeState, hub: Hub, object_info: Mapping[str, Any], dirs: Dirs, step_delay: float
    ):
        self.state, self.hub, self.info, self.dirs = state, hub, object_info, dirs
        self.step_delay = step_delay
        self.cache: dict[str, NodeResult] = {}
        self._stop = threading.Event()
        self._generation = state.generation
        self._thread = threading.Thread(target=self._run, name="fake-comfyui-executor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.state.interrupt.set()
        with self.state.changed:
            self.state.changed.notify_all()
        self._thread.join(timeout=5)

    def reset(self) -> None:
        """Forget the cache (a server restart)."""
        self.cache = {}

    # -- sending ---------------------------------------------------------------------------------------

    def send_client(self, item: QueueItem, event: str, data: JSON) -> None:
        if item.client_id is not None and self.state.generation == self._generation:
            self.hub.send(event, data, item.client_id)

    def send_client_text(self, item: QueueItem, text: str) -> None:
        """`send_client` of a message already serialized (the text `Hub.send` would make of it)."""
        if item.client_id is not None and self.state.generation == self._generation:
            self.hub.send_text(text, item.client_id)

    # -- the loop --------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.state.take_next(timeout=0.2)
            if item is None:
                continue
            self._generation = generation = self.state.generation
            self.hub.broadcast_status()
            try:
                entry = self._execute(item)
            except Exception:  # pragma: no cover - a bug in the fake must not kill the worker
                traceback.print_exc()
                entry = None
            with self.state.changed:
                if self.state.generation != generation:
                    continue
                self.state.running = None
                if entry is not None:
                    self.state.history[item.prompt_id] = entry
                self.state.prompts_executed += 1
                self.state.changed.notify_all()
            self.hub.current = (None, None)
            self.hub.broadcast_status()
            self.send_client(item, "executing", {"node": None, "prompt_id": item.prompt_id})

    def _input_names(self, class_type: str) -> set[str]:
        sections = self.info.get(class_type, {}).get("input") or {}
        return {name for key in ("required", "optional") for name in (sections.get(key) or {})}

    def _signatures(self, prompt: JSON) -> dict[str, str]:
        sigs: dict[str, str] = {}

        def sig(nid: str, seen: frozenset[str]) -> str:
            if nid in sigs:
                return sigs[nid]
            node = prompt[nid]
            class_type = node["class_type"]
            changed = ""
            if class_type == "LoadImage" and isinstance(node["inputs"].get("image"), str):
                changed = file_hash(annotated_path(node["inputs"]["image"], self.dirs.input, self.dirs))
            parts: list[Any] = [class_type, changed]
            for name in sorted(node["inputs"]):
                value = node["inputs"][name]
                if _is_link(value) and value[0] in prompt and value[0] not in seen:
                    parts.append([name, "link", sig(value[0], seen | {nid}), value[1]])
                else:
                    parts.append([name, value])
            sigs[nid] = json.dumps(parts, sort_keys=True, default=str)
            return sigs[nid]

        for nid in prompt:
            sig(nid, frozenset())
        return sigs

    def _order(self, prompt: JSON, outputs: list[str], cached: set[str]) -> list[str]:
        """ComfyUI's ExecutionList: depth-first pending set, then pick output nodes early."""
        pending: dict[str, None] = {}
        blocking: dict[str, set[str]] = {}
        block_count: dict[str, int] = {}

        def add(root: str) -> None:
            stack, links = [root], []
            while stack:
                nid = stack.pop()
                if nid in pending:
                    continue
                pending[nid] = None
                blocking.setdefault(nid, set())
                block_count.setdefault(nid, 0)
                for value in prompt[nid]["inputs"].values():
                    if _is_link(value) and value[0] in prompt:
                        if value[0] not in cached:
                            stack.append(value[0])
                        links.append((value[0], nid))
            for src, dst in links:
                if src in cached:
                    continue
                add(src)
                if dst not in blocking[src]:
                    blocking[src].add(dst)
                    block_count[dst] += 1

        for o in outputs:
            add(o)

        def is_output(nid: str) -> bool:
            return bool(self.info.get(prompt[nid]["class_type"], {}).get("output_node"))

        order: list[str] = []
        while pending:
            ready = [n for n in pending if block_count[n] == 0]
            if not ready:
                break
            pick = next((n for n in ready if is_output(n)), None)
            pick = pick or next((n for n in ready if any(is_output(b) for b in blocking[n])), None)
            pick = pick or next(
                (n for n in ready if any(is_output(c) for b in blocking[n] for c in blocking[b])), None
            )
            pick = pick or ready[0]
            order.append(pick)
            del pending[pick]
            for dst in blocking[pick]:
                block_count[dst] -= 1
        return order

    def _execute(self, item: QueueItem) -> JSON:
        prompt, pid = item.prompt, item.prompt_id
        messages: list[list[Any]] = []
        self.state.interrupt.clear()

        def add_message(event: str, data: JSON, broadcast: bool = False) -> None:
            data["timestamp"] = now_ms()
            messages.append([event, data])
            if item.client_id is not None:
                self.send_client(item, event, data)
            elif broadcast and self.state.generation == self._generation:
                self.hub.send(event, data)

        add_message("execution_start", {"prompt_id": pid})
        sigs = self._signatures(prompt)
        used = set(sigs.values())
        self.cache = {k: v for k, v in self.cache.items() if k in used}
        cached = [nid for nid in prompt if sigs[nid] in self.cache]
        add_message("execution_cached", {"nodes": cached, "prompt_id": pid})
        progress = _Progress(self, item)
        results: dict[str, NodeResult] = {nid: self.cache[sigs[nid]] for nid in cached}
        executed: list[str] = []
        ui_outputs: dict[str, JSON] = {}
        success = True
        for nid in self._order(prompt, item.outputs, set(cached)):
            node = prompt[nid]
            if nid in results:
                ui = results[nid].ui
                if item.client_id is not None:
                    data = {"node": nid, "display_node": nid, "output": ui, "prompt_id": pid}
                    self.send_client(item, "executed", data)
                if ui is not None:
                    ui_outputs[nid] = ui
                progress.finish(nid)
                continue
            progress.start(nid)
            self.hub.current = (item.client_id, nid)
            self.send_client(item, "executing", {"node": nid, "display_node": nid, "prompt_id": pid})
            inputs = {
                k: (results[v[0]].outputs[v[1]] if _is_link(v) else v)
                for k, v in node["inputs"].items()
                if k in self._input_names(node["class_type"])
            }
            try:
                result = self._run_node(item, nid, node["class_type"], inputs, progress)
            except Interrupted:
                success = False
                event = {
                    "prompt_id": pid,
                    "node_id": nid,
                    "node_type": node["class_type"],
                    "executed": executed,
                }
                add_message("execution_interrupted", event, broadcast=True)
                break
            except Exception as ex:
                success = False
                add_message(
                    "execution_error",
                    {
                        "prompt_id": pid,
                        "node_id": nid,
                        "node_type": node["class_type"],
                        "executed": list(executed),
                        "exception_message": f"{ex}\n",
                        "exception_type": type(ex).__qualname__,
                        "traceback": traceback.format_tb(ex.__traceback__),
                        "current_inputs": {k: [_describe(v)] for k, v in inputs.items()},
                        "current_outputs": list(prompt),
                    },
                )
                break
            results[nid] = result
            self.cache[sigs[nid]] = result
            executed.append(nid)
            if result.ui is not None:
                ui_outputs[nid] = result.ui
                data = {"node": nid, "display_node": nid, "output": result.ui, "prompt_id": pid}
                self.send_client(item, "executed", data)
            progress.finish(nid)
        if success:
            add_message("execution_success", {"prompt_id": pid})
        meta = {
            nid: {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}
            for nid in ui_outputs
        }
        return {
            "prompt": item.as_list(),
            "outputs": ui_outputs,
            "status": {
                "status_str": "success" if success else "error",
                "completed": success,
                "messages": messages,
            },
            "meta": meta,
        }

    def _run_node(
        self, item: QueueItem, nid: str, class_type: str, inputs: JSON, progress: _Progress
    ) -> NodeResult:
        generation = self._generation

        def on_progress(value: int, total: int, preview: Image.Image | None) -> None:
            if self.state.interrupt.is_set() or self.state.generation != generation or self._stop.is_set():
                raise Interrupted()
            progress.update(nid, value, total)
            if item.client_id is None:
                return
            if preview is None:
                text = progress_text(value, total, progress.quoted_pid, progress.quote(nid))
                self.send_client_text(item, text)
                return
            data = {"value": value, "max": total, "prompt_id": item.prompt_id, "node": nid}
            meta = {
                "node_id": nid,
                "prompt_id": item.prompt_id,
                "display_node_id": nid,
                "parent_node_id": None,
                "real_node_id": nid,
                "image_type": "image/jpeg",
            }
            self.hub.send_preview(item.client_id, data, _jpeg(preview), meta)

        if self.state.interrupt.is_set():
            raise Interrupted()
        fn = IMPLEMENTATIONS.get(class_type)
        if fn is None:
            raise NotImplementedError(
                f"The comfydesk fake/demo engine has no implementation for node type {class_type!r}; "
                "it can validate this node but not run it (no AI models here)."
            )
        extra = item.extra_data.get("extra_pnginfo")
        ctx = NodeContext(
            node_id=nid,
            prompt_id=item.prompt_id,
            prompt=item.prompt,
            extra_pnginfo=extra if isinstance(extra, dict) else None,
            dirs=self.dirs,
            step_delay=self.step_delay,
            interrupt=self.state.interrupt,
            progress=on_progress,
        )
        return fn(ctx, **inputs)
