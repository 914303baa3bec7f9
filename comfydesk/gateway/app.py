"""The gateway as an ASGI app: `create_app(config)` wires the store, the dispatcher, the image store, the
event hub (and its relay across instances) and the routes; one middleware authenticates, rate-limits, caps
bodies and logs every request. `/healthz` and `/readyz` answer load balancers without a token.

Several instances may share one PostgreSQL database and one image directory: nothing another instance
needs lives only in a process (see docs/deploy.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from comfydesk import __version__
from comfydesk.gateway.dispatch import Dispatcher
from comfydesk.gateway.errors import ApiError, error_response
from comfydesk.gateway.hub import EventHub
from comfydesk.gateway.images import ImageStore
from comfydesk.gateway.ratelimit import RateLimiter, SharedRateLimiter
from comfydesk.gateway.relay import EventRelay
from comfydesk.gateway.store import AsyncStore, GatewayStore, TokenInfo

__all__ = ["Gateway", "GatewayConfig", "create_app"]

log = logging.getLogger("comfydesk.gateway")
access_log = logging.getLogger("comfydesk.gateway.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TOKEN_CACHE_SECONDS = 2.0
#: Paths a load balancer probes: no token, no rate limit, nothing secret in the answer.
PROBES = frozenset({"/healthz", "/readyz"})


@dataclass
class GatewayConfig:
    """How `comfydesk serve` runs. `database_url` defaults to a SQLite file in `data_dir`."""

    comfyui_urls: list[str]
    data_dir: Path
    database_url: str | None = None
    image_dir: Path | None = None
    image_ttl: float = 3600.0
    rate_limit: str = "600/minute"
    burst: int | None = None
    max_body: int = 8 * 1024 * 1024
    health_interval: float = 2.0
    sweep_interval: float | None = None
    #: How long a run stays with an instance that stopped renewing it (died) before another takes it.
    lease: float = 30.0
    #: None: a lasting id kept in the database for SQLite (one instance), a new one per process otherwise.
    instance_id: str | None = None
    resync_interval: float = 2.0
    #: How long a run posted while every ComfyUI machine is reconnecting is held for one to come back
    #: (0: refused with 503 at once, as when no machine was ever connected).
    reconnect_grace: float = 30.0

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{Path(self.data_dir) / 'gateway.db'}"

    @property
    def images_path(self) -> Path:
        return Path(self.image_dir) if self.image_dir else Path(self.data_dir) / "images"


@dataclass
class Gateway:
    """Everything one gateway process holds; routes reach it as `request.app.state.gateway`."""

    config: GatewayConfig
    store: AsyncStore
    hub: EventHub
    images: ImageStore
    dispatcher: Dispatcher
    limiter: RateLimiter | SharedRateLimiter
    relay: EventRelay
    instance_id: str = ""
    stopping: bool = False
    _tokens: dict[str, tuple[TokenInfo | None, float]] = field(default_factory=dict)
    _sweeper: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, config: GatewayConfig) -> Gateway:
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        store = AsyncStore(GatewayStore.open(config.database))
        hub = EventHub()
        images = ImageStore(config.images_path, store, ttl=config.image_ttl)
        instance_id = config.instance_id or (
            f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:12]}"
            if store.sync.postgres
            else store.sync.instance_id()
        )
        dispatcher = Dispatcher(
            list(config.comfyui_urls),
            store=store,
            images=images,
            hub=hub,
            instance_id=instance_id,
            health_interval=config.health_interval,
            lease=config.lease,
            reconnect_grace=config.reconnect_grace,
        )
        limiter: RateLimiter | SharedRateLimiter = (
            SharedRateLimiter(store, config.rate_limit, burst=config.burst)
            if store.sync.postgres
            else RateLimiter(config.rate_limit, burst=config.burst)
        )
        relay = EventRelay(
            store=store,
            hub=hub,
            follows=lambda execution_id: execution_id in dispatcher.by_execution,
            wake=dispatcher.wake,
            database_url=config.database,
            resync_interval=config.resync_interval,
        )
        return cls(config, store, hub, images, dispatcher, limiter, relay, instance_id)

    async def authenticate(self, secret: str | None) -> TokenInfo | None:
        """The live token for a secret, cached for a moment (a revocation takes effect within 2 s)."""
        if not secret:
            return None
        cached = self._tokens.get(secret)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        info = await self.store.read(self.store.sync.token_for_secret, secret)
        if len(self._tokens) > 10_000:
            self._tokens.clear()
        self._tokens[secret] = (info, time.monotonic() + _TOKEN_CACHE_SECONDS)
        return info

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether a load balancer should send requests here, and why (counts only, nothing secret)."""
        try:
            database = await asyncio.wait_for(self.store.read(self.store.sync.ping), 3.0)
        except Exception:
            database = False
        healthy = len(self.dispatcher.healthy())
        checks = {
            "database": "ok" if database else "unreachable",
            "comfyui": f"{healthy} of {len(self.dispatcher.machines)} machines healthy",
            "stopping": self.stopping,
        }
        return database and healthy > 0 and not self.stopping, checks

    async def _maintain(self, interval: float) -> None:
        while True:
            try:
                count = await self.images.sweep()
                if count:
                    log.info("image store: %d expired image(s) deleted", count)
                await self.limiter.prune()
            except Exception:  # the sweeper must outlive a passing database hiccup
                log.exception("image sweep or rate-limit pruning failed")
            await asyncio.sleep(interval)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        await self.dispatcher.start()
        await self.relay.start()
        interval = self.config.sweep_interval or max(0.5, min(60.0, self.config.image_ttl / 4))
        self._sweeper = asyncio.create_task(self._maintain(interval), name="gateway-sweeper")
        log.info(
            "gateway ready: instance %s, %d ComfyUI machine(s)",
            self.instance_id,
            len(self.dispatcher.machines),
        )
        try:
            yield
        finally:
            self.stopping = True
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            await self.relay.stop()
            await self.dispatcher.stop()
            self.store.close()
            self.store.sync.close()


