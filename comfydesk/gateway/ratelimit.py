"""Rate limits per token: `--rate-limit N/min` is the sustained allowance; `--burst B` also caps how many
requests may arrive within one second. Every answer reports the per-minute window in `X-RateLimit-*` headers.

One instance (SQLite): exact moving windows in memory (`RateLimiter`): per token, the times of the requests
it was allowed in the last minute (and second), oldest first. Several instances (PostgreSQL):
`SharedRateLimiter` counts in the database (`rate_counters`, one upsert per request), so the limit holds
for a token whichever instances its requests reach. It counts fixed windows and weighs the previous window
by how much of it still overlaps the sliding one (the usual sliding-window approximation): exact while the
requests of the previous window were spread evenly, and never more than the allowance plus the previous
window's share when they were not. Refused requests count too: a client that keeps hammering stays limited.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

from limits import RateLimitItem, parse

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
    """Moving windows in memory, exact: a request is allowed while fewer than the allowance were allowed
    in the `period` seconds before it (and, with a burst cap, fewer than `burst` in the second before).
    A refused request is not counted.

    Each key keeps a deque of the times it was allowed, oldest first: checking drops what fell out of the
    window from the left and appends on the right, so a request costs the same however many are in the
    window. (The `limits` library's memory storage, used here before, inserted every request at the head
    of a list as long as the allowance and re-copied the lists from a timer thread every 10 ms: at 500
    requests a second under a generous limit, a fifth of the gateway's time per request.)
    """

    def __init__(self, rate: str = "600/minute", *, burst: int | None = None) -> None:
        self.item = parse_rate(rate)
        self.period = float(self.item.get_expiry())
        self.burst = burst if burst and burst > 0 else None
        self._windows: dict[str, deque[float]] = {}
        self._seconds: dict[str, deque[float]] = {}

    async def check(self, key: str) -> Decision:
        return self.hit(key)

    async def prune(self) -> None:
        """Forget the keys with nothing left in their windows (clients that went quiet)."""
        now = time.time()
        for windows, period in ((self._windows, self.period), (self._seconds, 1.0)):
            for key in [k for k, times in windows.items() if not times or times[-1] < now - period]:
                del windows[key]

    def hit(self, key: str, now: float | None = None) -> Decision:
        """Count a request of `key` if it is allowed at `now` (default: the clock); the answer's headers."""
        now = time.time() if now is None else now
        allowance = self.item.amount
        window = _window(self._windows, key, now - self.period)
        retry_after = 0
        second: deque[float] | None = None
        if self.burst is not None:
            second = _window(self._seconds, key, now - 1.0)
            if len(second) >= self.burst:
                retry_after = max(1, math.ceil(second[0] + 1.0 - now))
        if not retry_after and len(window) >= allowance:
            retry_after = max(1, math.ceil(window[0] + self.period - now))
        allowed = retry_after == 0
        if allowed:
            window.append(now)
            if second is not None:
                second.append(now)
        return Decision(
            allowed=allowed,
            limit=allowance,
            remaining=max(0, allowance - len(window)),
            reset=math.ceil((window[0] if window else now) + self.period),
            retry_after=retry_after,
        )


def _window(windows: dict[str, deque[float]], key: str, edge: float) -> deque[float]:
    """`key`'s allowed request times after `edge`, oldest first (those at or before it are dropped)."""
    times = windows.get(key)
    if times is None:
        times = windows[key] = deque()
    while times and times[0] <= edge:
        times.popleft()
    return times


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
