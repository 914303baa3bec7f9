"""When and how often to retry a dropped event stream: capped exponential backoff with jitter."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from comfydesk.backends.base import ConnectionState, ConnectionStatus
from comfydesk.core.errors import BackendError

__all__ = [
    "CLI_RECONNECT_BUDGET",
    "RECONNECT_BUDGET_ENV",
    "ReconnectPolicy",
    "cli_policy",
    "retry_with_backoff",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Delay before attempt k (1-based): min(max_delay, initial * factor**(k-1)), +/- `jitter` fraction.

    Gives up after `max_attempts` failed attempts, or once `max_elapsed` seconds have passed since the
    connection was lost (whichever comes first); both None retry forever (the window does, showing it).
    """

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2
    max_attempts: int | None = None
    max_elapsed: float | None = None

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        base = min(self.max_delay, self.initial * self.factor ** max(0, attempt - 1))
        if self.jitter <= 0:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, min(self.max_delay, base * (1.0 + spread)))

    def gives_up_after(self, attempt: int, elapsed: float = 0.0) -> bool:
        """True when `attempt` failed attempts, `elapsed` seconds after the loss, exhaust the policy."""
        if self.max_elapsed is not None and elapsed >= self.max_elapsed:
            return True
        return self.max_attempts is not None and attempt >= self.max_attempts


#: What the command line uses: a dead server is given up after 2 minutes (then `run` exits 2);
#: $COMFYDESK_RECONNECT_BUDGET (seconds) changes it.
CLI_RECONNECT_BUDGET = 120.0
RECONNECT_BUDGET_ENV = "COMFYDESK_RECONNECT_BUDGET"


def cli_policy() -> ReconnectPolicy:
    """The reconnect policy of the command line: the default backoff, within the reconnect budget."""
    raw = os.environ.get(RECONNECT_BUDGET_ENV, "").strip()
    budget = CLI_RECONNECT_BUDGET
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if math.isfinite(value) and value > 0:
            budget = value
        else:
            log.warning("ignoring %s=%r: not a positive number of seconds", RECONNECT_BUDGET_ENV, raw)
    return ReconnectPolicy(max_delay=min(30.0, max(1.0, budget / 4)), max_elapsed=budget)


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
    lost_at = asyncio.get_running_loop().time()
    while not closing():
        k += 1
        delay = policy.delay(k)
        if policy.max_elapsed is not None:  # never sleep past the budget
            left = policy.max_elapsed - (asyncio.get_running_loop().time() - lost_at)
            delay = max(0.0, min(delay, left))
        publish(ConnectionStatus(ConnectionState.RECONNECTING, k, round(delay, 3)))
        await asyncio.sleep(delay)
        if closing():
            return None
        try:
            result = await attempt()
        except BackendError as exc:
            log.info("reconnect attempt %d to %s failed: %s", k, what, exc)
            elapsed = asyncio.get_running_loop().time() - lost_at
            if policy.gives_up_after(k, elapsed):
                reason = f"gave up after {k} attempts in {elapsed:.0f} s: {exc}"
                if giving_up is not None:
                    giving_up(reason)
                publish(ConnectionStatus(ConnectionState.DISCONNECTED, k, reason=reason))
                return None
            continue
        publish(ConnectionStatus(ConnectionState.CONNECTED))
        return result
    return None
