"""The async boundary: tasks started from normal slots, and exceptions turned into one error value.

Every coroutine the app runs goes through `TaskRunner.start`, which keeps a strong reference until it ends
(asyncio only keeps weak ones) and turns an escaping exception into an `AppError` on the `ErrorModel`, the
one road by which errors reach the screen (a status message and the error view). `install_excepthook` catches
what escapes elsewhere (a slot raising) and sends it down the same road instead of crashing.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

from comfydesk.core.errors import ComfyDeskError

__all__ = ["EDIT_PROFILE", "AppError", "ErrorModel", "TaskRunner", "install_excepthook"]

log = logging.getLogger(__name__)
T = TypeVar("T")
EDIT_PROFILE = "edit-profile"
"""`AppError.action`: the error view offers "Edit profile…" (the server refused our credentials)."""


@dataclass(frozen=True, slots=True)
class AppError:
    """An error as the user sees it: what we were doing, what went wrong, what to do, and the details."""

    what: str
    message: str
    hint: str = ""
    details: str = ""
    exception_type: str = ""
    expected: bool = True  # False for bugs (anything not a ComfyDeskError)
    action: str = ""  # a way on the error view offers (EDIT_PROFILE), empty for none

    @property
    def text(self) -> str:
        head = f"{self.what}: {self.message}" if self.what else self.message
        return f"{head} {self.hint}".strip()

    @classmethod
    def from_exception(cls, exc: BaseException, *, what: str = "") -> AppError:
        if isinstance(exc, ComfyDeskError):
            return cls(
                what=what,
                message=exc.message,
                hint=exc.hint,
                details=exc.details,
                exception_type=type(exc).__name__,
            )
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(
            what=what,
            message=f"unexpected error: {type(exc).__name__}: {exc}",
            hint="This is a bug in comfydesk; the details can be copied into a report.",
            details=tb,
            exception_type=type(exc).__name__,
            expected=False,
        )


class ErrorModel(QObject):
    """The latest error to show (None when cleared)."""

    error_changed = Signal(object)  # AppError | None

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._error: AppError | None = None
        self.history: list[AppError] = []
        # Put an error in the user's words where the app knows more than the raiser (a gateway's 401 is
        # "the token was rejected"); each takes the error and its exception (None when reported as a value).
        self.translators: list[Callable[[AppError, BaseException | None], AppError]] = []

    @property
    def error(self) -> AppError | None:
        return self._error

    def report(self, error: AppError, exc: BaseException | None = None) -> None:
        for translate in self.translators:
            error = translate(error, exc)
        self.history.append(error)
        del self.history[:-50]
        self._error = error
        self.error_changed.emit(error)

    def report_exception(self, exc: BaseException, *, what: str = "") -> None:
        if not isinstance(exc, ComfyDeskError):
            log.error("%s", what or "unexpected error", exc_info=exc)
        else:
            log.info("%s: %s", what, exc)
        self.report(AppError.from_exception(exc, what=what), exc)

    def clear(self) -> None:
        if self._error is not None:
            self._error = None
            self.error_changed.emit(None)


class TaskRunner:
    """Starts coroutines on the running (qasync) loop from plain slots and keeps them alive."""

    def __init__(self, errors: ErrorModel) -> None:
        self.errors = errors
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finish: set[asyncio.Task[Any]] = set()  # never cancelled by finish_all, only waited for
        self.closing = False  # shutting down: what fails now is logged, not shown

    def start(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        what: str,
        on_error: Callable[[BaseException], None] | None = None,
        finish: bool = False,
    ) -> asyncio.Task[T | None]:
        """Run `coro`; an exception becomes an AppError (or goes to `on_error` when given).

        `finish`: at shutdown, let it run to its end however long it takes instead of cancelling it (closing a
        connection, starting a server thread: cut short, they would leave a socket or a thread behind)."""
        task = asyncio.get_running_loop().create_task(self._guard(coro, what, on_error), name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if finish:
            self._finish.add(task)
            task.add_done_callback(self._finish.discard)
        return task

    async def _guard(
        self,
        coro: Coroutine[Any, Any, T],
        what: str,
        on_error: Callable[[BaseException], None] | None,
    ) -> T | None:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.closing:  # the connection it used was closed under it, most likely
                log.debug("%s failed while closing: %r", what, exc)
            elif on_error is not None:
                try:
                    on_error(exc)
                except Exception as inner:
                    self.errors.report_exception(inner, what=what)
            else:
                self.errors.report_exception(exc, what=what)
            return None

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def finish_all(self, grace: float) -> None:
        """Shutdown: give every task but the calling one (and those they start) `grace` seconds to end by
        itself, then cancel the rest (except `finish` ones) and wait for them. Failures are only logged now.

        Cancelling at once would be quicker but not safe: a request cancelled just as its TCP connect
        completes can leave the socket open (a race in the connection pool).
        """
        self.closing = True
        current = asyncio.current_task()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while tasks := [t for t in self._tasks if not t.done() and t is not current]:
            _done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
            if pending and loop.time() >= deadline:
                for task in pending:
                    if task not in self._finish:
                        log.debug("cancelling %r at shutdown", task.get_name())
                        task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

    def cancel_pending(self) -> None:
        """Cancel every task but the calling one, without waiting (shutdown gave up waiting)."""
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()


def install_excepthook(errors: ErrorModel) -> Callable[[], None]:
    """Log unexpected exceptions (from slots, callbacks) and show them instead of crashing; returns undo."""
    previous = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        if exc.__traceback__ is None and tb is not None:
            exc = exc.with_traceback(tb)
        try:
            errors.report_exception(exc, what="Unexpected error")
        except Exception:  # never let the hook itself raise
            log.exception("while reporting an unexpected error")

    sys.excepthook = hook

    def undo() -> None:
        if sys.excepthook is hook:
            sys.excepthook = previous

    return undo
