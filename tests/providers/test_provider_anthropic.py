"""Anthropic Messages adapter against the fake vendor over real sockets."""

from __future__ import annotations

import logging

import pytest
from fakevendor import FakeVendor, Reply
from provider_helpers import ANTHROPIC_SECRET, WaitRecorder, collect, policy, request

from orchestration.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContextLengthError,
    OverloadedError,
    ProviderError,
    QuotaExceededError,
    ServiceUnavailableError,
)
from orchestration.llm import CompletionRequest
from orchestration.pricing import PriceTable
from orchestration.retry import is_retryable, retry_call
from providers.anthropic import ANTHROPIC_VERSION, AnthropicProvider


def make(vendor: FakeVendor, **options: object) -> AnthropicProvider:
    return AnthropicProvider("claude-sonnet-4-5", api_key=ANTHROPIC_SECRET, base_url=vendor.url, **options)  # type: ignore[arg-type]


async def test_complete_wire_format_and_cache_aware_usage(vendor: FakeVendor) -> None:
    vendor.script(
        Reply.ok(
            "Bonjour.", prompt_tokens=100, cache_write_tokens=2000, cached_tokens=3000, completion_tokens=40
        )
    )
    async with make(vendor) as provider:
        result = await provider.complete(request(temperature=0.5, stop=["END"]))
    assert result.content == "Bonjour." and result.finish_reason == "end_turn"
    assert result.provider == "anthropic" and result.request_id == "req_fake_anthropic"
    usage = result.usage
    # Anthropic's input_tokens exclude cache traffic; ours include it.
    assert usage.input_tokens == 100 + 2000 + 3000
    assert (usage.cached_input_tokens, usage.cache_write_tokens, usage.output_tokens) == (3000, 2000, 40)
    # claude-sonnet-4-5: $3/M input, $0.30/M cache reads, $3.75/M cache writes, $15/M output
    expected = (100 * 3.0 + 3000 * 0.30 + 2000 * 3.75 + 40 * 15.0) / 1_000_000
    assert PriceTable().cost(result.model, usage) == pytest.approx(expected)
    sent = vendor.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == ANTHROPIC_SECRET and "authorization" not in sent.headers
    assert sent.headers["anthropic-version"] == ANTHROPIC_VERSION == "2023-06-01"
    assert sent.body["system"] == "You are terse."
    assert sent.body["messages"] == [{"role": "user", "content": "Say hello."}]
    assert sent.body["max_tokens"] == 4096  # required by the API: defaulted
    assert (sent.body["temperature"], sent.body["stop_sequences"]) == (0.5, ["END"])


async def test_max_tokens_from_request(vendor: FakeVendor) -> None:
    async with make(vendor, default_max_tokens=1000) as provider:
        await provider.complete(request(max_tokens=77))
        await provider.complete(CompletionRequest(messages=[{"role": "user", "content": "hi"}]))
    assert [r.body["max_tokens"] for r in vendor.requests] == [77, 1000]
    assert "system" not in vendor.requests[1].body


async def test_missing_usage_is_estimated(vendor: FakeVendor) -> None:
    vendor.script(Reply.ok("a b c", usage=False))
    async with make(vendor) as provider:
        result = await provider.complete(request())
    assert result.usage.estimated and result.usage.output_tokens == 3


async def test_stream_events_and_cumulative_output_tokens(vendor: FakeVendor) -> None:
    vendor.script(Reply.ok("one two three", prompt_tokens=50, cached_tokens=10, completion_tokens=7))
    async with make(vendor) as provider:
        chunks = await collect(provider, request())
    assert [c.delta for c in chunks[:-1]] == ["one ", "two ", "three"]
    last = chunks[-1]
    assert last.usage is not None and last.finish_reason == "end_turn"
    # message_start said output_tokens=1; message_delta's cumulative 7 replaces it (not 8).
    assert (last.usage.input_tokens, last.usage.cached_input_tokens, last.usage.output_tokens) == (60, 10, 7)
    assert vendor.requests[0].body["stream"] is True


async def test_529_overloaded_is_retried(vendor: FakeVendor) -> None:
    vendor.script(Reply.error(529, "Overloaded", error_type="overloaded_error"))
    sleep = WaitRecorder()
    errors: list[BaseException] = []
    async with make(vendor) as provider:
        result = await retry_call(
            lambda: provider.complete(request()),
            policy(),
            sleep=sleep,
            on_retry=lambda _n, e, _w: errors.append(e),
        )
    assert result.content and len(sleep.waits) == 1
    assert isinstance(errors[0], OverloadedError) and errors[0].request_id == "req_fake_anthropic"


