"""Rate limits per token with the `limits` library (moving windows in memory, for one instance).

`--rate-limit N/min` is the sustained allowance; `--burst B` also caps how many requests may arrive within
one second. Every answer reports the per-minute window in `X-RateLimit-*` headers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

__all__ = ["Decision", "RateLimiter", "parse_rate"]


def parse_rate(text: str) -> RateLimitItem:
    """`120/min`, `120/minute`, `10/second`, `1000/hour`: what `limits` understands, plus `min`."""
    normalized = text.strip().replace("/min", "/minute").replace("/minuteute", "/minute")
    try:
        return parse(normalized)
    except ValueError as exc:
        raise ValueError(f"not a rate limit: {text!r} (write it like 120/min)") from exc


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds when the window has room again
    retry_after: int  # seconds, when not allowed

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after)
        return out


class RateLimiter:
    def __init__(self, rate: str = "600/minute", *, burst: int | None = None) -> None:
        self.item = parse_rate(rate)
        self.burst = parse(f"{burst}/second") if burst else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> Decision:
        now = time.time()
        allowed = True
        retry_after = 0
        if self.burst is not None and not self._limiter.hit(self.burst, key):
            allowed = False
            stats = self._limiter.get_window_stats(self.burst, key)
            retry_after = max(1, math.ceil(stats.reset_time - now))
        if allowed and not self._limiter.hit(self.item, key):
            allowed = False
        stats = self._limiter.get_window_stats(self.item, key)
        if not allowed and retry_after == 0:
            retry_after = max(1, math.ceil(stats.reset_time - now))
        return Decision(
            allowed=allowed,
            limit=self.item.amount,
            remaining=max(0, stats.remaining),
            reset=math.ceil(stats.reset_time),
            retry_after=retry_after,
        )
