"""The wire shapes of `/api/v1/comfyui` as pydantic models: FastAPI validates bodies with them and the
OpenAPI document (`/api/v1/openapi.json`) is generated from them, so the document and the answers agree."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

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


class WorkflowNode(_Model):
    id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=200)
    inputs: dict[str, Any] = Field(default_factory=dict)


class WorkflowBody(_Model):
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
    inputs: dict[str, Any] = Field(default_factory=dict)


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
