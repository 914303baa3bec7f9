"""The journal's records: a run, an output, and the gallery's filter (immutable values)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["OutputFilter", "OutputRecord", "RunRecord"]


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    profile_id: str
    server: str
    workflow_name: str
    workflow_id: str | None
    api_graph: dict[str, Any]
    ui_graph: dict[str, Any] | None
    values: dict[str, Any]
    seed: int | None
    status: str
    error: str | None
    execution_id: str | None
    created_at: float
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class OutputRecord:
    id: int
    run_id: int
    node_id: str
    kind: str
    path: Path | None
    text: str | None
    sha256: str
    size: int
    width: int | None
    height: int | None
    mime: str
    created_at: float
    starred: bool
    workflow_name: str
    server: str
    status: str
    seed: int | None


@dataclass(frozen=True, slots=True)
class OutputFilter:
    workflow: str | None = None
    server: str | None = None
    since: float | None = None
    until: float | None = None
    status: str | None = None
    starred: bool | None = None
    text: str = ""
