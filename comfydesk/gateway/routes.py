"""The REST routes of `/api/v1/comfyui` and the generated images (see docs/api.md for the contract)."""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Security
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from comfydesk.core.errors import ValidationError, WorkflowError
from comfydesk.core.graph import ApiGraph, ApiNode
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.templates import build_form
from comfydesk.core.validate import validate_graph
from comfydesk.core.workflow import PLACEHOLDER_RE, Workflow, find_placeholders
from comfydesk.gateway.app import Gateway
from comfydesk.gateway.db import now
from comfydesk.gateway.dispatch import ExecutionRefused, NoBackend
from comfydesk.gateway.errors import ApiError, not_found
from comfydesk.gateway.schemas import (
    BackendsData,
    DeletedData,
    ErrorBody,
    ExecuteBody,
    ExecutionData,
    ExecutionsData,
    NodesData,
    Success,
    WorkflowBody,
    WorkflowData,
    WorkflowsData,
)
from comfydesk.gateway.store import TokenInfo
from comfydesk.gateway.views import execution_json, workflow_json

__all__ = ["health_router", "image_router", "router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (401, "No valid token"),
        (413, "Request body too large"),
        (422, "Invalid input"),
        (429, "Rate limit exceeded"),
        (500, "Internal error"),
    )
}
Responses = dict[int | str, dict[str, Any]]
_404: Responses = {404: {"model": ErrorBody, "description": "Unknown id"}}
_403: Responses = {403: {"model": ErrorBody, "description": "Not allowed for this token"}}
_503: Responses = {503: {"model": ErrorBody, "description": "No ComfyUI machine available"}}
# FastAPI answers a body it cannot decode at all (not UTF-8, nested too deep) with 400 before validation.
_400: Responses = {400: {"model": ErrorBody, "description": "The request body could not be read as JSON"}}
# The middleware (app.GatewayMiddleware) checks the token; this only declares the scheme in the OpenAPI
# document, so clients and tools know every route takes `Authorization: Bearer <token>`.
_bearer = HTTPBearer(auto_error=False, description="An API token from `comfydesk serve token create NAME`")
_auth = [Security(_bearer)]
# Ids are `Integer` columns: 32-bit on PostgreSQL and MySQL. A larger (or non-positive) id names nothing.
_MAX_ID = 2**31 - 1

router = APIRouter(prefix="/api/v1/comfyui", responses=_ERRORS, tags=["comfyui"], dependencies=_auth)
# For load balancers: no token, no rate limit (the middleware lets these paths through), nothing secret.
# Left out of the OpenAPI document, which describes the token-guarded API; docs/api.md describes them.
health_router = APIRouter(include_in_schema=False)
image_router = APIRouter(prefix="/api/v1/images", responses=_ERRORS, tags=["images"], dependencies=_auth)
_IMAGE_NAME = re.compile(r"^(\d{1,18})\.(png|jpg|webp|gif)$")
Status = Literal["queued", "running", "completed", "failed", "cancelled"]


