"""Publishing workflows to a comfydesk gateway's shared library: create, update, delete.

A local workflow becomes a stored one by choosing which of its form's inputs the people running it may set:
each chosen input is replaced by a `{placeholder}` in a copy of the API graph (`template_graph`), which is
rendered in the /api/v1 shape and sent. `PublishModel` runs those calls on the TaskRunner and reports back
by signal; the publish dialog shows `failed` lines (the server's validation errors, in plain words).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from PySide6.QtCore import QObject, Signal

from comfydesk.app.connection import ConnectionModel
from comfydesk.app.library import LibraryModel
from comfydesk.app.run_state import PastedImage
from comfydesk.app.tasks import ErrorModel, TaskRunner
from comfydesk.core.errors import AuthenticationError, ComfyDeskError, ValidationError, ValidationIssue
from comfydesk.core.graph import ApiGraph
from comfydesk.core.templates import FormSpec
from comfydesk.core.workflow import PLACEHOLDER_RE, Workflow, workflow_to_v1

__all__ = [
    "PublishField",
    "PublishModel",
    "PublishResult",
    "WorkflowStore",
    "issue_lines",
    "name_problems",
    "publish_fields",
    "template_graph",
]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@runtime_checkable
class WorkflowStore(Protocol):
    """What a backend offers when its server keeps a workflow library (the /api/v1 gateway)."""

    async def create_workflow(
        self, name: str, description: str, nodes: list[dict[str, Any]]
    ) -> dict[str, Any]: ...

    async def update_workflow(
        self, workflow_id: str, name: str, description: str, nodes: list[dict[str, Any]]
    ) -> dict[str, Any]: ...

    async def delete_workflow(self, workflow_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class PublishField:
    """A form field the publish dialog lists: may it become a `{placeholder}`, and under which name."""

    key: str
    label: str
    placeholder: str  # the suggested name (an existing placeholder keeps its own)
    chosen: bool  # already a placeholder in the workflow


@dataclass(frozen=True, slots=True)
class PublishResult:
    action: str  # "published" | "updated" | "deleted"
    workflow_id: str
    name: str


def _identifier(text: str) -> str:
    name = re.sub(r"\W+", "_", text.strip()).strip("_").lower()
    return name if name and not name[0].isdigit() else f"input_{name}"


def publish_fields(spec: FormSpec) -> list[PublishField]:
    """The fields of `spec` in form order, each with a placeholder name unique in the workflow."""
    titles = {g.node_id: g.title for g in spec.groups}
    out = [PublishField(f.key, f.label, f.key, True) for f in spec.placeholders]
    taken = {f.key for f in spec.placeholders}
    for group in spec.groups:
        for f in group.fields:
            base = _identifier(f.input_name or f.label)
            name = base if base not in taken else f"{base}_{_identifier(group.node_id)}"
            n = 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            taken.add(name)
            label = f"{f.label} · {titles.get(group.node_id, group.node_id)} (#{group.node_id})"
            out.append(PublishField(f.key, label, name, False))
    return out


def name_problems(choices: Mapping[str, str | None]) -> list[str]:
    """What is wrong with the chosen placeholder names: not a name, or used twice."""
    problems: list[str] = []
    seen: set[str] = set()
    for name in choices.values():
        if name is None:
            continue
        if not _NAME_RE.fullmatch(name):
            problems.append(
                f"“{name}” cannot be a placeholder name: use letters, digits and _, "
                "not starting with a digit."
            )
        elif name in seen:
            problems.append(f"The placeholder name “{name}” is used twice.")
        seen.add(name)
    return problems


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _replace(text: str, placeholder: str, by: str) -> str:
    """`text` with every `{placeholder}` replaced by `by` (other placeholders stay)."""
    return PLACEHOLDER_RE.sub(lambda m: by if m.group(1) == placeholder else m.group(0), text)


def template_graph(spec: FormSpec, values: Mapping[str, Any], choices: Mapping[str, str | None]) -> ApiGraph:
    """A copy of the workflow's graph with the form's `values` and `{name}` in each chosen input.

    `choices` maps a field key to its placeholder name, or None to keep the value (an existing placeholder
    left unchosen takes the form's value). Uploaded images keep the workflow's value: a gateway has no
    upload."""
    graph = spec.graph.copy()
    for f in spec.placeholders:
        name = choices.get(f.key, f.key)
        value = values.get(f.key, f.value)
        for node_id, input_name in f.targets:
            original = graph[node_id].inputs[input_name]
            if not isinstance(original, str):
                continue
            if name is not None:
                new: Any = _replace(original, f.key, f"{{{name}}}")
            elif PLACEHOLDER_RE.fullmatch(original) and not isinstance(value, Path | PastedImage):
                new = copy.deepcopy(value)
            else:
                new = _replace(original, f.key, _as_text(value))
            graph[node_id].inputs[input_name] = new
    for group in spec.groups:
        for f in group.fields:
            assert f.node_id is not None and f.input_name is not None
            name = choices.get(f.key)
            value = values.get(f.key, f.value)
            if name is not None:
                graph[f.node_id].inputs[f.input_name] = f"{{{name}}}"
            elif not isinstance(value, Path | PastedImage):
                graph[f.node_id].inputs[f.input_name] = copy.deepcopy(value)
    return graph


def issue_lines(exc: ValidationError, graph: ApiGraph | None = None) -> list[str]:
    """One plain sentence per problem, nodes named by their titles where the graph has them."""
    lines: list[str] = []
    for issue in exc.issues:
        if graph is not None and not issue.node_title and issue.node_id in graph:
            node = graph[issue.node_id]
            title = node.title or node.class_type
            if title != issue.node_id:
                issue = ValidationIssue(issue.node_id, issue.message, issue.kind, title, issue.input_name)
        lines.append(issue.describe())
    return lines or [exc.message]


class PublishModel(QObject):
    """Creates, updates and deletes workflows in the connected gateway's library."""

    busy_changed = Signal(bool)
    done = Signal(object)  # PublishResult
    failed = Signal(object)  # list[str]: what the dialog shows, one line each
    message_changed = Signal(str)

    def __init__(
        self,
        tasks: TaskRunner,
        connection: ConnectionModel,
        library: LibraryModel,
        errors: ErrorModel,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._connection = connection
        self._library = library
        self._errors = errors
        self._busy = False

    @property
    def busy(self) -> bool:
        return self._busy

    def store(self) -> WorkflowStore | None:
        """The connected backend when it keeps a workflow library, else None."""
        backend = self._connection.backend
        return backend if isinstance(backend, WorkflowStore) else None

    # -- slots -------------------------------------------------------------------------------------
    def publish(
        self,
        name: str,
        description: str,
        spec: FormSpec,
        values: Mapping[str, Any],
        choices: Mapping[str, str | None],
        *,
        workflow_id: str | None = None,
    ) -> None:
        """Store the form's workflow on the server with the chosen inputs as placeholders (`choices`: field
        key -> placeholder name or None); as a new workflow, or replacing `workflow_id`."""
        problems = name_problems(choices)
        if not name.strip():
            problems.insert(0, "The workflow needs a name.")
        if problems:
            self.failed.emit(problems)
            return
        graph = template_graph(spec, values, choices)
        what = f"Publishing {name}" if workflow_id is None else f"Updating {name}"
        self._start(self._save(workflow_id, name.strip(), description.strip(), graph), what, graph)

    def delete(self, workflow_id: str, name: str) -> None:
        """Delete a stored workflow; failures take the usual road to the error view."""
        self._set_busy(True)
        task = self._tasks.start(self._delete(workflow_id, name), what=f"Deleting {name} from the server")
        task.add_done_callback(lambda _t: self._set_busy(False))

    # -- internals ---------------------------------------------------------------------------------
    def _start(self, coro: Any, what: str, graph: ApiGraph) -> None:
        self._set_busy(True)

        def on_error(exc: BaseException) -> None:
            if isinstance(exc, ValidationError):
                self.failed.emit(issue_lines(exc, graph))
                return
            if isinstance(exc, ComfyDeskError) and not isinstance(exc, AuthenticationError):
                self.failed.emit([exc.user_text()])
                return
            # A refused token takes the road that offers "Edit profile…"; a bug keeps its traceback there.
            self._errors.report_exception(exc, what=what)
            shown = self._errors.error
            self.failed.emit([f"{shown.message} {shown.hint}".strip() if shown is not None else str(exc)])

        task = self._tasks.start(coro, what=what, on_error=on_error)
        task.add_done_callback(lambda _t: self._set_busy(False))

    def _require_store(self) -> WorkflowStore:
        store = self.store()
        if store is None:
            raise ComfyDeskError(
                "not connected to a comfydesk gateway", hint="Connect with a /api/v1 gateway profile."
            )
        return store

    async def _save(self, workflow_id: str | None, name: str, description: str, graph: ApiGraph) -> None:
        store = self._require_store()
        nodes = workflow_to_v1(Workflow(name=name, graph=graph, description=description))["nodes"]
        if workflow_id is None:
            doc = await store.create_workflow(name, description, nodes)
            action = "published"
        else:
            doc = await store.update_workflow(workflow_id, name, description, nodes)
            action = "updated"
        new_id = str(doc.get("id", workflow_id)) if isinstance(doc, dict) else str(workflow_id)
        self._library.refresh_server()
        self._library.select(f"server:{new_id}")
        verb = "Published" if action == "published" else "Updated"
        self.message_changed.emit(f"{verb} “{name}” on the server")
        self.done.emit(PublishResult(action, new_id, name))

    async def _delete(self, workflow_id: str, name: str) -> None:
        store = self._require_store()
        await store.delete_workflow(workflow_id)
        self._library.refresh_server()
        self.message_changed.emit(f"Deleted “{name}” from the server")
        self.done.emit(PublishResult("deleted", workflow_id, name))

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)
