"""The wire shapes of `/api/v1/comfyui` as pydantic models: FastAPI validates bodies with them and the
OpenAPI document (`/api/v1/openapi.json`) is generated from them, so the document and the answers agree."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "BackendOut",
    "ErrorBody",
    "ErrorItem",
    "ExecuteBody",
    "ExecutionError",
    "ExecutionOut",
    "ImageOut",
    "NodeOut",
    "Success",
    "WorkflowBody",
    "WorkflowNode",
    "WorkflowOut",
]

D = TypeVar("D")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorItem(_Model):
    code: str
    message: str
    details: str | None = None


class ErrorBody(_Model):
    status: Literal["error"] = "error"
    message: str
    errors: list[ErrorItem]


class Success(BaseModel, Generic[D]):
    status: Literal["success"] = "success"
    data: D


def _encodable(value: Any, where: str = "") -> Any:
    """`value` when every text in it (dict keys too) is valid Unicode. JSON can carry an unpaired surrogate
    (`"\\ud800"`) that UTF-8 cannot, so such a value could be stored but never sent on to ComfyUI or
    answered: it is refused here, as the `str` fields refuse it."""
    if isinstance(value, str) and not _is_unicode(value):
        raise ValueError(f"{where or 'a value'}: {_SURROGATE}")
    if isinstance(value, dict):
        for key, item in value.items():
            readable = str(key).encode("utf-8", "backslashreplace").decode("utf-8")
            if not _is_unicode(str(key)):
                raise ValueError(f"the key '{readable}'{' in ' + where if where else ''}: {_SURROGATE}")
            _encodable(item, f"{where}.{readable}" if where else readable)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _encodable(item, f"{where}[{i}]")
    return value


_SURROGATE = "text with an unpaired surrogate (\\ud800-\\udfff) is not Unicode"


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Input values are free-form JSON (literals, links, placeholders), checked only for being valid Unicode.
Inputs = Annotated[dict[str, Any], AfterValidator(_encodable)]


class WorkflowNode(_Model):
    id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=200)
    inputs: Inputs = Field(default_factory=dict)


# The spec's "Blog Post Image" workflow and its execute inputs: the OpenAPI document's examples.
_BLOG_POST_IMAGE: dict[str, Any] = {
    "name": "Blog Post Image",
    "description": "Generate blog post header image",
    "nodes": [
        {
            "id": "text_to_image",
            "type": "text_to_image",
            "inputs": {"prompt": "{prompt}", "negative_prompt": "{negative_prompt}"},
        }
    ],
}
_BLOG_POST_INPUTS: dict[str, Any] = {
    "inputs": {"prompt": "A beautiful landscape", "negative_prompt": "ugly, blurry"}
}


class WorkflowBody(_Model):
    model_config = ConfigDict(json_schema_extra={"examples": [_BLOG_POST_IMAGE]})
    name: str = Field(min_length=1, max_length=500)
    description: str = Field(default="", max_length=10_000)
    nodes: list[WorkflowNode] = Field(min_length=1, max_length=5_000)


class WorkflowOut(_Model):
    id: int
    name: str
    description: str
    nodes: list[WorkflowNode]
    created_at: str
    updated_at: str


class ExecuteBody(_Model):
    model_config = ConfigDict(json_schema_extra={"examples": [_BLOG_POST_INPUTS]})
    inputs: Inputs = Field(default_factory=dict)


class ImageOut(_Model):
    url: str
    width: int
    height: int


class OutputsOut(_Model):
    images: list[ImageOut]


class ExecutionError(_Model):
    code: str
    message: str
    details: str | None = None
    node_id: str | None = None
    node_type: str | None = None
    exception_type: str | None = None
    traceback: list[str] | None = None


class ExecutionOut(_Model):
    id: int
    workflow_id: int
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    progress: int = Field(ge=0, le=100)
    outputs: OutputsOut | None = None
    error: ExecutionError | None = None
    created_at: str
    updated_at: str


class NodeInputOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    type: str
    comfy_type: str
    required: bool


class NodeOutputOut(_Model):
    name: str
    type: str
    comfy_type: str


class NodeOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    description: str
    inputs: list[NodeInputOut]
    outputs: list[NodeOutputOut]


class BackendOut(_Model):
    url: str
    healthy: bool
    queue: int
    version: str
    error: str
    missing_nodes: list[str]
    extra_nodes: list[str]


class WorkflowData(_Model):
    workflow: WorkflowOut


class WorkflowsData(_Model):
    workflows: list[WorkflowOut]


class DeletedData(_Model):
    deleted: int


class ExecutionData(_Model):
    execution: ExecutionOut


class ExecutionsData(_Model):
    executions: list[ExecutionOut]
    total: int
    limit: int
    offset: int


class NodesData(_Model):
    nodes: list[NodeOut]


class BackendsData(_Model):
    backends: list[BackendOut]
