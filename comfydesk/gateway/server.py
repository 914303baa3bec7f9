"""Running the gateway: uvicorn in the foreground (`comfydesk serve`) or on a thread (tests, benchmarks).

With no ComfyUI address the gateway starts the built-in demo engine (procedural images, no AI model) on a
free local port and fronts it, so one command shows the whole API working on any machine.
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from comfydesk.gateway.app import GatewayConfig, create_app

__all__ = [
    "RunningGateway",
    "bind_socket",
    "run_gateway",
    "settle_heap",
    "start_demo_engine",
    "start_gateway_thread",
]

log = logging.getLogger("comfydesk.gateway")


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
    # keep-alive answer waits ~40 ms for the delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def start_demo_engine(data_dir: Path, *, step_delay: float | None = None) -> tuple[str, Callable[[], None]]:
    """Start the demo engine on 127.0.0.1; returns its URL and how to stop it."""
    from comfydesk.testing import start_fake_comfyui
    from comfydesk.testing.demo import demo_config

    config = demo_config(Path(data_dir) / "demo-engine")
    if step_delay is not None:
        config.step_delay = step_delay
    fake = start_fake_comfyui(config)
    return fake.url, fake.stop


def _uvicorn(config: GatewayConfig) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            # uvicorn's own lines stay quiet (the embedded demo engine shares its loggers); ours say enough.
            log_level="warning",
            lifespan="on",
            access_log=False,  # our middleware writes one line per request, without query strings
            timeout_graceful_shutdown=3,
            ws_max_size=1024 * 1024,
            # Previews are JPEG or PNG already: deflating them again for every subscriber costs a core.
            ws_per_message_deflate=False,
        )
    )


def run_gateway(
    config: GatewayConfig, *, host: str, port: int, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM). Once serving, the heap is settled (`settle_heap`):
    this process is the gateway's own."""
    server = _uvicorn(config)
    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    watcher = threading.Thread(
        target=_when_started, args=(server, f"http://{shown}:{bound}", on_ready), daemon=True
    )
    watcher.start()
    server.run(sockets=[sock])


def _when_started(server: uvicorn.Server, url: str, on_ready: Callable[[str], None] | None) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.02)
    if server.started:
        settle_heap()
        if on_ready is not None:
            on_ready(url)


def settle_heap() -> None:
    """Collect once, then take every object alive now out of the collector's walks (`gc.freeze`).

    A started gateway holds some 120,000 objects it keeps for good: modules, routes, models, the
    database's metadata, the demo engine's node catalog. Under load (hundreds of requests a second,
    previews for hundreds of sockets) the collector's full passes walked all of them, 45-130 ms each,
    every second or two, and every request waiting meanwhile took that much longer. Frozen, a full pass
    walks only what came after (the open connections): 2-27 ms. Only for a process that is the gateway's
    own (`comfydesk serve`): a frozen object is never collected, so a test process that starts many
    gateways must not do this.
    """
    gc.collect()
    gc.freeze()


@dataclass
class RunningGateway:
    """A gateway serving at `url` on a background thread, until `stop()`."""

    url: str
    config: GatewayConfig
    _server: uvicorn.Server
    _thread: threading.Thread
    _cleanup: list[Callable[[], None]] = field(default_factory=list)
    admin_token: str = ""

    @property
    def app(self) -> Any:
        """The ASGI app being served (its route table, for tests that walk it)."""
        return self._server.config.app

    def create_token(self, name: str, *, admin: bool = False) -> str:
        from comfydesk.gateway.store import GatewayStore

        store = GatewayStore.open(self.config.database)
        try:
            return store.create_token(name, admin=admin)[1]
        finally:
            store.close()

    def revoke_token(self, name: str) -> bool:
        from comfydesk.gateway.store import GatewayStore

        store = GatewayStore.open(self.config.database)
        try:
            return store.revoke_token(name)
        finally:
            store.close()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        for fn in reversed(self._cleanup):
            fn()
        self._cleanup.clear()

    def __enter__(self) -> RunningGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_gateway_thread(config: GatewayConfig, *, host: str = "127.0.0.1", port: int = 0) -> RunningGateway:
    """Start the gateway on a thread; returns once it accepts connections (its machines connected)."""
    server = _uvicorn(config)
    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the gateway did not start")
        time.sleep(0.005)
    return RunningGateway(f"http://{host}:{bound}", config, server, thread)
