"""Retry decisions, kept apart from sleeping.

:class:`RetryPolicy` decides *whether* an error is worth another attempt and *how long*
to wait (the server's ``retry_after`` when it gave one, else exponential backoff with
full jitter from tenacity); :func:`retry_call` does the waiting with an injectable
``sleep``.  The first attempt runs without any retry machinery, so the common path costs
nothing.
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
        import tenacity

        backoff = tenacity.wait_exponential(multiplier=self.base_delay, max=self.max_delay, exp_base=2)
        ceiling = backoff(_state(attempt))
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


def _state(attempt: int) -> tenacity.RetryCallState:
    import tenacity

    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return state


async def retry_call(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, BaseException, float], Any] | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    first_error: Exception | None = None,
) -> T:
    """Call ``fn`` until it succeeds or ``policy`` gives up (then re-raise the last error).

    ``on_retry(attempt, error, wait)`` is called before each wait.  ``first_error`` says
    the first attempt was already made (by the caller's fast path) and failed with it.
    """
    attempt = 1
    waited = 0.0
    pending = first_error
    while True:
        try:
            if pending is not None:
                error, pending = pending, None
                raise error
            return await fn()
        except Exception as error:
            wait = policy.decide(attempt, error, waited)
            if wait is None:
                raise
            if on_retry is not None:
                on_retry(attempt, error, wait)
            await sleep(wait)
            waited += wait
            attempt += 1


def retry_async(
    max_retries: int = 3,
    base_delay: float = 1.0,
    max_delay: float = 30.0,
    *,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Decorator: retry an async function with exponential backoff and jitter (tenacity).

    Retries exceptions in ``retry_on`` except those that can never succeed on a retry
    (non-retryable provider errors such as bad requests or auth failures, budget and
    config errors).  After ``max_retries`` retries the last exception is raised as is.
    """

    def should_retry(error: BaseException) -> bool:
        if not isinstance(error, retry_on) or isinstance(error, _NEVER_RETRY):
            return False
        if isinstance(error, ProviderError):
            return error.retryable
        return True

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            import tenacity

            retrying = tenacity.AsyncRetrying(
                stop=tenacity.stop_after_attempt(max_retries + 1),
                wait=tenacity.wait_random_exponential(multiplier=base_delay, max=max_delay),
                retry=tenacity.retry_if_exception(should_retry),
                reraise=True,
            )
            return await retrying(fn, *args, **kwargs)  # type: ignore[no-any-return]

        return wrapper

    return decorate
