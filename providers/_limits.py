"""The adapters' side of the shared :class:`~orchestration.ratelimit.RateLimiter`.

:func:`limited_call` reserves a call's place (requests, and tokens when the limiter
counts them) before the request is sent, and yields a :class:`Slot` that feeds the
limiter the vendor's rate-limit headers and, at the end, the real token count.  A 429
with ``Retry-After`` pauses the provider's model for everyone sharing the limiter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from orchestration.errors import RateLimitError
from orchestration.llm import CompletionRequest
from orchestration.ratelimit import RateLimiter, Reservation
from orchestration.tokens import count_message_tokens
from orchestration.usage import Usage

__all__ = ["Slot", "limited_call"]


class Slot:
    """A call's place in the rate limiter: feeds it headers and the real token count."""

    __slots__ = ("_limiter", "_model", "_provider", "_reservation")

    def __init__(
        self, limiter: RateLimiter | None, provider: str, model: str, reservation: Reservation | None
    ) -> None:
        self._limiter = limiter
        self._provider = provider
        self._model = model
        self._reservation = reservation

    def observe(self, headers: Mapping[str, str]) -> None:
        """Pass a response's rate-limit headers on to the limiter."""
        if self._limiter is not None:
            self._limiter.observe_headers(self._provider, self._model, headers)

    def settle(self, usage: Usage) -> None:
        """Replace the call's reserved tokens with what it really used."""
        if self._limiter is not None and self._reservation is not None:
            self._limiter.settle(self._reservation, usage.total_tokens)


_NO_SLOT = Slot(None, "", "", None)


@asynccontextmanager
async def limited_call(
    limiter: RateLimiter | None, provider: str, request: CompletionRequest, model: str
) -> AsyncIterator[Slot]:
    """Wait for a place for one call of ``provider``/``model`` (no wait without a limiter)."""
    if limiter is None:
        yield _NO_SLOT
        return
    tokens = 0
    if limiter.counts_tokens(provider, model):
        tokens = count_message_tokens(request.messages, model).tokens + (request.max_tokens or 0)
    slot = Slot(limiter, provider, model, await limiter.acquire(provider, model, tokens))
    try:
        yield slot
    except RateLimitError as error:
        if error.retry_after:
            limiter.pause(provider, model, error.retry_after)
        raise
