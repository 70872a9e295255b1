"""Helpers shared by the provider tests (not fixtures: those live in conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

import httpx

from orchestration.llm import CompletionChunk, CompletionRequest
from orchestration.retry import RetryPolicy

# Shaped like real keys so that both redact()'s patterns and exact matching are exercised.
SECRET = "sk-test-SECRETSECRET-0123456789abcdef"
ANTHROPIC_SECRET = "sk-ant-api03-SECRETSECRET-abcdef0123456789"


def request(text: str = "Say hello.", **fields: object) -> CompletionRequest:
    """A small request with a system and a user message."""
    return CompletionRequest(
        messages=[{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}],
        **fields,  # type: ignore[arg-type]
    )


class Streaming(Protocol):
    """A provider that streams (every adapter under test)."""

    def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]: ...


async def collect(provider: Streaming, req: CompletionRequest) -> list[CompletionChunk]:
    """Every chunk ``provider.stream(req)`` yields."""
    return [chunk async for chunk in provider.stream(req)]


class WaitRecorder:
    """An injected ``sleep`` for retry_call that records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def policy(max_retries: int = 3) -> RetryPolicy:
    """The core's retry policy with small bases (waits are recorded, not slept)."""
    return RetryPolicy(max_retries=max_retries, base_delay=0.5, max_delay=8.0, max_total_wait=60.0)


class SlowFirstRequests(httpx.AsyncHTTPTransport):
    """httpx's real transport, whose first ``count`` requests wait ``delay`` seconds before
    going out, as a slow connection set-up (TLS, a proxy, a busy event loop) makes them."""

    def __init__(self, count: int, delay: float) -> None:
        super().__init__()
        self._left = count
        self._delay = delay

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._left > 0:
            self._left -= 1
            await asyncio.sleep(self._delay)
        return await super().handle_async_request(request)
