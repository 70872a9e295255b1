"""One retry engine: tenacity's AsyncRetrying, waiting ``Retry-After`` when the server
gives one, retrying by error class, with an injectable sleep."""

from __future__ import annotations

from typing import Any

import pytest
import tenacity

from orchestration import BadRequestError, ConfigError, RateLimitError, RetryPolicy, retry_async
from orchestration.errors import ServiceUnavailableError
from orchestration.retry import retry_call


class Sleeps:
    """An injected sleep that records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Flaky:
    """Raises the given errors in turn, then answers."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def policy(**kwargs: Any) -> RetryPolicy:
    return RetryPolicy(
        **{"max_retries": 3, "base_delay": 0.5, "max_delay": 4.0, "max_total_wait": 60.0, **kwargs}
    )


async def test_a_policy_is_a_tenacity_async_retrying_that_waits_what_the_server_asked() -> None:
    sleeps = Sleeps()
    retrying = policy().retrying(sleep=sleeps)
    assert isinstance(retrying, tenacity.AsyncRetrying)
    flaky = Flaky(
        RateLimitError("slow down", retry_after=2.5), ServiceUnavailableError("busy", retry_after=7)
    )
    assert await retrying(flaky) == "ok"
    assert sleeps.waits == [2.5, 7.0] and flaky.calls == 3


async def test_retry_call_retries_by_class_and_reports_each_retry() -> None:
    sleeps, retries = Sleeps(), []
    flaky = Flaky(TimeoutError(), ServiceUnavailableError("busy"))
    result = await retry_call(
        flaky, policy(), sleep=sleeps, on_retry=lambda n, e, w: retries.append((n, type(e), w))
    )
    assert result == "ok" and flaky.calls == 3
    assert [(n, kind) for n, kind, _ in retries] == [(1, TimeoutError), (2, ServiceUnavailableError)]
    assert [w for *_, w in retries] == sleeps.waits and all(
        0 <= w <= 1.0 for w in sleeps.waits
    )  # jittered backoff

    for error in (BadRequestError("no such model"), ConfigError("bad"), ValueError("a bug")):
        never = Flaky(error)
        with pytest.raises(type(error)):
            await retry_call(never, policy(), sleep=sleeps)
        assert never.calls == 1


async def test_retries_stop_at_max_retries_and_at_the_total_wait_cap() -> None:
    sleeps = Sleeps()
    always = Flaky(*[TimeoutError() for _ in range(10)])
    with pytest.raises(TimeoutError):
        await retry_call(always, policy(max_retries=2), sleep=sleeps)
    assert always.calls == 3

    sleeps = Sleeps()
    patient = Flaky(*[RateLimitError("wait", retry_after=40) for _ in range(10)])
    with pytest.raises(RateLimitError):  # a second 40 s wait would pass the 60 s total
        await retry_call(patient, policy(), sleep=sleeps)
    assert patient.calls == 2 and sleeps.waits == [40.0]


async def test_the_retry_async_decorator_uses_the_same_engine_and_honours_retry_after() -> None:
    sleeps = Sleeps()
    flaky = Flaky(RateLimitError("slow down", retry_after=3.0))

    @retry_async(max_retries=2, base_delay=0.1, sleep=sleeps)
    async def call() -> str:
        return await flaky()

    assert await call() == "ok"
    assert sleeps.waits == [3.0]
