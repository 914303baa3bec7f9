"""The managed local ComfyUI (comfydesk.app.local_server) driven with the stand-in main.py
(comfydesk.testing.standin_main) as a real process: slow start, live log, crash on demand and on start,
restart, graceful stop and kill after the timeout, a server already answering on the port, bad set-ups."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import qasync
from pytestqt.qtbot import QtBot

from comfydesk.app.local_server import (
    LOG_TAIL,
    LocalServer,
    LocalServerConfig,
    LocalServerError,
    ServerExited,
    ServerState,
    detect_python,
    free_port,
    probe_system_stats,
)
from comfydesk.app.tasks import ErrorModel, TaskRunner
from comfydesk.testing import start_fake_comfyui

T = TypeVar("T")
MAIN_PY = "import sys\nfrom comfydesk.testing.standin_main import main\nsys.exit(main())\n"
TIMEOUT = 30_000


def run(qtbot: QtBot, coro: Coroutine[Any, Any, T]) -> T:
    task = asyncio.ensure_future(coro)
    qtbot.waitUntil(task.done, timeout=TIMEOUT)
    return task.result()


def comfy_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ComfyUI"
    folder.mkdir()
    (folder / "main.py").write_text(MAIN_PY, encoding="utf-8")
    return folder


def config(folder: Path, *extra: str, port: int = 0) -> LocalServerConfig:
    return LocalServerConfig(folder, Path(sys.executable), tuple(extra), port=port)


@pytest.fixture
def server(qloop: qasync.QEventLoop, qtbot: QtBot) -> Iterator[LocalServer]:
    tasks = TaskRunner(ErrorModel())
    managed = LocalServer(tasks, stop_timeout=5)
    yield managed
    run(qtbot, managed.stop(timeout=2))


def test_slow_start_shows_log_lines_then_answers_and_stops_gracefully(
    qtbot: QtBot, server: LocalServer, tmp_path: Path
) -> None:
    folder = comfy_folder(tmp_path)
    states: list[ServerState] = []
    lines: list[str] = []
    server.state_changed.connect(states.append)
    server.log_line.connect(lines.append)
    task = asyncio.ensure_future(server.start(config(folder, "--startup-delay", "1.0", "--lowvram")))
    # While it loads: STARTING, its log lines arriving live, nothing answering yet.
    qtbot.waitUntil(lambda: any("loading pack 2" in line for line in lines), timeout=TIMEOUT)
    assert server.state is ServerState.STARTING and server.url is None and not task.done()
    qtbot.waitUntil(task.done, timeout=TIMEOUT)
    url = task.result()
    assert url.startswith("http://127.0.0.1:") and server.url == url
    assert server.state is ServerState.RUNNING and states[:2] == [ServerState.STARTING, ServerState.RUNNING]
    port = int(url.rsplit(":", 1)[1])
    assert run(qtbot, probe_system_stats("127.0.0.1", port))
    assert any("Extra arguments: --lowvram" in line for line in lines)  # the user's extra arguments
    assert any(f"To see the GUI go to: http://127.0.0.1:{port}" in line for line in lines)

    run(qtbot, server.stop())
    assert server.state is ServerState.STOPPED and server.url is None
    assert "Stopped server" in "\n".join(server.lines())  # it ended on Ctrl+C, by itself
    assert server.lines()[-1] == "[comfydesk] Server stopped (exit code 0)."
    assert not run(qtbot, probe_system_stats("127.0.0.1", port))


def test_a_crash_is_told_with_its_exit_code_and_last_lines_then_restart_works(
    qtbot: QtBot, server: LocalServer, tmp_path: Path
) -> None:
    folder = comfy_folder(tmp_path)
    trigger = tmp_path / "crash-now"
    run(qtbot, server.start(config(folder, "--crash-file", str(trigger), "--crash-code", "3")))
    with qtbot.waitSignal(server.exited, timeout=TIMEOUT) as blocker:
        trigger.write_text("", encoding="utf-8")
    error = blocker.args[0]
    assert isinstance(error, ServerExited) and error.code == 3
    assert error.message == "The server process exited with code 3"
    assert 0 < len(error.tail) <= LOG_TAIL and "RuntimeError: stand-in crash on demand" in error.details
    assert server.state is ServerState.EXITED and server.url is None and server.exit_code == 3

    trigger.unlink()
    with qtbot.waitSignal(server.url_changed, timeout=TIMEOUT, check_params_cb=lambda u: u is not None):
        server.restart()
    assert server.state is ServerState.RUNNING


def test_a_crash_while_starting_raises_with_the_code(
    qtbot: QtBot, server: LocalServer, tmp_path: Path
) -> None:
    folder = comfy_folder(tmp_path)
    task = asyncio.ensure_future(server.start(config(folder, "--crash-on-start", "7")))
    qtbot.waitUntil(task.done, timeout=TIMEOUT)
    error = task.exception()
    assert isinstance(error, ServerExited) and error.code == 7
    assert "CUDA error" in error.details
    assert server.state is ServerState.EXITED


def test_a_server_that_ignores_ctrl_c_is_killed_after_the_timeout(
    qtbot: QtBot, server: LocalServer, tmp_path: Path
) -> None:
    folder = comfy_folder(tmp_path)
    run(qtbot, server.start(config(folder, "--ignore-interrupt")))
    run(qtbot, server.stop(timeout=0.5))
    log = "\n".join(server.lines())
    assert "did not stop within 0 s: ending it" in log or "did not stop within 1 s: ending it" in log
    assert server.lines()[-1] == "[comfydesk] Server stopped (exit code -9)."
    assert server.state is ServerState.STOPPED


def test_no_second_server_when_one_already_answers_on_the_port(
    qtbot: QtBot, server: LocalServer, tmp_path: Path
) -> None:
    folder = comfy_folder(tmp_path)
    port = free_port()
    fake = start_fake_comfyui(host="127.0.0.1", port=port)
    try:
        url = run(qtbot, server.start(config(folder, port=port)))
        assert url == f"http://127.0.0.1:{port}" and server.adopted and server.pid is None
        assert "already answers on port" in server.lines()[-1]
        run(qtbot, server.stop())
        assert run(qtbot, probe_system_stats("127.0.0.1", port))  # not ours to stop
    finally:
        fake.stop()


def test_bad_set_ups_are_refused_in_plain_words(tmp_path: Path) -> None:
    with pytest.raises(LocalServerError, match="does not exist"):
        config(tmp_path / "nowhere").check()
    (tmp_path / "empty").mkdir()
    with pytest.raises(LocalServerError, match=r"there is no main\.py") as exc:
        config(tmp_path / "empty").check()
    assert "the one with main.py" in exc.value.hint
    folder = comfy_folder(tmp_path)
    with pytest.raises(LocalServerError, match="no Python was found"):
        LocalServerConfig.from_strings(str(folder), "", "").check()
    with pytest.raises(LocalServerError, match="remove --port"):
        config(folder, "--port=9000").check()
    with pytest.raises(LocalServerError, match="cannot be read"):
        LocalServerConfig.from_strings(str(folder), sys.executable, '--output "unclosed')


def test_python_is_detected_from_venv_or_the_portable_build(tmp_path: Path) -> None:
    folder = comfy_folder(tmp_path)
    assert detect_python(folder) is None
    portable = tmp_path / "python_embeded" / "python.exe"
    portable.parent.mkdir()
    portable.write_bytes(b"")
    assert detect_python(folder) == portable
    venv = folder / ".venv" / "bin" / "python"
    venv.parent.mkdir(parents=True)
    venv.write_bytes(b"")
    assert detect_python(folder) == venv  # the folder's own venv comes first
    chosen = LocalServerConfig.from_strings(str(folder), "", "--cpu --output-directory '/my out'")
    assert chosen.python == venv and chosen.extra_args == ("--cpu", "--output-directory", "/my out")


def test_a_request_failing_after_the_crash_says_the_crash_not_cant_reach(
    qtbot: QtBot, server: LocalServer
) -> None:
    """Requests under way when the managed server crashed fail a moment after the crash is reported; the
    banner keeps the cause (its exit code), not "can't reach the server". Not once it runs again."""
    from comfydesk.app.context import _exit_over_unreachable
    from comfydesk.app.local_server import ServerExited
    from comfydesk.app.tasks import ErrorModel
    from comfydesk.core.errors import ServerUnreachable

    errors = ErrorModel()
    server.exited.connect(lambda exc: errors.report_exception(exc, what="ComfyUI on this computer"))
    errors.translators.append(_exit_over_unreachable(server, errors))
    unreachable = ServerUnreachable("http://127.0.0.1:8188", "connection refused")

    errors.report_exception(unreachable, what="Refreshing the queue")  # no crash: said as it is
    assert errors.error is not None and errors.error.exception_type == "ServerUnreachable"
    server._set_state(ServerState.EXITED)
    server.exited.emit(ServerExited(3, ["RuntimeError: boom"]))
    assert errors.error is not None and "exited with code 3" in errors.error.message
    errors.report_exception(unreachable, what="Refreshing the queue")
    assert errors.error.exception_type == "ServerExited" and "exited with code 3" in errors.error.message
    assert errors.error.details == "RuntimeError: boom"
    server._set_state(ServerState.RUNNING)  # restarted: a failure now is what it says
    errors.report_exception(unreachable, what="Refreshing the queue")
    assert errors.error.exception_type == "ServerUnreachable"
