"""The fake ComfyUI as a Starlette app: configuration, the shared server object, fault middleware."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import platform
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from comfydesk.testing.engine import Dirs
from comfydesk.testing.executor import Executor
from comfydesk.testing.faults import Faults
from comfydesk.testing.hub import Hub
from comfydesk.testing.state import FakeState

__all__ = ["DEFAULT_FEATURES", "FakeConfig", "FakeServer", "create_app"]

JSON = dict[str, Any]

#: What ComfyUI 0.8.0 answers on GET /features (and after the feature_flags handshake).
DEFAULT_FEATURES: JSON = {
    "supports_preview_metadata": True,
    "max_upload_size": 104857600,
    "extension": {"manager": {"supports_v4": True}},
}


@dataclass
class FakeConfig:
    """How to run the fake. `object_info` is a path to an object_info JSON document or the document itself."""

    object_info: Path | dict[str, Any]
    data_dir: Path
    step_delay: float = 0.01
    demo: bool = False
    #: Captured static answers (system_stats.json, features.json, templates_index.json, ...); by default the
    #: folder holding `object_info` when it is a path. Missing files get built-in answers.
    captures_dir: Path | None = None


class FakeServer:
    """Everything one running fake owns; routes reach it through `request.app.state.fake`."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        if isinstance(config.object_info, dict):
            self.object_info: JSON = config.object_info
            self.captures_dir = config.captures_dir
        else:
            self.object_info = json.loads(Path(config.object_info).read_text(encoding="utf-8"))
            self.captures_dir = config.captures_dir or Path(config.object_info).parent
        self.dirs = Dirs.under(Path(config.data_dir))
        self._seed_input()
        self.faults = Faults()
        #: `models/<folder>` contents set by a test (`set_model_files`); others come from the captures.
        self.model_files: dict[str, list[str]] = {}
        self.state = FakeState()
        self.features = self.capture("features.json", DEFAULT_FEATURES)
        self.hub = Hub(self.faults, self.features, self.state.queue_remaining)
        self.executor = Executor(self.state, self.hub, self.object_info, self.dirs, config.step_delay)
        self._wipe_temp()

    def _seed_input(self) -> None:
        example = self.dirs.input / "example.png"
        if not example.exists():  # ComfyUI ships input/example.png; LoadImage's default choice
            Image.linear_gradient("L").resize((64, 64)).convert("RGB").save(example)

    def _wipe_temp(self) -> None:
        shutil.rmtree(self.dirs.temp, ignore_errors=True)
        self.dirs.temp.mkdir(parents=True, exist_ok=True)

    def capture(self, name: str, default: Any) -> Any:
        if self.captures_dir is not None:
            path = self.captures_dir / name
            if path.is_file():
                return json.loads(path.read_text(encoding="utf-8"))
        return default

    def system_stats(self) -> JSON:
        captured = self.capture("system_stats.json", None)
        if captured is not None and not self.config.demo:
            return captured  # type: ignore[no-any-return]
        return {
            "system": {
                "os": sys.platform,
                "ram_total": 0,
                "ram_free": 0,
                "comfyui_version": "0.8.0",
                "required_frontend_version": "1.35.9",
                "installed_templates_version": "0.7.67",
                "required_templates_version": "0.7.67",
                "python_version": sys.version,
                "pytorch_version": "none (comfydesk demo engine: procedural images, no AI model)",
                "embedded_python": False,
                "argv": ["comfydesk", "demo-server" if self.config.demo else "fake-comfyui"],
            },
            "devices": [
                {
                    "name": f"cpu ({platform.machine()})",
                    "type": "cpu",
                    "index": None,
                    "vram_total": 0,
                    "vram_free": 0,
                    "torch_vram_total": 0,
                    "torch_vram_free": 0,
                }
            ],
        }

    def input_files(self) -> list[str]:
        return sorted(e.name for e in os.scandir(self.dirs.input) if e.is_file())

    def live_object_info(self, class_type: str | None = None) -> JSON:
        """object_info with LoadImage's choices read from input/ now, as ComfyUI does per request."""
        if class_type is not None:
            if class_type not in self.object_info:
                return {}
            doc = {class_type: self.object_info[class_type]}
        else:
            doc = dict(self.object_info)
        for name in ("LoadImage", "LoadImageMask"):
            if name in doc:
                node = copy.deepcopy(doc[name])
                spec = node.get("input", {}).get("required", {}).get("image")
                if isinstance(spec, list) and spec and isinstance(spec[0], list):
                    spec[0] = self.input_files()
                doc[name] = node
        return doc

    def set_model_files(self, folder: str, files: list[str]) -> None:
        """Tests: the server's `models/<folder>` now holds `files` (as if added or deleted before a restart).

        `GET /models/<folder>` answers them, and every loader input listing that folder (`ckpt_name` for
        checkpoints, `lora_name` for loras... see `comfydesk.core.missing.MODEL_INPUT_FOLDERS`) offers them.
        """
        from comfydesk.core.missing import MODEL_INPUT_FOLDERS

        names = {name for name, f in MODEL_INPUT_FOLDERS.items() if f == folder}
        with self.state.lock:
            self.model_files[folder] = list(files)
            for node in self.object_info.values():
                inputs = node.get("input", {}) if isinstance(node, dict) else {}
                for section in inputs.values() if isinstance(inputs, dict) else ():
                    for name, spec in section.items() if isinstance(section, dict) else ():
                        if name not in names or not isinstance(spec, list) or not spec:
                            continue
                        if isinstance(spec[0], list):  # V1 combo: [[options], {...}]
                            spec[0] = list(files)
                        elif spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
                            spec[1]["options"] = list(files)

    def image_exists(self, name: str) -> bool:
        from comfydesk.testing.engine import annotated_path

        if ".." in name or name.startswith("/"):
            return False
        return annotated_path(name, self.dirs.input, self.dirs).is_file()

    def restart(self) -> None:
        """Like a server restart: sockets dropped; queue, running prompt, history, cache, temp/ forgotten."""
        with self.state.changed:
            self.state.generation += 1
            self.state.pending = []
            self.state.running = None
            self.state.history = {}
            self.state.number = 0
            self.state.interrupt.set()
            self.state.changed.notify_all()
        self.executor.reset()
        self.hub.current = (None, None)
        self.hub.abort_all()
        self._wipe_temp()


