"""A ComfyUI installed on this computer, started and stopped by comfydesk (profile kind "comfyui-managed").

`LocalServer` starts the folder's `main.py` with the chosen Python on a free loopback port (plus the user's
extra arguments) as an asyncio subprocess, keeps its log (every line, live, as `log_line`), waits until
`/system_stats` answers, and watches the process: when it exits on its own that is a crash ("The server
process exited with code N", with the last 30 log lines), which is a different thing from the network
blips the connection model retries. It never starts a second server when one already answers on the port
(it uses that one, and does not stop it on quit); `stop` asks the process to end (Ctrl+C, as in a terminal)
and kills it after a timeout. Nothing here blocks the UI thread: the process, its pipe and the readiness
probe are all asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from comfydesk.app.tasks import TaskRunner
from comfydesk.core.errors import ComfyDeskError

__all__ = [
    "LOG_TAIL",
    "LocalServer",
    "LocalServerConfig",
    "LocalServerError",
    "ServerExited",
    "ServerState",
    "detect_python",
    "free_port",
    "probe_system_stats",
]

log = logging.getLogger(__name__)

LOG_TAIL = 30
"""Log lines a crash report carries."""
LOG_KEEP = 5000
"""Log lines kept in memory (the panel shows them; older ones are dropped)."""
START_TIMEOUT = 600.0
"""Seconds ComfyUI may take to answer (a first start installs and loads a lot)."""
STOP_TIMEOUT = 10.0
"""Seconds a stopping server gets to end by itself before it is killed."""
PROBE_INTERVAL = 0.25


class ServerState(Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    EXITED = "exited"  # ended on its own (crashed, or its window was closed): Restart server


class LocalServerError(ComfyDeskError):
    """The managed server cannot be started as configured (folder, main.py, Python)."""


class ServerExited(ComfyDeskError):
    """The server process ended on its own; `code` is its exit code, `tail` its last log lines."""

    def __init__(self, code: int, tail: list[str]) -> None:
        self.code = code
        self.tail = tail
        super().__init__(
            f"The server process exited with code {code}",
            hint="Its last log lines are below and in the server log panel; fix what they say, then use "
            "Server → Restart server.",
            details="\n".join(tail),
        )


@dataclass(frozen=True)
class LocalServerConfig:
    """Where ComfyUI is and how to start it."""

    comfyui_dir: Path
    python: Path
    extra_args: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, chosen at start

    @classmethod
    def from_strings(cls, comfyui_dir: str, python: str, extra_args: str) -> LocalServerConfig:
        """From a profile's text fields; the Python is detected when not given. LocalServerError when the
        arguments do not parse."""
        folder = Path(comfyui_dir).expanduser()
        chosen = Path(python).expanduser() if python.strip() else detect_python(folder)
        try:
            extra = tuple(shlex.split(extra_args, posix=os.name != "nt"))
        except ValueError as exc:
            raise LocalServerError(
                f"the extra arguments cannot be read: {exc}", hint="Check the quotes in Extra arguments."
            ) from exc
        return cls(folder, chosen or Path(), extra)

    def check(self) -> None:
        """LocalServerError saying what is wrong (folder, main.py, Python), in words for the user."""
        if not str(self.comfyui_dir) or not self.comfyui_dir.is_dir():
            raise LocalServerError(
                f"the ComfyUI folder {self.comfyui_dir} does not exist",
                hint="Choose the folder that holds ComfyUI's main.py in Server → Profiles.",
            )
        if not (self.comfyui_dir / "main.py").is_file():
            raise LocalServerError(
                f"there is no main.py in {self.comfyui_dir}",
                hint="Choose the ComfyUI folder itself (the one with main.py), not the folder above it.",
            )
        if not str(self.python) or str(self.python) == "." or not self.python.is_file():
            raise LocalServerError(
                "no Python was found for this ComfyUI",
                hint="Choose the Python that runs ComfyUI (its venv's python) in Server → Profiles.",
            )
        for arg in self.extra_args:
            option = arg.split("=", 1)[0]
            if option in ("--port", "--listen"):
                raise LocalServerError(
                    f"comfydesk chooses the address itself: remove {option} from Extra arguments",
                    hint="comfydesk starts the server on a free port of this computer only.",
                )

    def command(self, port: int) -> list[str]:
        return [
            str(self.python),
            "-u",
            "main.py",
            "--listen",
            self.host,
            "--port",
            str(port),
            *self.extra_args,
        ]


def detect_python(comfyui_dir: Path) -> Path | None:
    """The Python of a ComfyUI folder: its `venv` or `.venv`, or the Windows portable build's `python_embeded`
    (beside the ComfyUI folder, or in it); None when there is none."""
    names = ("python.exe",) if os.name == "nt" else ("python3", "python")
    candidates: list[Path] = []
    for env in ("venv", ".venv"):
        bin_dir = comfyui_dir / env / ("Scripts" if os.name == "nt" else "bin")
        candidates += [bin_dir / n for n in names]
    for embedded in (comfyui_dir.parent / "python_embeded", comfyui_dir / "python_embeded"):
        candidates += [embedded / "python.exe", embedded / "python"]
    return next((c for c in candidates if c.is_file()), None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def probe_system_stats(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a ComfyUI answers `GET /system_stats` there (HTTP 200 with its JSON); never raises."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(
                    f"GET /system_stats HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
                )
                await writer.drain()
                raw = await reader.read()  # to the end: the server closes after answering
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return False
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        return False
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and "system" in doc


class LocalServer(QObject):
    """One managed ComfyUI process (see the module docstring)."""

    state_changed = Signal(object)  # ServerState
    log_line = Signal(str)
    url_changed = Signal(object)  # str | None: where it answers
    exited = Signal(object)  # ServerExited: it ended on its own

    def __init__(
        self,
        tasks: TaskRunner,
        parent: QObject | None = None,
        *,
        start_timeout: float = START_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._state = ServerState.STOPPED
        self._lines: deque[str] = deque(maxlen=LOG_KEEP)
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._url: str | None = None
        self._config: LocalServerConfig | None = None
        self._adopted = False  # a server that already answered: used, never stopped by us
        self._generation = 0  # stop() counts up: a start still under way sees it and gives up
        self.started_at: float | None = None
        self.exit_code: int | None = None

    # -- state -------------------------------------------------------------------------------------
    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def url(self) -> str | None:
        return self._url

    @property
    def config(self) -> LocalServerConfig | None:
        return self._config

    @property
    def adopted(self) -> bool:
        """True when the server was already running and comfydesk only connected to it."""
        return self._adopted

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def lines(self) -> list[str]:
        return list(self._lines)

    def tail(self, n: int = LOG_TAIL) -> list[str]:
        return list(self._lines)[-n:]

    # -- actions -----------------------------------------------------------------------------------
    async def start(self, config: LocalServerConfig) -> str:
        """Start ComfyUI (or use the one already answering on `config.port`) and return its URL once
        `/system_stats` answers. LocalServerError for a bad configuration, ServerExited when the process
        ends before it answers; TimeoutError after `start_timeout`."""
        if (
            self._state in (ServerState.STARTING, ServerState.RUNNING)
            and self._config == config
            and self._url
        ):
            return self._url
        await self.stop()
        generation = self._generation
        config.check()
        self._config = config
        self._adopted = False
        self.exit_code = None
        port = config.port or free_port(config.host)
        url = f"http://{config.host}:{port}"
        # Restart server uses the same port: the connection keeps its address.
        self._config = LocalServerConfig(
            config.comfyui_dir, config.python, config.extra_args, config.host, port
        )
        if config.port and await probe_system_stats(config.host, port):
            self._adopted = True
            self._add_line(
                f"[comfydesk] A ComfyUI already answers on port {port}: using it (not starting another)."
            )
            self._set_url(url)
            self._set_state(ServerState.RUNNING)
            return url
        self._set_state(ServerState.STARTING)
        self._add_line(f"[comfydesk] Starting ComfyUI in {config.comfyui_dir} on port {port}")
        self._add_line("[comfydesk] " + " ".join(shlex.quote(a) for a in config.command(port)))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
        kwargs: dict[str, object] = {}
        if os.name == "nt":
            kwargs["creationflags"] = 0x00000200  # CREATE_NEW_PROCESS_GROUP: Ctrl+Break reaches it alone
        else:
            kwargs["start_new_session"] = True  # a Ctrl+C in comfydesk's terminal does not reach it
        try:
            process = await asyncio.create_subprocess_exec(
                *config.command(port),
                cwd=str(config.comfyui_dir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                **kwargs,  # type: ignore[arg-type]
            )
        except OSError as exc:
            self._set_state(ServerState.STOPPED)
            raise LocalServerError(
                f"could not start {config.python}: {exc.strerror or exc}",
                hint="Check the Python chosen for this ComfyUI in Server → Profiles.",
            ) from exc
        if generation != self._generation:  # stopped while the process was being created
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise asyncio.CancelledError
        self._process = process
        self.started_at = time.monotonic()
        self._reader = asyncio.ensure_future(self._read(process))
        await self._wait_ready(process, config.host, port)
        if generation != self._generation:
            raise asyncio.CancelledError
        self._set_url(url)
        self._set_state(ServerState.RUNNING)
        self._watcher = asyncio.ensure_future(self._watch(process))
        return url

    async def stop(self, timeout: float | None = None) -> None:
        """Stop the server we started: Ctrl+C first (ComfyUI ends cleanly on it), killed after `timeout`.
        A server that was already running before comfydesk is left alone."""
        self._generation += 1
        process, self._process = self._process, None
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if process is None or process.returncode is not None:
            if process is not None and self._reader is not None:
                await asyncio.wait([self._reader], timeout=2)
            if self._state is not ServerState.EXITED:
                self._set_state(ServerState.STOPPED)
            self._set_url(None)
            return
        self._set_state(ServerState.STOPPING)
        self._add_line("[comfydesk] Stopping the server…")
        wait = self.stop_timeout if timeout is None else timeout
        try:
            self._interrupt(process)
            try:
                await asyncio.wait_for(process.wait(), wait)
            except asyncio.CancelledError:  # the app is quitting and cannot wait longer: end it now
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                raise
            except TimeoutError:
                self._add_line(f"[comfydesk] It did not stop within {wait:.0f} s: ending it.")
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        finally:
            if self._reader is not None:
                await asyncio.wait([self._reader], timeout=2)
            self._add_line(f"[comfydesk] Server stopped (exit code {process.returncode}).")
            self._set_url(None)
            self._set_state(ServerState.STOPPED)

    def kill_now(self) -> None:
        """End the process at once, without a loop (the app quits without one running)."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    def restart(self) -> None:
        """Start again with the same configuration (after a crash: Server → Restart server)."""
        if self._config is not None:
            config = self._config
            self._tasks.start(self.start(config), what="Restarting the ComfyUI server")

    # -- internals ---------------------------------------------------------------------------------
    @staticmethod
    def _interrupt(process: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            if os.name == "nt":
                process.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
            else:
                process.send_signal(signal.SIGINT)

    async def _wait_ready(self, process: asyncio.subprocess.Process, host: str, port: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        exit_wait = asyncio.ensure_future(process.wait())
        try:
            while self._process is process:
                if exit_wait.done():
                    await self._exited_during_start(process)
                if await probe_system_stats(host, port, timeout=min(2.0, self.start_timeout)):
                    return
                if time.monotonic() > deadline:
                    await self.stop(timeout=2)
                    raise LocalServerError(
                        f"ComfyUI did not answer within {self.start_timeout:.0f} s",
                        hint="Its log is in the server log panel; fix what it says, then Restart server.",
                        details="\n".join(self.tail()),
                    )
                await asyncio.wait([exit_wait], timeout=PROBE_INTERVAL)
        except asyncio.CancelledError:
            await self.stop(timeout=2)
            raise
        finally:
            if not exit_wait.done():
                exit_wait.cancel()

    async def _exited_during_start(self, process: asyncio.subprocess.Process) -> None:
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=2)
        code = process.returncode if process.returncode is not None else -1
        self._process = None
        self.exit_code = code
        self._add_line(f"[comfydesk] The server process exited with code {code} while starting.")
        self._set_state(ServerState.EXITED)
        error = ServerExited(code, self.tail())
        self.exited.emit(error)
        raise error

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            try:
                raw = await process.stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):  # one enormous line: take what is there
                raw = await process.stdout.read(1 << 16)
            if not raw:
                return
            self._add_line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if self._process is not process:
            return  # stopped on purpose meanwhile
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=2)
        self._process = None
        self.exit_code = code
        self._add_line(f"[comfydesk] The server process exited with code {code}.")
        self._set_url(None)
        self._set_state(ServerState.EXITED)
        self.exited.emit(ServerExited(code, self.tail()))

    def _add_line(self, line: str) -> None:
        self._lines.append(line)
        self.log_line.emit(line)

    def _set_state(self, state: ServerState) -> None:
        if state is not self._state:
            self._state = state
            self.state_changed.emit(state)

    def _set_url(self, url: str | None) -> None:
        if url != self._url:
            self._url = url
            self.url_changed.emit(url)