def bearer_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for key, value in headers:
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def unauthorized() -> ApiError:
    return ApiError.single(
        401,
        "unauthorized",
        "Unauthorized",
        "A valid API token is required (Authorization: Bearer <token>)",
    )


def too_large(limit: int) -> ApiError:
    return ApiError.single(
        413, "payload_too_large", "Payload too large", f"The request body is larger than {limit} bytes"
    )


def rate_limited(retry_after: int) -> ApiError:
    return ApiError.single(
        429, "rate_limited", "Too many requests", f"Rate limit exceeded; retry in {retry_after} s"
    )


class GatewayMiddleware:
    """Authentication, rate limits, body size and the access log for every HTTP request.

    The token is resolved here, before routing, so no route can be reached without one (WebSocket routes
    check theirs themselves: they also take `?token=`). The log line names the token, never its secret,
    and the path without its query string.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") in PROBES:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        gw = self.gateway
        headers = scope.get("headers", [])
        token = await gw.authenticate(bearer_of(headers))
        scope.setdefault("state", {})["token"] = token
        client = scope.get("client") or ("-", 0)
        decision = await gw.limiter.check(f"token:{token.id}" if token else f"addr:{client[0]}")
        status = [0]
        answered = [False]  # a 413 was sent mid-body: what the app sends afterwards is dropped

        async def send_with_headers(message: Message) -> None:
            if answered[0]:
                return
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                out = MutableHeaders(scope=message)
                for key, value in decision.headers().items():
                    out[key] = value
            await send(message)

        limit = gw.config.max_body
        seen = [0]

        async def capped_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not answered[0]:
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    # A body without Content-Length grew past the limit: answer 413 now and let the app
                    # see a disconnected client, whatever it then tries to answer goes nowhere.
                    await error_response(too_large(limit))(scope, receive, send_with_headers)
                    answered[0] = True
                    return {"type": "http.disconnect"}
            return message

        try:
            refusal: ApiError | None = None
            length = _content_length(headers)
            if not decision.allowed:
                refusal = rate_limited(decision.retry_after)
            elif token is None:
                refusal = unauthorized()
            elif length is not None and length > limit:
                refusal = too_large(limit)
            if refusal is not None:
                await error_response(refusal)(scope, receive, send_with_headers)
                return
            await self.app(scope, capped_receive, send_with_headers)
        finally:
            access_log.info(
                '%s "%s %s" %s %.1fms token=%s',
                client[0],
                scope.get("method", ""),
                scope.get("path", ""),
                status[0] or "-",
                (time.perf_counter() - started) * 1000,
                token.name if token else "-",
            )


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _request_invalid(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":  # its location is a character offset, not a field
            at = err.get("loc", ("body", 0))[-1]
            message = f"The request body is not valid JSON ({err.get('msg', 'invalid')})"
            errors.append(
                {"code": "validation_error", "message": message, "details": f"body, character {at}"}
            )
            continue
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        where = ".".join(loc) or "body"
        errors.append(
            {"code": "validation_error", "message": str(err.get("msg", "invalid")), "details": where}
        )
    return error_response(
        ApiError(
            422, "Validation failed", errors or [{"code": "validation_error", "message": "invalid request"}]
        )
    )


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        err = ApiError.single(404, "not_found", "Not found", "There is no such route")
    elif exc.status_code == 400:  # FastAPI's answer to a body it cannot read (not UTF-8, not JSON)
        message = f"The request body is unreadable: {exc.detail}"
        err = ApiError.single(400, "validation_error", "Bad request", message)
    elif exc.status_code == 405:
        err = ApiError.single(405, "method_not_allowed", "Method not allowed", str(exc.detail))
    else:
        err = ApiError.single(exc.status_code, "http_error", str(exc.detail), str(exc.detail))
    return error_response(err)


async def _internal(_request: Request, exc: Exception) -> Response:
    log.error("internal error: %s: %s", type(exc).__name__, exc, exc_info=exc)
    return JSONResponse(
        {
            "status": "error",
            "message": "Internal server error",
            "errors": [{"code": "internal_error", "message": "The gateway failed to handle the request"}],
        },
        status_code=500,
    )


def create_app(config: GatewayConfig) -> FastAPI:
    """The gateway app; its lifespan connects to the ComfyUI machines and resumes unfinished runs."""
    from comfydesk.gateway.routes import health_router, image_router, router
    from comfydesk.gateway.ws import ws_router

    gateway = Gateway.build(config)
    app = FastAPI(
        title="comfydesk gateway: /api/v1/comfyui",
        version=__version__,
        description="Run stored ComfyUI workflows on a team's ComfyUI machines. See docs/api.md.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=gateway.lifespan,
    )
    app.state.gateway = gateway
    app.add_middleware(GatewayMiddleware, gateway=gateway)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal)
    app.include_router(health_router)
    app.include_router(router)
    app.include_router(image_router)
    app.include_router(ws_router)
    return app