async def test_429_with_retry_after(vendor: FakeVendor) -> None:
    vendor.script(
        Reply.error(
            429,
            "Number of request tokens has exceeded your per-minute rate limit",
            error_type="rate_limit_error",
            headers={"retry-after": "7"},
        )
    )
    sleep = WaitRecorder()
    async with make(vendor) as provider:
        await retry_call(lambda: provider.complete(request()), policy(), sleep=sleep)
    assert sleep.waits == [7.0]


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (
            Reply.error(
                400, "prompt is too long: 250000 tokens > 200000 maximum", error_type="invalid_request_error"
            ),
            ContextLengthError,
        ),
        (
            Reply.error(
                400,
                "Your credit balance is too low to access the Anthropic API.",
                error_type="invalid_request_error",
            ),
            QuotaExceededError,
        ),
        (Reply.error(401, "invalid x-api-key", error_type="authentication_error"), AuthenticationError),
        (Reply.error(403, "no access", error_type="permission_error"), AuthenticationError),
        (Reply.error(404, "model: claude-nope", error_type="not_found_error"), BadRequestError),
        (
            Reply.error(413, "Request exceeds the maximum size", error_type="request_too_large"),
            BadRequestError,
        ),
    ],
)
async def test_fatal_errors_are_not_retried(
    vendor: FakeVendor, reply: Reply, kind: type[ProviderError]
) -> None:
    vendor.script(reply)
    sleep = WaitRecorder()
    async with make(vendor) as provider:
        with pytest.raises(kind) as caught:
            await retry_call(lambda: provider.complete(request()), policy(), sleep=sleep)
    assert type(caught.value) is kind and caught.value.status_code == reply.status
    assert sleep.waits == [] and len(vendor.requests) == 1


async def test_overloaded_error_event_mid_stream(vendor: FakeVendor) -> None:
    vendor.script(Reply.stream_error(after=1, error_type="overloaded_error", message="Overloaded"))
    sleep = WaitRecorder()
    async with make(vendor) as provider:
        with pytest.raises(OverloadedError, match="Overloaded") as caught:
            await retry_call(lambda: collect(provider, request()), policy(), sleep=sleep)
    assert getattr(caught.value, "no_retry", False) and sleep.waits == []


async def test_error_event_before_content_is_retried(vendor: FakeVendor) -> None:
    vendor.script(Reply.stream_error(after=0, error_type="overloaded_error"))
    sleep = WaitRecorder()
    async with make(vendor) as provider:
        chunks = await retry_call(lambda: collect(provider, request()), policy(), sleep=sleep)
    assert chunks[-1].usage is not None and len(sleep.waits) == 1


@pytest.mark.parametrize("fault", [Reply.cut(after=1), Reply.drop(after=1)])
async def test_cut_stream(vendor: FakeVendor, fault: Reply) -> None:
    vendor.script(fault)
    async with make(vendor) as provider:
        with pytest.raises(ServiceUnavailableError) as caught:
            await collect(provider, request())
    assert getattr(caught.value, "no_retry", False)
    if fault.kind == "cut":
        assert "ended before message_stop" in str(caught.value)


async def test_missing_key_and_env(monkeypatch: pytest.MonkeyPatch, vendor: FakeVendor) -> None:
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY is not set") as caught:
        AnthropicProvider()
    assert "\n" not in str(caught.value)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_SECRET)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", vendor.url)
    async with AnthropicProvider() as provider:
        result = await provider.complete(request())
    assert result.model == "claude-haiku-4-5"
    assert vendor.requests[0].headers["x-api-key"] == ANTHROPIC_SECRET


async def test_key_never_leaks(vendor: FakeVendor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    vendor.script(
        Reply.error(401, f"invalid x-api-key {ANTHROPIC_SECRET}", error_type="authentication_error")
    )
    async with make(vendor) as provider:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(request())
        texts = [str(caught.value), repr(caught.value), repr(provider)]
    texts += [r.getMessage() for r in caplog.records]
    assert not [t for t in texts if "SECRETSECRET" in t]
    assert is_retryable(caught.value) is False
