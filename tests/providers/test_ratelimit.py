"""The shared rate limiter: pure window decisions, header adaptation, and a 200-call burst."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from fakevendor import FakeVendor, Reply
from provider_helpers import ANTHROPIC_SECRET, SECRET, request

from orchestration.errors import RateLimitError
from orchestration.ratelimit import (
    RateLimit,
    RateLimiter,
    RateWindow,
    ServerLimits,
    parse_duration,
    parse_rate_limit_headers,
)
from providers.anthropic import AnthropicProvider
from providers.openai import OpenAIProvider


class FakeClock:
    """A monotonic clock that only moves when a sleeper wakes at its target time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        target = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, target)


def max_in_window(starts: Sequence[float], period: float) -> int:
    """The most starts in any window (t - period, t]."""
    ordered = sorted(starts)
    return max(sum(1 for s in ordered if t - period < s <= t) for t in ordered)


def test_window_keeps_every_minute_under_the_request_limit() -> None:
    window = RateWindow(RateLimit(requests=10))
    starts = []
    for _ in range(25):
        start = window.earliest(0.0)
        window.record(start)
        starts.append(start)
    assert starts == [0.0] * 10 + [60.0] * 10 + [120.0] * 5
    assert max_in_window(starts, 60.0) == 10


def test_window_token_limit_and_settle() -> None:
    window = RateWindow(RateLimit(tokens=1000))
    first = window.record(window.earliest(0.0, 600), 600)
    assert window.earliest(1.0, 600) == 60.0  # 600 + 600 > 1000: wait for the first to leave
    window.settle(first, 100)  # it really used 100
    assert window.earliest(1.0, 600) == 1.0
    assert window.earliest(1.0, 5000) == 60.0  # bigger than the limit: runs alone


def test_window_is_first_come_first_served_and_prunes() -> None:
    window = RateWindow(RateLimit(requests=2, period=10.0))
    for now in (0.0, 1.0, 2.0):
        window.record(window.earliest(now), 0)
    assert len(window) == 3
    assert window.earliest(30.0) == 30.0 and len(window) == 0


def test_parse_duration() -> None:
    assert parse_duration("1s") == 1.0
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_duration("2.5") == 2.5
    assert parse_duration("soon") is None and parse_duration("") is None


