"""Rows as the API shows them: the spec's field order, ISO 8601 UTC timestamps with a `Z`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["execution_json", "image_url", "iso", "workflow_json"]

IMAGE_ROUTE = "/api/v1/images/generated"


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_url(file_name: str) -> str:
    return f"{IMAGE_ROUTE}/{file_name}"


def workflow_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "nodes": row["nodes"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def execution_json(row: Mapping[str, Any], images: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """`outputs` once completed (the spec's GET shows it, its execute answer does not); `error` when the
    run failed or was cancelled."""
    out: dict[str, Any] = {
        "id": row["id"],
        "workflow_id": row["workflow_id"],
        "status": row["status"],
        "progress": int(row["progress"]),
    }
    if row["status"] == "completed" or images:
        out["outputs"] = {
            "images": [
                {"url": image_url(i["file_name"]), "width": i["width"], "height": i["height"]} for i in images
            ]
        }
    if row.get("error"):
        out["error"] = row["error"]
    out["created_at"] = iso(row["created_at"])
    out["updated_at"] = iso(row["updated_at"])
    return out