def _gw(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _token(request: Request) -> TokenInfo:
    token: TokenInfo | None = request.state.token
    if token is None:  # the middleware answers 401 first; this guards a route mounted around it
        raise ApiError.single(401, "unauthorized", "Unauthorized", "A valid API token is required")
    return token


def _ok(data: dict[str, Any], status: int = 200) -> JSONResponse:
    """The success envelope, sent as it is: the routes build exactly the documented shapes (schemathesis
    checks them against the OpenAPI document), so FastAPI need not validate every answer again, which
    was most of the cost of a GET under load."""
    return JSONResponse({"status": "success", "data": data}, status_code=status)


def _catalog(gw: Gateway) -> NodeCatalog:
    catalog = gw.dispatcher.catalog()
    if catalog is None:
        raise ApiError.single(
            503,
            "backend_unavailable",
            "No ComfyUI machine available",
            "None of the gateway's ComfyUI machines has answered yet; try again shortly",
        )
    return catalog


# -- workflows -------------------------------------------------------------------------------------------


def _graph_of(nodes: list[dict[str, Any]]) -> ApiGraph:
    return ApiGraph({n["id"]: ApiNode(n["id"], n["type"], dict(n["inputs"])) for n in nodes})


def _workflow_problems(body: WorkflowBody, catalog: NodeCatalog) -> list[dict[str, Any]]:
    """Every problem of a workflow to save, one error each, naming node and input."""
    problems: list[dict[str, Any]] = []
    ids = [n.id for n in body.nodes]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(_problem(f"node id '{dup}' appears more than once", f"node '{dup}'"))
    if problems:
        return problems
    graph = _graph_of([n.model_dump() for n in body.nodes])
    for issue in validate_graph(graph, catalog, allow_placeholders=True):
        where = _where(issue.node_id, issue.input_name)
        problems.append(_problem(issue.message, where))
    for name, targets in find_placeholders(graph).items():
        for node_id, input_name in targets:
            ndef = catalog.get(graph[node_id].class_type)
            spec = ndef.input(input_name) if ndef else None
            value = graph[node_id].inputs[input_name]
            if spec is None or spec.type == "STRING" or spec.is_link_only:
                continue
            if PLACEHOLDER_RE.fullmatch(value) is None:
                problems.append(
                    _problem(
                        f"the placeholder {{{name}}} sits inside other text, but '{input_name}' takes "
                        f"{spec.type}, not text: make the placeholder the whole value",
                        _where(node_id, input_name),
                    )
                )
    return problems


def _where(node_id: str | None, input_name: str | None) -> str:
    if node_id and input_name:
        return f"node '{node_id}' input '{input_name}'"
    if node_id:
        return f"node '{node_id}'"
    return f"input '{input_name}'" if input_name else "workflow"


def _problem(message: str, details: str) -> dict[str, Any]:
    return {"code": "validation_error", "message": message, "details": details}


def _check_workflow(body: WorkflowBody, gw: Gateway) -> None:
    problems = _workflow_problems(body, _catalog(gw))
    if problems:
        raise ApiError(422, "Workflow validation failed", problems)


async def _workflow_row(gw: Gateway, workflow_id: int) -> dict[str, Any]:
    if not 1 <= workflow_id <= _MAX_ID:
        raise not_found("Workflow", workflow_id)
    row = await gw.store.read(gw.store.sync.get_workflow, workflow_id)
    if row is None:
        raise not_found("Workflow", workflow_id)
    return row


def _may_change(token: TokenInfo, row: dict[str, Any]) -> None:
    owner = row.get("owner_token_id")
    if not token.admin and owner is not None and owner != token.id:
        raise ApiError.single(
            403,
            "forbidden",
            "Forbidden",
            "Only the token that created this workflow (or an admin) may change it",
        )


@router.get("/workflows", response_model=Success[WorkflowsData], response_model_exclude_none=True)
async def list_workflows(request: Request) -> JSONResponse:
    gw = _gw(request)
    rows = await gw.store.read(gw.store.sync.list_workflows)
    return _ok({"workflows": [workflow_json(r) for r in rows]})


@router.post(
    "/workflows",
    status_code=201,
    response_model=Success[WorkflowData],
    response_model_exclude_none=True,
    responses={**_400, **_503},
)
async def create_workflow(request: Request, body: WorkflowBody) -> JSONResponse:
    gw, token = _gw(request), _token(request)
    _check_workflow(body, gw)
    row = await gw.store.write(
        gw.store.sync.create_workflow,
        name=body.name,
        description=body.description,
        nodes=[n.model_dump() for n in body.nodes],
        owner_token_id=token.id,
    )
    return _ok({"workflow": workflow_json(row)}, 201)


@router.get(
    "/workflows/{workflow_id}",
    response_model=Success[WorkflowData],
    response_model_exclude_none=True,
    responses=_404,
)
async def get_workflow(request: Request, workflow_id: int) -> JSONResponse:
    return _ok({"workflow": workflow_json(await _workflow_row(_gw(request), workflow_id))})


@router.put(
    "/workflows/{workflow_id}",
    response_model=Success[WorkflowData],
    response_model_exclude_none=True,
    responses={**_400, **_404, **_403, **_503},
)
async def update_workflow(request: Request, workflow_id: int, body: WorkflowBody) -> JSONResponse:
    gw, token = _gw(request), _token(request)
    _may_change(token, await _workflow_row(gw, workflow_id))
    _check_workflow(body, gw)
    row = await gw.store.write(
        gw.store.sync.update_workflow,
        workflow_id,
        name=body.name,
        description=body.description,
        nodes=[n.model_dump() for n in body.nodes],
    )
    if row is None:
        raise not_found("Workflow", workflow_id)
    return _ok({"workflow": workflow_json(row)})


@router.delete(
    "/workflows/{workflow_id}",
    response_model=Success[DeletedData],
    responses={**_404, **_403},
)
async def delete_workflow(request: Request, workflow_id: int) -> JSONResponse:
    gw, token = _gw(request), _token(request)
    _may_change(token, await _workflow_row(gw, workflow_id))
    if not await gw.store.write(gw.store.sync.delete_workflow, workflow_id):
        raise not_found("Workflow", workflow_id)
    return _ok({"deleted": workflow_id})


# -- executions ------------------------------------------------------------------------------------------


def _typed_graph(row: dict[str, Any], inputs: dict[str, Any], catalog: NodeCatalog) -> ApiGraph:
    """The stored graph with each `{placeholder}` filled, typed by the input it sits in; 422 per field."""
    graph = _graph_of(row["nodes"])
    try:
        form = build_form(Workflow(name=row["name"], graph=graph), catalog)
    except WorkflowError as exc:
        raise ApiError.single(
            422,
            "validation_error",
            "Validation failed",
            exc.message,
            details="the ComfyUI machines no longer offer a node type this workflow uses",
        ) from None
    names = {f.key for f in form.placeholders}
    errors = [
        {
            "code": "validation_error",
            "message": f"the workflow has no input '{key}' (it takes: {', '.join(sorted(names)) or 'none'})",
            "details": f"input '{key}'",
        }
        for key in inputs
        if key not in names
    ]
    values = {k: v for k, v in inputs.items() if k in names}
    issues = form.validate(values)
    if not issues and not errors:
        try:
            return form.fill(values)
        except ValidationError as exc:
            issues = list(exc.issues)
    for issue in issues:
        details = f"input '{issue.field_key}'" if issue.field_key else _where(issue.node_id, issue.input_name)
        errors.append({"code": "validation_error", "message": issue.message, "details": details})
    raise ApiError(422, "Validation failed", errors)


@router.post(
    "/workflows/{workflow_id}/execute",
    status_code=202,
    response_model=Success[ExecutionData],
    response_model_exclude_none=True,
    responses={**_400, **_404, **_503},
)
async def execute_workflow(request: Request, workflow_id: int, body: ExecuteBody) -> JSONResponse:
    gw, token = _gw(request), _token(request)
    row = await _workflow_row(gw, workflow_id)
    graph = _typed_graph(row, body.inputs, _catalog(gw))
    if not gw.dispatcher.healthy() and not gw.dispatcher.holding.can_hold():
        # None reachable and none coming back (a machine reconnecting gets its runs held, see hold.py).
        raise ApiError.single(
            503, "backend_unavailable", "No ComfyUI machine available", "No ComfyUI machine is reachable now"
        )
    execution = await gw.store.write(
        gw.store.sync.create_execution,
        workflow_id=workflow_id,
        token_id=token.id,
        inputs=body.inputs,
        graph=graph.to_prompt(),
        lease_owner=gw.dispatcher.instance_id,
        lease=gw.dispatcher.lease,
    )
    try:
        execution = await gw.dispatcher.submit(execution, graph, hold=True)
    except NoBackend as exc:
        raise ApiError.single(
            503,
            "backend_unavailable",
            "No ComfyUI machine available",
            "No ComfyUI machine took the run",
            details=str(exc),
        ) from None
    except ExecutionRefused as exc:
        raise ApiError(
            422,
            "Workflow execution failed",
            [
                {
                    "code": "execution_error",
                    "message": "Failed to generate image",
                    "details": f"Node error: {i}",
                }
                for i in exc.issues
            ],
        ) from None
    return _ok({"execution": execution_json(execution)}, 202)


async def _execution_row(gw: Gateway, token: TokenInfo, execution_id: int) -> dict[str, Any]:
    if not 1 <= execution_id <= _MAX_ID:
        raise not_found("Execution", execution_id)
    row = await gw.store.read(gw.store.sync.get_execution, execution_id)
    if row is None or not (token.admin or row.get("token_id") == token.id):
        raise not_found("Execution", execution_id)
    return row


async def _with_images(gw: Gateway, row: dict[str, Any]) -> dict[str, Any]:
    images = (await gw.store.read(gw.store.sync.images_of, [row["id"]]))[row["id"]]
    return execution_json(row, images)


@router.get(
    "/executions/{execution_id}",
    response_model=Success[ExecutionData],
    response_model_exclude_none=True,
    responses=_404,
)
async def get_execution(request: Request, execution_id: int) -> JSONResponse:
    gw, token = _gw(request), _token(request)
    if not 1 <= execution_id <= _MAX_ID:
        raise not_found("Execution", execution_id)
    # One trip to a database thread, not two: this is the route clients poll.
    row, images = await gw.store.read(gw.store.sync.execution_with_images, execution_id)
    if row is None or not (token.admin or row.get("token_id") == token.id):
        raise not_found("Execution", execution_id)
    return _ok({"execution": execution_json(row, images)})


@router.get("/executions", response_model=Success[ExecutionsData], response_model_exclude_none=True)
async def list_executions(
    request: Request,
    workflow_id: int | None = None,
    status: Status | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2**31),
) -> JSONResponse:
    gw, token = _gw(request), _token(request)
    if workflow_id is not None and not 1 <= workflow_id <= _MAX_ID:  # no such workflow: nothing to list
        return _ok({"executions": [], "total": 0, "limit": limit, "offset": offset})
    rows, total = await gw.store.read(
        gw.store.sync.list_executions,
        token_id=None if token.admin else token.id,
        workflow_id=workflow_id,
        status=status,
        limit=limit,
        offset=offset,
    )
    images = await gw.store.read(gw.store.sync.images_of, [r["id"] for r in rows])
    return _ok(
        {
            "executions": [execution_json(r, images[r["id"]]) for r in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


@router.post(
    "/executions/{execution_id}/cancel",
    response_model=Success[ExecutionData],
    response_model_exclude_none=True,
    responses=_404,
)
async def cancel_execution(request: Request, execution_id: int) -> JSONResponse:
    gw, token = _gw(request), _token(request)
    await _execution_row(gw, token, execution_id)
    await gw.dispatcher.cancel(execution_id)
    row = await _execution_row(gw, token, execution_id)
    return _ok({"execution": await _with_images(gw, row)})


# -- nodes, backends, images -----------------------------------------------------------------------------


@router.get("/nodes", response_model=Success[NodesData], response_model_exclude_none=True, responses=_503)
async def list_nodes(request: Request) -> JSONResponse:
    catalog = _catalog(_gw(request))
    return _ok({"nodes": [n.to_v1() for n in catalog.nodes()]})


@router.get("/backends", response_model=Success[BackendsData], responses=_403)
async def list_backends(request: Request) -> JSONResponse:
    gw, token = _gw(request), _token(request)
    if not token.admin:
        raise ApiError.single(403, "forbidden", "Forbidden", "Only an admin token may see the backends")
    return _ok({"backends": gw.dispatcher.backends_state()})


@image_router.get(
    "/generated/{file_name}",
    response_class=FileResponse,
    responses={
        **_404,
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "image/gif": {}}},
    },
)
async def get_image(request: Request, file_name: str) -> FileResponse:
    gw, token = _gw(request), _token(request)
    match = _IMAGE_NAME.match(file_name)
    if match is None:
        raise not_found("Image", file_name.rsplit(".", 1)[0][:40])
    image_id = int(match.group(1))
    row = await gw.store.read(gw.store.sync.get_image, image_id)
    if (
        row is None
        or row["deleted"]
        or row["expires_at"] <= now()
        or row["file_name"] != file_name
        or not (token.admin or row.get("token_id") == token.id)
    ):
        raise not_found("Image", image_id)
    path = gw.images.path_of(row["file_name"])
    if not path.is_file():
        raise not_found("Image", image_id)
    return FileResponse(path, media_type=row["mime"], headers={"Cache-Control": "private, max-age=60"})


# -- load balancer probes -------------------------------------------------------------------------------


@health_router.get("/healthz")
async def healthz() -> JSONResponse:
    """Liveness: the process serves requests."""
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@health_router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers, a ComfyUI machine is healthy, and the instance is not stopping."""
    ready, checks = await _gw(request).ready()
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )


# -- what every answer carries ---------------------------------------------------------------------------


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": "integer"}}


_RATE_HEADERS = {
    "X-RateLimit-Limit": _header("Requests this token may make per window (`--rate-limit`)"),
    "X-RateLimit-Remaining": _header("Requests left in the current window"),
    "X-RateLimit-Reset": _header("When the window has room again (epoch seconds)"),
}
_RETRY_AFTER = {"Retry-After": _header("Seconds to wait before trying again")}


def _document_headers(*routers: APIRouter) -> None:
    """Declare in the OpenAPI document the headers the middleware puts on every answer (success and error
    alike), and `Retry-After` on 429, so the document says what the wire carries."""
    for r in routers:
        for route in r.routes:
            if isinstance(route, APIRoute):
                route.responses = {
                    code: {
                        **route.responses.get(code, {}),
                        "headers": {**_RATE_HEADERS, **(_RETRY_AFTER if code == 429 else {})},
                    }
                    for code in {route.status_code or 200, *route.responses}
                }


_document_headers(router, image_router)
