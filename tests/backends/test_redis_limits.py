"""Rate limits shared through a real Redis (127.0.0.1:6379): every process under one limit."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestration.backends.redis_limits import SharedRateLimiter
from orchestration.ratelimit import RateLimit
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]
URL = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def namespace() -> str:
    require_service("Redis", _redis_up(), "start redis-server on 127.0.0.1:6379")
    return f"test-{uuid.uuid4().hex[:10]}"


class Clock:
    """A clock both limiters read; sleeping moves it on (no real waiting)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
async def two(namespace: str) -> AsyncIterator[tuple[SharedRateLimiter, SharedRateLimiter, Clock]]:
    clock = Clock()
    limits = {"vendor": RateLimit(requests=4, tokens=1000, period=60)}
    first = SharedRateLimiter(URL, limits, namespace=namespace, clock=clock, sleep=clock.sleep)
    second = SharedRateLimiter(URL, limits, namespace=namespace, clock=clock, sleep=clock.sleep)
    yield first, second, clock
    await first.close()
    await second.close()


async def test_two_limiters_share_one_request_window(
    two: tuple[SharedRateLimiter, SharedRateLimiter, Clock],
) -> None:
    first, second, clock = two
    granted: list[float] = []
    for limiter in (first, second, first, second, first, second, first, second, first):
        await limiter.acquire("vendor", "m")
        granted.append(clock.now - 1_000_000.0)
    # 4 per 60 s between them, whichever process asks
    assert granted == [0, 0, 0, 0, 60, 60, 60, 60, 120]


async def test_tokens_are_shared_and_settled_to_what_was_used(
    two: tuple[SharedRateLimiter, SharedRateLimiter, Clock],
) -> None:
    first, second, clock = two
    big = await first.acquire("vendor", "m", tokens=900)
    await second.acquire("vendor", "m", tokens=100)  # 1000: the window is full of tokens
    first.settle(big, 100)  # it used far less than it reserved
    await first.flush()
    await second.acquire("vendor", "m", tokens=700)  # fits at once now
    assert clock.now == 1_000_000.0


async def test_a_call_that_never_went_out_gives_its_place_back(
    two: tuple[SharedRateLimiter, SharedRateLimiter, Clock],
) -> None:
    first, second, clock = two
    held = [await first.acquire("vendor", None) for _ in range(4)]
    first.release(held[0])
    await first.flush()
    await second.acquire("vendor", None)
    assert clock.now == 1_000_000.0


async def test_a_vendor_saying_stop_pauses_every_process(
    two: tuple[SharedRateLimiter, SharedRateLimiter, Clock],
) -> None:
    first, second, clock = two
    first.observe_headers(
        "vendor",
        "m",
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "20s",
        },
    )
    await first.flush()
    await second.acquire("vendor", "m")
    assert clock.now == pytest.approx(1_000_020.0)


async def test_unlimited_providers_never_touch_the_window(namespace: str) -> None:
    limiter = SharedRateLimiter(URL, {}, namespace=namespace)
    try:
        reservation = await limiter.acquire("other", "m", tokens=10**9)
        assert reservation.key is None and not limiter.counts_tokens("other", "m")
    finally:
        await limiter.close()


WORKER = f"""
import asyncio, sys
from orchestration.backends.redis_limits import SharedRateLimiter
from orchestration.ratelimit import RateLimit

async def main(namespace):
    limiter = SharedRateLimiter("{URL}", {{"vendor": RateLimit(requests=5, period=3600)}}, namespace=namespace)
    got = 0
    for _ in range(5):
        try:
            await asyncio.wait_for(limiter.acquire("vendor", "m"), 3)
            got += 1
        except TimeoutError:
            break
    await limiter.close()
    print(got)

asyncio.run(main(sys.argv[1]))
"""


def test_processes_sharing_redis_stay_under_one_limit_together(namespace: str) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, namespace], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    granted = [int(w.communicate(timeout=60)[0].strip()) for w in workers]
    assert sum(granted) == 5  # 15 asked for, 5 per hour allowed across all three processes
