"""The shared rate limiter: pure window decisions, header adaptation, and bursts against a real
fake vendor whose own clock says how many requests arrived in any window."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from fakevendor import FakeVendor, Reply
from provider_helpers import ANTHROPIC_SECRET, SECRET, SlowFirstRequests, collect, request

from orchestration.errors import RateLimitError
from orchestration.ratelimit import (
    RateLimit,
    RateLimiter,
    RateWindow,
    ServerLimits,
    parse_duration,
    parse_rate_limit_headers,
    process_rate_limiters,
)
from orchestration.registry import resolve_provider
from providers.anthropic import AnthropicProvider
from providers.openai import OpenAIProvider
from providers.registry import get_provider


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
    starts: list[float] = []
    for _ in range(25):
        start = window.earliest(starts[-1] if starts else 0.0)
        assert start is not None
        window.sent(window.record(start), start)
        starts.append(start)
    assert starts == [0.0] * 10 + [60.0] * 10 + [120.0] * 5
    assert max_in_window(starts, 60.0) == 10


def test_a_call_counts_from_when_it_was_sent_and_holds_its_place_until_then() -> None:
    window = RateWindow(RateLimit(requests=2, period=1.0))
    first, second = window.record(0.0), window.record(0.0)
    assert window.earliest(0.0) is None  # both may go out at any moment: wait for them
    window.sent(first, 0.9)  # its connection took 0.9 s to open
    assert window.earliest(0.9) == pytest.approx(1.9)  # not 1.0: the vendor saw it at 0.9
    window.release(second)  # never went out
    assert window.earliest(0.9) == 0.9


def test_window_token_limit_and_settle() -> None:
    window = RateWindow(RateLimit(tokens=1000))
    first = window.record(0.0, 600)
    assert window.earliest(0.0, 600) is None  # 600 on its way + 600 > 1000
    window.sent(first, 0.0)
    assert window.earliest(1.0, 600) == 60.0  # wait for the first to leave the window
    window.settle(first, 100)  # it really used 100
    assert window.earliest(1.0, 600) == 1.0
    assert window.earliest(1.0, 5000) == 60.0  # bigger than the limit: runs alone


def test_window_prunes_calls_older_than_the_period() -> None:
    window = RateWindow(RateLimit(requests=2, period=10.0))
    for now in (0.0, 1.0):
        window.sent(window.record(now), now)
    assert window.earliest(2.0) == 10.0
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


async def take(limiter: RateLimiter, provider: str, model: str) -> float:
    """Acquire a place, send at once, and return when it was granted."""
    reservation = await limiter.acquire(provider, model)
    limiter.sent(reservation)
    return reservation.start


async def test_limits_by_provider_and_model() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        {"openai": RateLimit(requests=2), "openai:gpt-4o": RateLimit(requests=1), "*": RateLimit(requests=5)},
        adapt=False,
        clock=clock,
        sleep=clock.sleep,
    )
    assert [await take(limiter, "openai", "gpt-4o") for _ in range(2)] == [0.0, 60.0]
    assert [await take(limiter, "openai", "gpt-4o-mini") for _ in range(2)] == [60.0, 60.0]
    assert await take(limiter, "openai", "o3") == 120.0  # shares the "openai" window with gpt-4o-mini
    assert [await take(limiter, "ollama", "llama3.2") for _ in range(6)] == [120.0] * 5 + [180.0]


async def test_a_waiter_is_woken_when_the_call_ahead_is_sent() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(requests=1, period=1.0), clock=clock, sleep=clock.sleep)
    first = await limiter.acquire("openai", "m")
    second = asyncio.ensure_future(limiter.acquire("openai", "m"))
    await asyncio.sleep(0)
    assert not second.done()  # the first may go out at any moment
    clock.now = 0.5
    limiter.sent(first)
    assert (await asyncio.wait_for(second, 5)).start == 1.5  # one period after the first was sent


async def test_a_call_never_handed_to_the_client_gives_its_place_back(vendor: FakeVendor) -> None:
    limiter = RateLimiter(RateLimit(requests=1, period=3600.0))
    provider = OpenAIProvider(
        "gpt-4o-mini", api_key=SECRET, base_url=f"{vendor.url}/v1", rate_limiter=limiter
    )
    async with provider:
        with pytest.raises(TypeError):  # the payload cannot be encoded: nothing is sent
            await provider.complete(request(options={"seed": object()}))
        # Its place is free again: the next call does not wait an hour.
        await asyncio.wait_for(provider.complete(request()), 10)
    assert len(vendor.requests) == 1


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
    assert window is not None and [g.tokens for g in window.grants()] == [23]


# The fake vendor stamps a request when its handler runs; sharing this process, it can lag
# the moment the request was written by its own scheduling.  Windows measured on its clock
# allow that much lag (far less than the delays the old behaviour let through).
SERVER_LAG = 0.05


async def test_requests_arriving_at_the_vendor_stay_under_the_limit(vendor: FakeVendor) -> None:
    """A request is counted when it is sent, not when its place is granted: under a 4/s
    limit the vendor's own clock never sees more than 4 requests in a second, although the
    first four took 0.3 s to go out."""
    limiter = RateLimiter(RateLimit(requests=4, period=1.0))
    async with OpenAIProvider(
        "gpt-4o-mini",
        api_key=SECRET,
        base_url=f"{vendor.url}/v1",
        rate_limiter=limiter,
        transport=SlowFirstRequests(4, 0.3),
    ) as provider:
        await asyncio.gather(*(provider.complete(request()) for _ in range(12)))
    arrivals = [r.at for r in vendor.requests]
    assert len(arrivals) == 12
    assert max_in_window(arrivals, 1.0 - SERVER_LAG) == 4


async def test_burst_of_concurrent_calls_from_two_providers_stays_under_the_limit(
    vendor: FakeVendor,
) -> None:
    limiter = RateLimiter(RateLimit(requests=10, period=0.5))
    # Two provider instances (two "runs") share one limiter; half the calls stream.
    first = OpenAIProvider("gpt-4o-mini", api_key=SECRET, base_url=f"{vendor.url}/v1", rate_limiter=limiter)
    second = OpenAIProvider("gpt-4o-mini", api_key=SECRET, base_url=f"{vendor.url}/v1", rate_limiter=limiter)

    async def call(i: int) -> None:
        provider = first if i % 2 else second
        if i % 4 < 2:
            await provider.complete(request())
        else:
            await collect(provider, request())

    async with first, second:
        await asyncio.gather(*(call(i) for i in range(30)))
    arrivals = [r.at for r in vendor.requests]
    assert len(arrivals) == 30
    assert max_in_window(arrivals, 0.5 - SERVER_LAG) == 10  # the first 10 go at once, never more


async def test_server_headers_tighten_and_pause_the_limiter(vendor: FakeVendor) -> None:
    # The configured period (1 s) is also the period of the window the headers adapt.
    limiter = RateLimiter(RateLimit(period=1.0))
    vendor.script(
        Reply.ok(
            headers={
                "x-ratelimit-limit-requests": "3",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "300ms",
            }
        )
    )
    async with OpenAIProvider(
        "gpt-4o-mini", api_key=SECRET, base_url=f"{vendor.url}/v1", rate_limiter=limiter
    ) as provider:
        await provider.complete(request())
        await asyncio.gather(*(provider.complete(request()) for _ in range(6)))
    arrivals = [r.at for r in vendor.requests]
    assert min(arrivals[1:]) - arrivals[0] >= 0.3  # nothing before the reset
    assert max_in_window(arrivals[1:], 1.0 - SERVER_LAG) == 3  # then at most 3 a second, as it said


async def test_429_retry_after_pauses_every_caller(vendor: FakeVendor) -> None:
    limiter = RateLimiter(RateLimit(period=1.0))
    vendor.script(
        Reply.error(429, "rate limited", error_type="rate_limit_error", headers={"retry-after": "1"})
    )
    first = AnthropicProvider(
        "claude-haiku-4-5", api_key=ANTHROPIC_SECRET, base_url=vendor.url, rate_limiter=limiter
    )
    second = AnthropicProvider(
        "claude-haiku-4-5", api_key=ANTHROPIC_SECRET, base_url=vendor.url, rate_limiter=limiter
    )
    async with first, second:
        with pytest.raises(RateLimitError):
            await first.complete(request())
        await asyncio.gather(*((first, second)[i % 2].complete(request()) for i in range(4)))
    arrivals = [r.at for r in vendor.requests]
    assert len(arrivals) == 5 and min(arrivals[1:]) - arrivals[0] >= 1.0


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


async def test_providers_built_for_each_run_share_one_limiter_per_vendor_and_key(
    vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI and the server build a provider per run with ``resolve_provider``: a 429 with
    Retry-After seen by one run pauses the next run's calls to that vendor with that key."""
    key = SECRET + "-shared"  # its own entry in the process's pool
    monkeypatch.setenv("OPENAI_BASE_URL", f"{vendor.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", key)
    vendor.script(Reply.error(429, "slow down", error_type="rate_limit_error", headers={"retry-after": "1"}))
    first_run = resolve_provider("openai", "gpt-4o-mini")
    second_run = resolve_provider("openai", "gpt-4o-mini")
    async with first_run, second_run:
        with pytest.raises(RateLimitError):
            await first_run.complete(request())
        await second_run.complete(request())
    arrivals = [r.at for r in vendor.requests]
    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 1.0
    assert first_run.rate_limiter is second_run.rate_limiter
    monkeypatch.setenv("OPENAI_API_KEY", key + "-other")
    async with resolve_provider("openai", "gpt-4o-mini") as other_key:
        assert other_key.rate_limiter is not first_run.rate_limiter
    assert key not in repr(process_rate_limiters()) and key not in repr(first_run.rate_limiter)
    # A limiter passed explicitly still wins.
    own = RateLimiter()
    assert get_provider("openai", "gpt-4o-mini", rate_limiter=own).rate_limiter is own  # type: ignore[attr-defined]
