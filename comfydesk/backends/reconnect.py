"""When and how often to retry a dropped event stream: capped exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["ReconnectPolicy"]


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
