"""HTTP routes of the fake ComfyUI: prompts, queue, history, interrupt and the catalogue/info endpoints.

Status codes, content types and bodies follow the captures of a real ComfyUI 0.8.0 server."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from comfydesk.testing.app import FakeServer
from comfydesk.testing.state import QueueItem, now_ms
from comfydesk.testing.validation import MalformedPrompt, validate_prompt

__all__ = ["ROUTES", "json_response", "unknown_route"]

_TROUBLE = "500 Internal Server Error\n\nServer got itself in trouble"
_SENSITIVE = ("auth_token_comfy_org", "api_key_comfy_org")


def json_response(data: Any, status: int = 200) -> Response:
    """aiohttp's `json_response`: `json.dumps` defaults and `application/json; charset=utf-8`."""
    return Response(json.dumps(data), status_code=status, media_type="application/json; charset=utf-8")


def _fake(request: Request) -> FakeServer:
    fake: FakeServer = request.app.state.fake
    return fake


async def _json_body(request: Request) -> Any:
    body = await request.body()
    return json.loads(body) if body else None


async def unknown_route(request: Request) -> Response:
    return Response(b"", status_code=404, media_type="application/octet-stream")


async def get_prompt(request: Request) -> Response:
    return json_response({"exec_info": {"queue_remaining": _fake(request).state.queue_remaining()}})


async def post_prompt(request: Request) -> Response:
    fake = _fake(request)
    state = fake.state
    try:
        data = json.loads(await request.body())
    except ValueError:
        return PlainTextResponse(_TROUBLE, status_code=500)
    if not isinstance(data, (dict, list, str)):
        return PlainTextResponse(_TROUBLE, status_code=500)
    with state.lock:
        state.prompts_posted += 1
        if isinstance(data, dict) and "number" in data:
            try:
                number: int | float = float(data["number"])
            except (TypeError, ValueError):
                return PlainTextResponse(_TROUBLE, status_code=500)
        else:
            number = state.number
            if isinstance(data, dict) and data.get("front"):
                number = -number
            state.number += 1
    if not isinstance(data, dict) or "prompt" not in data:
        error = {
            "type": "no_prompt",
            "message": "No prompt provided",
            "details": "No prompt provided",
            "extra_info": {},
        }
        return json_response({"error": error, "node_errors": {}}, status=400)
    prompt = data["prompt"]
    prompt_id = str(data.get("prompt_id", uuid.uuid4()))
    targets = data.get("partial_execution_targets")
    try:
        valid = validate_prompt(
            prompt,
            fake.live_object_info(),
            image_exists=fake.image_exists,
            partial_execution_targets=targets if isinstance(targets, list) else None,
        )
    except (MalformedPrompt, TypeError, KeyError, AttributeError):
        return PlainTextResponse(_TROUBLE, status_code=500)
    if not valid.ok:
        return json_response({"error": valid.error, "node_errors": valid.node_errors}, status=400)
    extra = data.get("extra_data")
    extra_data: dict[str, Any] = extra if isinstance(extra, dict) else {}
    if "client_id" in data:
        extra_data["client_id"] = data["client_id"]
    for key in _SENSITIVE:
        extra_data.pop(key, None)
    extra_data["create_time"] = now_ms()
    state.put(QueueItem(number, prompt_id, prompt, extra_data, valid.outputs))
    fake.hub.broadcast_status()
    return json_response({"prompt_id": prompt_id, "number": number, "node_errors": valid.node_errors})


async def get_queue(request: Request) -> Response:
    return json_response(_fake(request).state.snapshot_queue())


async def post_queue(request: Request) -> Response:
    fake = _fake(request)
    try:
        data = await _json_body(request)
    except ValueError:
        return PlainTextResponse(_TROUBLE, status_code=500)
    if isinstance(data, dict):
        if data.get("clear"):
            fake.state.clear_pending()
            fake.hub.broadcast_status()
        for prompt_id in data.get("delete") or []:
            if fake.state.delete_pending([prompt_id]):
                fake.hub.broadcast_status()
    return Response(status_code=200)


