"""`/api/jobs` (new in ComfyUI 0.8): the queue and the history as one list of jobs, newest first."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from comfydesk.testing.app import FakeServer
from comfydesk.testing.routes import json_response
from comfydesk.testing.state import QueueItem

__all__ = ["ROUTES"]

_STATUSES = ("pending", "in_progress", "completed", "failed")


def _queued(item: QueueItem, status: str) -> dict[str, Any]:
    return {
        "id": item.prompt_id,
        "status": status,
        "priority": item.number,
        "create_time": item.extra_data.get("create_time"),
        "outputs_count": 0,
    }


def _finished(prompt_id: str, entry: dict[str, Any], full: bool) -> dict[str, Any]:
    number, _, prompt, extra_data, _ = entry["prompt"]
    status = entry["status"]
    stamps = [m[1].get("timestamp") for m in status["messages"]]
    job: dict[str, Any] = {
        "id": prompt_id,
        "status": "completed" if status["status_str"] == "success" else "failed",
        "priority": number,
        "create_time": extra_data.get("create_time"),
        "execution_start_time": stamps[0] if stamps else None,
        "execution_end_time": stamps[-1] if stamps else None,
    }
    previews = [
        {**item, "nodeId": node, "mediaType": kind}
        for node, out in entry["outputs"].items()
        for kind, items in out.items()
        if kind in ("images", "video", "audio")
        for item in items
        if isinstance(item, dict)
    ]
    job["outputs_count"] = len(previews)
    if previews:
        job["preview_output"] = previews[0]
    if full:
        job["outputs"] = entry["outputs"]
        job["execution_status"] = status
        job["workflow"] = {"prompt": prompt, "extra_data": extra_data}
    return job


def _all_jobs(fake: FakeServer, full: bool = False) -> list[dict[str, Any]]:
    state = fake.state
    with state.lock:
        jobs = [_queued(i, "pending") for i in state.pending]
        if state.running is not None:
            jobs.append(_queued(state.running, "in_progress"))
        jobs += [_finished(pid, entry, full) for pid, entry in state.history.items()]
    jobs.sort(key=lambda j: j.get("create_time") or 0, reverse=True)
    return jobs


async def list_jobs(request: Request) -> Response:
    fake: FakeServer = request.app.state.fake
    wanted = [s for s in request.query_params.get("status", "").split(",") if s]
    bad = [s for s in wanted if s not in _STATUSES]
    if bad:
        message = f"Invalid status value(s): {', '.join(bad)}. Valid values: {', '.join(_STATUSES)}"
        return json_response({"error": message}, status=400)
    jobs = [j for j in _all_jobs(fake) if not wanted or j["status"] in wanted]
    offset = int(request.query_params.get("offset", 0))
    limit_param = request.query_params.get("limit")
    limit = int(limit_param) if limit_param else None
    page = jobs[offset : offset + limit] if limit is not None else jobs[offset:]
    pagination = {
        "offset": offset,
        "limit": limit,
        "total": len(jobs),
        "has_more": offset + len(page) < len(jobs),
    }
    return json_response({"jobs": page, "pagination": pagination})


async def get_job(request: Request) -> Response:
    fake: FakeServer = request.app.state.fake
    job_id = request.path_params["job_id"]
    for job in _all_jobs(fake, full=True):
        if job["id"] == job_id:
            return json_response(job)
    return json_response({"error": "Job not found"}, status=404)


ROUTES = [Route("/jobs", list_jobs, methods=["GET"]), Route("/jobs/{job_id}", get_job, methods=["GET"])]