class FaultMiddleware:
    """Applies `Faults` to HTTP requests: delays, injected error statuses, truncated JSON bodies; counts
    the requests by path."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app, self.faults = app, faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        self.faults.record_request(path)
        delay = self.faults.delay_for(path)
        if delay > 0:
            receive = await _received(receive)  # the server has the request; it is slow to handle it
            await asyncio.sleep(delay)
        canned = self.faults.take_failure(path)
        if canned is not None:
            await _respond(send, canned.status, canned.body, canned.content_type.encode("latin-1"))
            return
        if self.faults.take_malformed(path):
            await _respond(send, 200, b'{"truncated": [1, 2', b"application/json; charset=utf-8")
            return
        await self.app(scope, receive, send)


async def _received(receive: Receive) -> Receive:
    """Read the request's body now and give it to the app later, as a server that took the request and
    handles it late does (ComfyUI's aiohttp goes on with a request whose client gave up waiting)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(config: FakeConfig) -> Starlette:
    """The ASGI app; `app.state.fake` is the `FakeServer`. The executor thread starts with the app."""
    from comfydesk.testing import routes, routes_files, routes_jobs

    fake = FakeServer(config)
    mirrored: list[BaseRoute] = [
        *routes.ROUTES,
        *routes_files.ROUTES,
        WebSocketRoute("/ws", fake.hub.endpoint),
    ]
    table: list[BaseRoute] = []
    for route in mirrored:
        table.append(route)
        if isinstance(route, Route):
            table.append(Route("/api" + route.path, route.endpoint, methods=route.methods))
        elif isinstance(route, WebSocketRoute):
            table.append(WebSocketRoute("/api" + route.path, route.endpoint))
    table += routes_files.UNMIRRORED
    table += [Route("/api" + r.path, r.endpoint, methods=r.methods) for r in routes_jobs.ROUTES]
    table.append(
        Route("/{path:path}", routes.unknown_route, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        fake.hub.loop = asyncio.get_running_loop()
        fake.executor.start()
        yield
        fake.executor.stop()

    app = Starlette(routes=table, lifespan=lifespan)
    app.state.fake = fake
    app.add_middleware(FaultMiddleware, faults=fake.faults)
    return app
