"""The API-format graph: what `POST /prompt` takes, `{node_id: {class_type, inputs, _meta?}}`.

An input value is a literal or a link `[source_node_id, output_index]`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from comfydesk.core.errors import WorkflowFormatError

__all__ = ["ApiGraph", "ApiNode", "is_link"]


def is_link(value: Any) -> bool:
    """True when an input value is a link `[node_id, output_index]` (node id a string or int)."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


@dataclass
class ApiNode:
    """One node of an API graph."""

    id: str
    class_type: str
    inputs: dict[str, Any] = field(default_factory=dict)
    title: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"inputs": copy.deepcopy(self.inputs)}
        if not self.class_type:  # a node type the editor did not know (lenient conversion)
            out["_meta"] = {"title": self.title} if self.title else {}
            return out
        out["class_type"] = self.class_type
        if self.title:
            out["_meta"] = {"title": self.title}
        return out


class ApiGraph(Mapping[str, ApiNode]):
    """An API-format prompt, node ids as strings, in insertion order."""

    def __init__(self, nodes: Mapping[str, ApiNode] | None = None) -> None:
        self._nodes: dict[str, ApiNode] = dict(nodes or {})

    @classmethod
    def from_prompt(cls, prompt: Any, *, source: str | None = None) -> ApiGraph:
        """Build from the JSON object of an API-format workflow; raises WorkflowFormatError."""
        if not isinstance(prompt, dict):
            raise WorkflowFormatError(
                f"an API-format workflow must be a JSON object, got {type(prompt).__name__}",
                source=source,
            )
        nodes: dict[str, ApiNode] = {}
        for node_id, raw in prompt.items():
            if not isinstance(raw, dict):
                raise WorkflowFormatError(f"node {node_id} is not an object", source=source)
            class_type = raw.get("class_type")
            if not isinstance(class_type, str) or not class_type:
                raise WorkflowFormatError(f"node {node_id} has no 'class_type'", source=source)
            inputs = raw.get("inputs", {})
            if not isinstance(inputs, dict):
                raise WorkflowFormatError(f"node {node_id}: 'inputs' is not an object", source=source)
            meta = raw.get("_meta")
            title = meta.get("title", "") if isinstance(meta, dict) else ""
            nodes[str(node_id)] = ApiNode(
                id=str(node_id),
                class_type=class_type,
                inputs={
                    k: ([str(v[0]), v[1]] if is_link(v) else copy.deepcopy(v)) for k, v in inputs.items()
                },
                title=title if isinstance(title, str) else "",
            )
        return cls(nodes)

    def to_prompt(self) -> dict[str, Any]:
        """The JSON object to POST as `prompt`."""
        return {nid: node.to_json() for nid, node in self._nodes.items()}

    def copy(self) -> ApiGraph:
        return ApiGraph(
            {
                nid: ApiNode(n.id, n.class_type, copy.deepcopy(n.inputs), n.title)
                for nid, n in self._nodes.items()
            }
        )

    def title_of(self, node_id: str) -> str:
        node = self._nodes.get(node_id)
        return node.title if node and node.title else (node.class_type if node else "")

    def __getitem__(self, node_id: str) -> ApiNode:
        return self._nodes[node_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return f"ApiGraph({len(self)} nodes)"
