"""Rate limits per token: `--rate-limit N/min` is the sustained allowance; `--burst B` also caps how many
requests may arrive within one second. Every answer reports the per-minute window in `X-RateLimit-*` headers.

One instance (SQLite): moving windows in memory with the `limits` library. Several instances (PostgreSQL):
`SharedRateLimiter` counts in the database (`rate_counters`, one upsert per request), so the limit holds
for a token whichever instances its requests reach. It counts fixed windows and weighs the previous window
by how much of it still overlaps the sliding one (the usual sliding-window approximation): exact while the
requests of the previous window were spread evenly, and never more than the allowance plus the previous
window's share when they were not. Refused requests count too: a client that keeps hammering stays limited.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from comfydesk.gateway.store import AsyncStore

__all__ = ["Decision", "RateLimiter", "SharedRateLimiter", "parse_rate"]


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

    async def check(self, key: str) -> Decision:
        return self.hit(key)

    async def prune(self) -> None:
        """Nothing to do: `limits` forgets old windows itself."""

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


class SharedRateLimiter:
    """Fixed-window counters in the gateway's database, shared by every instance."""

    def __init__(self, store: AsyncStore, rate: str = "600/minute", *, burst: int | None = None) -> None:
        self.store = store
        self.item = parse_rate(rate)
        self.period = int(self.item.get_expiry())
        self.burst = burst

    async def _count(self, key: str, period: int, now: float) -> int:
        """Requests of `key` in the sliding `period` that ends now, this one included."""
        window = int(now // period) * period
        current, previous = await self.store.read(self.store.sync.rate_hit, key, window, period)
        overlap = 1.0 - (now - window) / period
        return current + math.ceil(previous * overlap)

    async def check(self, key: str) -> Decision:
        now = time.time()
        reset = int(now // self.period) * self.period + self.period
        if self.burst and await self._count(f"{key}|1s", 1, now) > self.burst:
            return Decision(False, self.item.amount, 0, reset, 1)
        count = await self._count(key, self.period, now)
        allowed = count <= self.item.amount
        return Decision(
            allowed=allowed,
            limit=self.item.amount,
            remaining=max(0, self.item.amount - count),
            reset=reset,
            retry_after=0 if allowed else max(1, math.ceil(reset - now)),
        )

    async def prune(self) -> None:
        """Forget windows that ended (every instance may do it; deleting twice is harmless)."""
        await self.store.write(self.store.sync.prune_rate_counters, int(time.time()) - 2 * self.period)