async def post_interrupt(request: Request) -> Response:
    fake = _fake(request)
    try:
        data = await _json_body(request)
    except ValueError:
        data = None
    wanted = data.get("prompt_id") if isinstance(data, dict) else None
    with fake.state.lock:
        running = fake.state.running
        if wanted is None or (running is not None and running.prompt_id == wanted):
            fake.state.interrupt.set()
    return Response(status_code=200)


async def get_history(request: Request) -> Response:
    state = _fake(request).state
    max_items = request.query_params.get("max_items")
    offset = int(request.query_params.get("offset", -1))
    with state.lock:
        items = list(state.history.items())
    limit = int(max_items) if max_items is not None else None
    if offset < 0 and limit is not None:
        offset = len(items) - limit
    selected = items[max(offset, 0) :]
    if limit is not None:
        selected = selected[:limit]
    return json_response(dict(selected))


async def get_history_item(request: Request) -> Response:
    state = _fake(request).state
    prompt_id = request.path_params["prompt_id"]
    with state.lock:
        entry = state.history.get(prompt_id)
    return json_response({prompt_id: entry} if entry is not None else {})


async def post_history(request: Request) -> Response:
    state = _fake(request).state
    try:
        data = await _json_body(request)
    except ValueError:
        return PlainTextResponse(_TROUBLE, status_code=500)
    if isinstance(data, dict):
        with state.lock:
            if data.get("clear"):
                state.history.clear()
            for prompt_id in data.get("delete") or []:
                state.history.pop(prompt_id, None)
    return Response(status_code=200)


async def get_object_info(request: Request) -> Response:
    return json_response(_fake(request).live_object_info())


async def get_object_info_class(request: Request) -> Response:
    return json_response(_fake(request).live_object_info(request.path_params["node_class"]))


async def get_system_stats(request: Request) -> Response:
    return json_response(_fake(request).system_stats())


async def get_features(request: Request) -> Response:
    return json_response(_fake(request).features)


def _models(fake: FakeServer) -> list[str]:
    models: list[str] = fake.capture("models.json", ["checkpoints", "loras", "vae"])
    return models


async def get_models(request: Request) -> Response:
    return json_response(_models(_fake(request)))


async def get_models_folder(request: Request) -> Response:
    fake = _fake(request)
    folder = request.path_params["folder"]
    if folder not in _models(fake):
        return Response(status_code=404)
    if folder in fake.model_files:
        return json_response(fake.model_files[folder])
    return json_response(fake.capture(f"models_{folder}.json", []))


async def get_embeddings(request: Request) -> Response:
    return json_response(_fake(request).capture("embeddings.json", []))


async def get_extensions(request: Request) -> Response:
    fake = _fake(request)
    return json_response([] if fake.config.demo else fake.capture("extensions.json", []))


async def get_workflow_templates(request: Request) -> Response:
    return json_response({})


async def get_users(request: Request) -> Response:
    return json_response({"storage": "server", "migrated": False})


ROUTES = [
    Route("/prompt", get_prompt, methods=["GET"]),
    Route("/prompt", post_prompt, methods=["POST"]),
    Route("/queue", get_queue, methods=["GET"]),
    Route("/queue", post_queue, methods=["POST"]),
    Route("/interrupt", post_interrupt, methods=["POST"]),
    Route("/history", get_history, methods=["GET"]),
    Route("/history", post_history, methods=["POST"]),
    Route("/history/{prompt_id}", get_history_item, methods=["GET"]),
    Route("/object_info", get_object_info, methods=["GET"]),
    Route("/object_info/{node_class}", get_object_info_class, methods=["GET"]),
    Route("/system_stats", get_system_stats, methods=["GET"]),
    Route("/features", get_features, methods=["GET"]),
    Route("/models", get_models, methods=["GET"]),
    Route("/models/{folder}", get_models_folder, methods=["GET"]),
    Route("/embeddings", get_embeddings, methods=["GET"]),
    Route("/extensions", get_extensions, methods=["GET"]),
    Route("/workflow_templates", get_workflow_templates, methods=["GET"]),
    Route("/users", get_users, methods=["GET"]),
]
