"""Retries, with tenacity as the one retry engine.

:class:`RetryPolicy` decides *whether* an error is worth another attempt (by class:
:func:`is_retryable`) and *how long* to wait (the server's ``retry_after`` when it gave
one, else exponential backoff with full jitter); :meth:`RetryPolicy.retrying` turns it
into a tenacity ``AsyncRetrying`` with an injectable ``sleep``.  :func:`retry_call` runs
a call under it: the first attempt is a plain ``await`` (no retry state is built unless
it fails, so the common path costs nothing), and a failure hands over to tenacity.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .errors import (
    BudgetExceededError,
    CallbackError,
    ConfigError,
    OrchestrationError,
    PlanError,
    ProviderError,
    RunCancelledError,
)

if TYPE_CHECKING:
    import tenacity

__all__ = ["RetryPolicy", "is_retryable", "retry_async", "retry_call"]

T = TypeVar("T")
P = ParamSpec("P")

_NEVER_RETRY = (BudgetExceededError, ConfigError, PlanError, RunCancelledError, CallbackError)


def is_retryable(error: BaseException) -> bool:
    """True for errors a later attempt may not hit: rate limits, overloads, 5xx, timeouts.

    Our own provider errors say so by class; a plain ``TimeoutError`` or a dropped
    connection counts as transient; anything else (bugs, bad requests, auth) does not.
    """
    if isinstance(error, _NEVER_RETRY):
        return False
    if getattr(error, "no_retry", False):  # e.g. a stream that already delivered content
        return False
    if isinstance(error, ProviderError):
        return error.retryable
    if isinstance(error, OrchestrationError):
        return False
    return isinstance(error, (TimeoutError, ConnectionError))


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry and how long to wait between attempts.

    ``max_retries`` counts retries after the first attempt.  Waits are exponential with
    full jitter between 0 and ``base_delay * 2**n`` (capped at ``max_delay``), or exactly
    the server's ``retry_after`` when it gave one.  ``max_total_wait`` caps the sum of all
    waits: a retry that would exceed it is not made.
    """

    max_retries: int = 2
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_total_wait: float = 120.0
    retry_if: Callable[[BaseException], bool] = is_retryable
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def wait_for(self, attempt: int, error: BaseException) -> float:
        """Seconds to wait before attempt ``attempt + 1`` after ``error`` on ``attempt``."""
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after >= 0:
            return float(retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) if self.base_delay > 0 else 0.0
        return self.rng.uniform(0, ceiling) if ceiling > 0 else 0.0

    def decide(self, attempt: int, error: BaseException, waited: float) -> float | None:
        """The wait before the next attempt, or None to give up.

        ``attempt`` is the 1-based number of the attempt that just failed; ``waited`` is
        the total already spent waiting.
        """
        if attempt > self.max_retries or not self.retry_if(error):
            return None
        wait = self.wait_for(attempt, error)
        if waited + wait > self.max_total_wait:
            return None
        return wait

    def retrying(
        self,
        *,
        on_retry: Callable[[int, BaseException, float], Any] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> tenacity.AsyncRetrying:
        """This policy as a tenacity ``AsyncRetrying`` (one per call: it keeps the call's state).

        ``on_retry(attempt, error, wait)`` is called before each wait.
        """
        import tenacity

        policy = self

        def wait(state: tenacity.RetryCallState) -> float:
            return policy.wait_for(state.attempt_number, _error_of(state))

        def stop(state: tenacity.RetryCallState) -> bool:
            # out of retries, or the wait would take the total past max_total_wait
            return (
                state.attempt_number > policy.max_retries
                or state.idle_for + state.upcoming_sleep > policy.max_total_wait
            )

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry is not None:
                on_retry(state.attempt_number, _error_of(state), state.upcoming_sleep)

        return tenacity.AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception(self.retry_if),
            before_sleep=before_sleep if on_retry is not None else None,
            sleep=sleep,
            reraise=True,
        )


def _error_of(state: tenacity.RetryCallState) -> BaseException:
    error = state.outcome.exception() if state.outcome is not None else None
    assert error is not None  # tenacity only waits after a failed attempt
    return error


async def retry_call(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, BaseException, float], Any] | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> T:
    """Call ``fn`` until it succeeds or ``policy`` gives up (then re-raise the last error).

    ``on_retry(attempt, error, wait)`` is called before each wait; ``sleep`` does the
    waiting (inject one to record waits instead).
    """
    try:
        return await fn()  # the common case: no retry state is built
    except Exception as error:
        if policy.max_retries < 1 or not policy.retry_if(error):
            raise
        failed: list[Exception] = [error]

    async def attempt() -> T:
        if failed:  # tenacity's first attempt is the one that just failed
            raise failed.pop()
        return await fn()

    return await policy.retrying(on_retry=on_retry, sleep=sleep)(attempt)  # type: ignore[no-any-return]


def retry_async(
    max_retries: int = 3,
    base_delay: float = 1.0,
    max_delay: float = 30.0,
    *,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Decorator: retry an async function with exponential backoff and jitter (tenacity).

    Retries exceptions in ``retry_on`` except those that can never succeed on a retry
    (non-retryable provider errors such as bad requests or auth failures, budget and
    config errors), waiting ``Retry-After`` when the error carries one (``sleep`` does the
    waiting).  After ``max_retries`` retries the last exception is raised as is.
    """

    def should_retry(error: BaseException) -> bool:
        if not isinstance(error, retry_on) or isinstance(error, _NEVER_RETRY):
            return False
        if isinstance(error, ProviderError):
            return error.retryable
        return True

    policy = RetryPolicy(
        max_retries=max_retries,
        base_delay=base_delay,
        max_delay=max_delay,
        max_total_wait=float("inf"),
        retry_if=should_retry,
    )

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await retry_call(lambda: fn(*args, **kwargs), policy, sleep=sleep)

        return wrapper

    return decorate
