"""When and how often to retry a dropped event stream: capped exponential backoff with jitter."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from comfydesk.backends.base import ConnectionState, ConnectionStatus
from comfydesk.core.errors import BackendError

__all__ = ["ReconnectPolicy", "retry_with_backoff"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Delay before attempt k (1-based): min(max_delay, initial * factor**(k-1)), +/- `jitter` fraction.

    `max_attempts=None` retries forever.
    """

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2
    max_attempts: int | None = None

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        base = min(self.max_delay, self.initial * self.factor ** max(0, attempt - 1))
        if self.jitter <= 0:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, min(self.max_delay, base * (1.0 + spread)))

    def gives_up_after(self, attempt: int) -> bool:
        """True when `attempt` failed attempts exhaust the policy."""
        return self.max_attempts is not None and attempt >= self.max_attempts


async def retry_with_backoff(
    policy: ReconnectPolicy,
    attempt: Callable[[], Awaitable[T]],
    publish: Callable[[ConnectionStatus], None],
    *,
    closing: Callable[[], bool],
    what: str,
    giving_up: Callable[[str], None] | None = None,
) -> T | None:
    """Run `attempt` until it succeeds, publishing RECONNECTING(k, delay) before each try and CONNECTED after.

    A `BackendError` counts as a failed attempt; when the policy gives up, `giving_up(reason)` is called,
    then DISCONNECTED(reason) is published and None returned. None as well when `closing()` turns true.
    """
    k = 0
    while not closing():
        k += 1
        delay = policy.delay(k)
        publish(ConnectionStatus(ConnectionState.RECONNECTING, k, round(delay, 3)))
        await asyncio.sleep(delay)
        if closing():
            return None
        try:
            result = await attempt()
        except BackendError as exc:
            log.info("reconnect attempt %d to %s failed: %s", k, what, exc)
            if policy.gives_up_after(k):
                reason = f"gave up after {k} attempts: {exc}"
                if giving_up is not None:
                    giving_up(reason)
                publish(ConnectionStatus(ConnectionState.DISCONNECTED, k, reason=reason))
                return None
            continue
        publish(ConnectionStatus(ConnectionState.CONNECTED))
        return result
    return None
