"""What the window shows about a comfydesk gateway: is one connected, is it making us wait, did it refuse us.

`GatewayState` follows the connection: `available_changed` says whether the connected server is a gateway
(publishing to it is possible), `throttle_changed` counts down a rate-limit wait second by second (the
backend retries by itself; this only makes the wait visible), and `token_rejected_changed` names the profile
whose token the server refused, until a connection succeeds. Its translator puts a 401 in the user's words
on the one road errors take to the screen.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QObject, QTimer, Signal

from comfydesk.app.connection import ConnectionModel
from comfydesk.app.tasks import EDIT_PROFILE, AppError, ErrorModel
from comfydesk.backends.base import ConnectionState, ConnectionStatus, Throttled
from comfydesk.core.errors import AuthenticationError
from comfydesk.core.messages import TOKEN_HINT, TOKEN_REJECTED
from comfydesk.store.profiles import Profile

__all__ = ["TOKEN_HINT", "GatewayState", "describe_throttle"]


def describe_throttle(seconds: int) -> str:
    """The status bar text while the backend waits out a rate limit."""
    return f"The server is busy (rate limit): retrying in {max(0, seconds)} s"


class GatewayState(QObject):
    """See the module docstring."""

    available_changed = Signal(bool)
    throttle_changed = Signal(object)  # int seconds left, or None when no wait is going on
    token_rejected_changed = Signal(object)  # Profile | None

    def __init__(
        self,
        connection: ConnectionModel,
        errors: ErrorModel,
        *,
        clock: Callable[[], float] = time.monotonic,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._connection = connection
        self._clock = clock
        self._available = False
        self._until: float | None = None
        self._left: int | None = None
        self._rejected: Profile | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(250)  # the shown number changes on the second; a quarter keeps it close
        self._timer.timeout.connect(self._tick)
        connection.backend_changed.connect(lambda _b: self._update_available())
        connection.profile_changed.connect(lambda _p: self._update_available())
        connection.status_changed.connect(self._on_status)
        connection.throttled.connect(self._on_throttled)
        connection.auth_rejected.connect(self._on_auth_rejected)
        errors.translators.append(self.translate)
        errors.error_changed.connect(self._on_error)

    # -- read access -------------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """Connected to a gateway: its library can be changed and its workflows run."""
        return self._available

    @property
    def throttle_left(self) -> int | None:
        """Whole seconds until the backend retries, None when it is not waiting."""
        return self._left

    @property
    def token_rejected(self) -> Profile | None:
        return self._rejected

    # -- the error road ----------------------------------------------------------------------------
    def translate(self, error: AppError, exc: BaseException | None = None) -> AppError:
        """A refused credential offers "Edit profile…"; from a gateway it says the token was rejected."""
        if not isinstance(exc, AuthenticationError):
            return error
        if self._connection.is_gateway:
            return replace(error, message=f"{TOKEN_REJECTED}.", hint=TOKEN_HINT, action=EDIT_PROFILE)
        return replace(error, action=EDIT_PROFILE)

    # -- internals ---------------------------------------------------------------------------------
    def _update_available(self) -> None:
        available = self._connection.backend is not None and self._connection.is_gateway
        if available != self._available:
            self._available = available
            self.available_changed.emit(available)
        if not self._connection.is_gateway:
            self._end_wait()

    def _on_status(self, status: ConnectionStatus) -> None:
        if status.state is ConnectionState.CONNECTED:
            self._set_rejected(None)
        elif status.state is ConnectionState.DISCONNECTED:
            self._end_wait()

    def _on_throttled(self, event: object) -> None:
        if isinstance(event, Throttled):
            self._until = self._clock() + max(0.0, event.retry_after)
            self._timer.start()
            self._tick()

    def _tick(self) -> None:
        if self._until is None:
            return
        left = self._until - self._clock()
        if left <= 0:
            self._end_wait()
            return
        self._set_left(math.ceil(left))

    def _end_wait(self) -> None:
        self._until = None
        self._timer.stop()
        self._set_left(None)

    def _set_left(self, left: int | None) -> None:
        if left != self._left:
            self._left = left
            self.throttle_changed.emit(left)

    def _on_auth_rejected(self, profile: object) -> None:
        if isinstance(profile, Profile):
            self._set_rejected(profile)

    def _on_error(self, error: object) -> None:
        if isinstance(error, AppError) and error.action == EDIT_PROFILE:
            self._set_rejected(self._connection.profile)

    def _set_rejected(self, profile: Profile | None) -> None:
        if profile != self._rejected:
            self._rejected = profile
            self.token_rejected_changed.emit(profile)
