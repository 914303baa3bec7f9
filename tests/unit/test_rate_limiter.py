"""The single-instance rate limiter: exact moving windows per key, on a clock the test sets."""

from __future__ import annotations

import asyncio

import pytest

from comfydesk.gateway.ratelimit import RateLimiter

T0 = 1_800_000_000.0


def test_allows_the_allowance_then_refuses_until_the_oldest_request_leaves_the_window() -> None:
    limiter = RateLimiter("20/minute")
    answers = [limiter.hit("token:1", T0 + i * 0.5) for i in range(20)]
    assert all(a.allowed for a in answers)
    assert [a.remaining for a in answers] == list(range(19, -1, -1))
    assert {a.limit for a in answers} == {20}
    assert answers[0].reset == answers[-1].reset == int(T0) + 60  # when the oldest request leaves

    refused = limiter.hit("token:1", T0 + 30)
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after == 30  # the first request leaves the window at T0 + 60
    assert refused.headers()["Retry-After"] == "30"
    # Refused requests are not counted: once the first leaves, exactly one more fits.
    assert not limiter.hit("token:1", T0 + 59.9).allowed
    again = limiter.hit("token:1", T0 + 60.01)
    assert again.allowed and again.remaining == 0
    assert again.reset == int(T0 + 0.5) + 60 + 1  # now the second one is the oldest (ceil of T0 + 60.5)
    assert not limiter.hit("token:1", T0 + 60.2).allowed
    assert limiter.hit("token:1", T0 + 60.6).allowed  # ... and it left at T0 + 60.5


def test_keys_have_their_own_windows() -> None:
    limiter = RateLimiter("2/minute")
    assert limiter.hit("token:1", T0).allowed and limiter.hit("token:1", T0).allowed
    assert not limiter.hit("token:1", T0).allowed
    assert limiter.hit("token:2", T0).allowed
    assert limiter.hit("addr:127.0.0.1", T0).remaining == 1


def test_burst_caps_one_second_and_a_refusal_by_either_counts_in_neither() -> None:
    limiter = RateLimiter("7/minute", burst=5)
    first = [limiter.hit("k", T0 + i * 0.1) for i in range(6)]
    assert [a.allowed for a in first] == [True] * 5 + [False]
    assert first[-1].retry_after == 1 and first[-1].remaining == 2  # the minute still has room
    assert limiter.hit("k", T0 + 1.05).allowed  # the first request left the one-second window
    assert limiter.hit("k", T0 + 1.15).allowed  # ... and the second: 7 in the minute now
    minute_full = limiter.hit("k", T0 + 3)
    assert not minute_full.allowed and minute_full.retry_after == 57
    # That refusal took no place in the burst window: after the minute, a full burst of 5 fits again.
    assert [limiter.hit("k", T0 + 61.2 + i * 0.01).allowed for i in range(6)] == [True] * 5 + [False]


def test_prune_forgets_quiet_keys_only() -> None:
    limiter = RateLimiter("10/minute", burst=3)
    limiter.hit("quiet")
    limiter.hit("busy")
    limiter._windows["quiet"][0] -= 120  # its request was two minutes ago
    limiter._seconds["quiet"][0] -= 120
    asyncio.run(limiter.prune())
    assert set(limiter._windows) == {"busy"}
    assert limiter.hit("busy").remaining == 8


@pytest.mark.parametrize("rate", ["120/min", "10/second", "1000/hour"])
def test_the_period_comes_from_the_rate(rate: str) -> None:
    limiter = RateLimiter(rate)
    allowance = limiter.item.amount
    for i in range(allowance):
        assert limiter.hit("k", T0 + i * limiter.period / (2 * allowance)).allowed
    refused = limiter.hit("k", T0 + limiter.period / 2)
    assert not refused.allowed
    assert refused.retry_after == max(1, round(limiter.period / 2))  # whole seconds, at least one
    assert limiter.hit("k", T0 + limiter.period + 0.001).allowed
