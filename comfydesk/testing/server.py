"""Running the fake ComfyUI: uvicorn on a background thread, on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from comfydesk.testing.app import FakeConfig, FakeServer, create_app
from comfydesk.testing.faults import Faults
from comfydesk.testing.state import FakeState

__all__ = ["RunningFake", "fake_comfyui", "start_fake_comfyui"]


@dataclass
class RunningFake:
    """A fake ComfyUI serving at `url` until `stop()`."""

    url: str
    faults: Faults
    state: FakeState
    server: FakeServer
    _uvicorn: uvicorn.Server
    _thread: threading.Thread

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http") :] + "/ws"

    @property
    def data_dir(self) -> Path:
        return Path(self.server.config.data_dir)

    def restart(self) -> None:
        """Like a server restart: sockets dropped; queue, running prompt, history, cache, temp/ forgotten."""
        self.server.restart()

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningFake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_fake_comfyui(
    config: FakeConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_certfile: str | Path | None = None,
    ssl_keyfile: str | Path | None = None,
) -> RunningFake:
    """Start the fake on a background thread; returns once it accepts connections.

    Without a config, it serves the demo catalogue from a fresh temporary data dir. With `ssl_certfile`
    (PEM, and `ssl_keyfile` unless the key is in the same file) it speaks TLS: `url` is https://, the
    socket wss://."""
    if config is None:
        import tempfile

        from comfydesk.testing.demo import demo_config

        config = demo_config(Path(tempfile.mkdtemp(prefix="comfydesk-fake-")))
        config.step_delay = 0.01
    app = create_app(config)
    fake: FakeServer = app.state.fake
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
    # keep-alive answer waits ~40 ms for the delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
            access_log=False,
            ssl_certfile=None if ssl_certfile is None else str(ssl_certfile),
            ssl_keyfile=None if ssl_keyfile is None else str(ssl_keyfile),
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="fake-comfyui", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake ComfyUI did not start")
        time.sleep(0.005)
    scheme = "https" if ssl_certfile is not None else "http"
    return RunningFake(f"{scheme}://{host}:{bound_port}", fake.faults, fake.state, fake, server, thread)


@contextlib.contextmanager
def fake_comfyui(
    config: FakeConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_certfile: str | Path | None = None,
    ssl_keyfile: str | Path | None = None,
) -> Iterator[RunningFake]:
    """`with fake_comfyui(cfg) as fake: ...` starts the fake and stops it afterwards."""
    running = start_fake_comfyui(
        config, host=host, port=port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile
    )
    try:
        yield running
    finally:
        running.stop()
