"""The adapters' side of the shared :class:`~orchestration.ratelimit.RateLimiter`.

:func:`limited_call` waits for a call's place (requests, and tokens when the limiter
counts them) and yields a :class:`Slot`.  The slot tells the limiter when the request
has really gone out (httpx's trace of the request body being written), so the limits
hold for what the vendor receives; it also feeds the limiter the vendor's rate-limit
headers and, at the end, the real token count.  A 429 with ``Retry-After`` pauses the
provider's model for everyone sharing the limiter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from orchestration.errors import RateLimitError
from orchestration.llm import CompletionRequest
from orchestration.ratelimit import RateLimiting
from orchestration.tokens import count_message_tokens
from orchestration.usage import Usage

__all__ = ["Slot", "limited_call"]

# httpcore's trace events once a request (headers and body) is written to the socket.
_SENT_EVENTS = ("http11.send_request_body.complete", "http2.send_request_body.complete")


class Slot:
    """A call's place in the rate limiter: says when the request went out, feeds the
    limiter headers and the real token count."""

    __slots__ = ("_attempted", "_limiter", "_model", "_provider", "_reservation")

    def __init__(self, limiter: RateLimiting | None, provider: str, model: str, reservation: Any) -> None:
        self._limiter = limiter
        self._provider = provider
        self._model = model
        self._reservation = reservation
        self._attempted = False

    def sending(self) -> None:
        """The request is about to be handed to the HTTP client."""
        self._attempted = True

    def sent(self) -> None:
        """The request went out (idempotent): it counts from now on."""
        self._attempted = True
        if self._limiter is not None and self._reservation is not None:
            self._limiter.sent(self._reservation)

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpx's ``trace`` request extension: marks the slot sent once the body is written."""
        if event in _SENT_EVENTS:
            self.sent()

    def observe(self, headers: Mapping[str, str]) -> None:
        """Pass a response's rate-limit headers on to the limiter."""
        if self._limiter is not None:
            self._limiter.observe_headers(self._provider, self._model, headers)

    def settle(self, usage: Usage) -> None:
        """Replace the call's reserved tokens with what it really used."""
        if self._limiter is not None and self._reservation is not None:
            self._limiter.settle(self._reservation, usage.total_tokens)

    def close(self) -> None:
        """At the end of the call: a request that may have gone out counts as sent; one that
        was never handed to the client gives its place back."""
        if self._limiter is None or self._reservation is None:
            return
        if self._attempted:
            self._limiter.sent(self._reservation)
        else:
            self._limiter.release(self._reservation)


_NO_SLOT = Slot(None, "", "", None)


@asynccontextmanager
async def limited_call(
    limiter: RateLimiting | None, provider: str, request: CompletionRequest, model: str
) -> AsyncIterator[Slot]:
    """Wait for a place for one call of ``provider``/``model`` (no wait without a limiter)."""
    if limiter is None:
        yield _NO_SLOT
        return
    tokens = 0
    if limiter.counts_tokens(provider, model):
        tokens = count_message_tokens(request.counted_messages, model).tokens + (request.max_tokens or 0)
    slot = Slot(limiter, provider, model, await limiter.acquire(provider, model, tokens))
    try:
        yield slot
    except RateLimitError as error:
        if error.retry_after:
            limiter.pause(provider, model, error.retry_after)
        raise
    finally:
        slot.close()