def test_parse_openai_and_anthropic_headers() -> None:
    openai = parse_rate_limit_headers(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert openai == ServerLimits(500, 499, 0.12, 30000, 0, 360.0)
    wall = 1_800_000_000.0
    reset = (datetime.fromtimestamp(wall, UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    anthropic = parse_rate_limit_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset,
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": "39000",
        },
        wall_now=wall,
    )
    assert anthropic is not None
    assert (anthropic.requests_limit, anthropic.requests_remaining) == (50, 0)
    assert anthropic.requests_reset == pytest.approx(30.0)
    assert (anthropic.tokens_limit, anthropic.tokens_remaining) == (40000, 39000)
    assert parse_rate_limit_headers({"content-type": "application/json"}) is None


def test_observe_adopts_tighter_limits_and_pauses_when_exhausted() -> None:
    window = RateWindow(RateLimit(requests=100))
    window.observe(5.0, ServerLimits(requests_limit=3, requests_remaining=0, requests_reset=2.0))
    assert window.requests_limit == 3
    assert window.earliest(5.0) == 7.0


def test_rate_limit_validation() -> None:
    with pytest.raises(ValueError, match="requests must be at least 1"):
        RateLimit(requests=0)
    with pytest.raises(ValueError, match="period must be positive"):
        RateLimit(period=0)


def test_limits_by_provider_and_model() -> None:
    limiter = RateLimiter(
        {"openai": RateLimit(requests=2), "openai:gpt-4o": RateLimit(requests=1), "*": RateLimit(requests=5)},
        adapt=False,
        clock=lambda: 0.0,
    )
    assert [limiter.reserve("openai", "gpt-4o").start for _ in range(2)] == [0.0, 60.0]
    assert [limiter.reserve("openai", "gpt-4o-mini").start for _ in range(3)] == [0.0, 0.0, 60.0]
    assert limiter.reserve("openai", "o3").start == 60.0  # shares the "openai" window with gpt-4o-mini
    assert [limiter.reserve("ollama", "llama3.2").start for _ in range(6)][-1] == 60.0


async def test_burst_of_200_concurrent_calls_stays_under_rpm(vendor: FakeVendor) -> None:
    clock = FakeClock()
    grants: list[float] = []
    limiter = RateLimiter(
        RateLimit(requests=50),
        clock=clock,
        sleep=clock.sleep,
        on_grant=lambda _k, start, _t: grants.append(start),
    )
    # Two provider instances (two "runs") share one limiter.
    first = OpenAIProvider("gpt-4o-mini", api_key=SECRET, base_url=f"{vendor.url}/v1", rate_limiter=limiter)
    second = OpenAIProvider("gpt-4o-mini", api_key=SECRET, base_url=f"{vendor.url}/v1", rate_limiter=limiter)
    async with first, second:
        results = await asyncio.gather(
            *((first if i % 2 else second).complete(request()) for i in range(200))
        )
    assert len(results) == 200 and len(vendor.requests) == 200
    assert len(grants) == 200
    assert max_in_window(grants, 60.0) == 50
    assert sorted(grants) == [0.0] * 50 + [60.0] * 50 + [120.0] * 50 + [180.0] * 50


async def test_token_limit_counts_prompt_plus_max_tokens_then_settles(vendor: FakeVendor) -> None:
    clock = FakeClock()
    reserved: list[int] = []
    limiter = RateLimiter(
        RateLimit(tokens=2000),
        clock=clock,
        sleep=clock.sleep,
        on_grant=lambda _k, _s, tokens: reserved.append(tokens),
    )
    vendor.script(Reply.ok("a b c", prompt_tokens=20, completion_tokens=3))
    async with OpenAIProvider(
        "gpt-4o-mini", api_key=SECRET, base_url=f"{vendor.url}/v1", rate_limiter=limiter
    ) as provider:
        await provider.complete(request(max_tokens=500))
    assert 500 < reserved[0] < 600  # counted prompt + max_tokens
    window = limiter.window("openai", "gpt-4o-mini")
    assert window is not None and [g.tokens for g in window._grants] == [23]


async def test_server_headers_tighten_and_pause_the_limiter(vendor: FakeVendor) -> None:
    clock = FakeClock()
    grants: list[float] = []
    limiter = RateLimiter(clock=clock, sleep=clock.sleep, on_grant=lambda _k, start, _t: grants.append(start))
    vendor.script(
        Reply.ok(
            headers={
                "x-ratelimit-limit-requests": "3",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "2s",
            }
        )
    )
    async with OpenAIProvider(
        "gpt-4o-mini", api_key=SECRET, base_url=f"{vendor.url}/v1", rate_limiter=limiter
    ) as provider:
        await provider.complete(request())
        await asyncio.gather(*(provider.complete(request()) for _ in range(4)))
    assert grants == [0.0, 2.0, 2.0, 60.0, 62.0]  # paused 2 s, then at most 3 a minute


async def test_429_retry_after_pauses_every_caller(vendor: FakeVendor) -> None:
    clock = FakeClock()
    grants: list[float] = []
    limiter = RateLimiter(clock=clock, sleep=clock.sleep, on_grant=lambda _k, start, _t: grants.append(start))
    vendor.script(
        Reply.error(429, "rate limited", error_type="rate_limit_error", headers={"retry-after": "12"})
    )
    async with AnthropicProvider(
        "claude-haiku-4-5", api_key=ANTHROPIC_SECRET, base_url=vendor.url, rate_limiter=limiter
    ) as provider:
        with pytest.raises(RateLimitError):
            await provider.complete(request())
        await asyncio.gather(*(provider.complete(request()) for _ in range(3)))
    assert grants == [0.0, 12.0, 12.0, 12.0]


async def test_cancelled_waiter_gives_its_slot_back() -> None:
    limiter = RateLimiter(RateLimit(requests=1, period=3600.0))
    await limiter.acquire("openai", "m")
    waiter = asyncio.ensure_future(limiter.acquire("openai", "m"))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    window = limiter.window("openai", "m")
    assert window is not None and len(window) == 1
