"""OpenAI-compatible adapter against the fake vendor over real sockets."""

from __future__ import annotations

import email.utils
import logging
import time

import httpx
import pytest
from fakevendor import FakeVendor, Reply
from provider_helpers import SECRET, WaitRecorder, collect, policy, request

from orchestration.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContextLengthError,
    MalformedResponseError,
    OverloadedError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
)
from orchestration.llm import (
    Completion,
    Provider,
    as_provider,
    is_native_provider,
)
from orchestration.pricing import PriceTable
from orchestration.retry import is_retryable, retry_call
from providers.openai import OpenAIProvider


def make(vendor: FakeVendor, **options: object) -> OpenAIProvider:
    return OpenAIProvider("gpt-4o-mini", api_key=SECRET, base_url=f"{vendor.url}/v1", **options)  # type: ignore[arg-type]


async def test_complete_content_usage_cost_and_wire_format(vendor: FakeVendor) -> None:
    vendor.script(
        Reply.ok(
            "Hi there, friend.",
            prompt_tokens=1000,
            completion_tokens=200,
            cached_tokens=400,
            reasoning_tokens=50,
        )
    )
    async with make(vendor) as provider:
        result = await provider.complete(request(max_tokens=64, temperature=0.2, stop=["\n\n"]))
    assert result.content == "Hi there, friend."
    assert result.provider == "openai" and result.model == "gpt-4o-mini"
    assert result.finish_reason == "stop" and result.request_id == "req_fake_openai"
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens) == (1000, 200)
    assert (usage.cached_input_tokens, usage.reasoning_tokens, usage.calls) == (400, 50, 1)
    assert not usage.estimated and usage.cost_usd == 0.0
    # gpt-4o-mini: $0.15/M input, $0.075/M cached input, $0.60/M output
    expected = (600 * 0.15 + 400 * 0.075 + 200 * 0.60) / 1_000_000
    assert PriceTable().cost(result.model, usage) == pytest.approx(expected)
    sent = vendor.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert (sent.body["max_tokens"], sent.body["temperature"], sent.body["stop"]) == (64, 0.2, ["\n\n"])
    assert "stream" not in sent.body


async def test_options_pass_through_and_provider_prefix_is_stripped(vendor: FakeVendor) -> None:
    async with make(vendor) as provider:
        await provider.complete(request(model="openai:gpt-4.1-mini", options={"seed": 7, "top_p": 0.5}))
    body = vendor.requests[0].body
    assert (body["model"], body["seed"], body["top_p"]) == ("gpt-4.1-mini", 7, 0.5)


async def test_missing_usage_is_counted_offline_and_marked_estimated(vendor: FakeVendor) -> None:
    vendor.script(Reply.ok("four words right here", usage=False))
    async with make(vendor) as provider:
        result = await provider.complete(request())
    assert result.usage.estimated
    assert result.usage.output_tokens == 4 and result.usage.input_tokens > 5
    assert result.usage.calls == 1


async def test_stream_deltas_and_final_usage(vendor: FakeVendor) -> None:
    vendor.script(Reply.ok("one two three four", prompt_tokens=30, completion_tokens=9))
    async with make(vendor) as provider:
        chunks = await collect(provider, request())
    assert "".join(c.delta for c in chunks) == "one two three four"
    assert [c.delta for c in chunks[:-1]] == ["one ", "two ", "three ", "four"]
    last = chunks[-1]
    assert last.usage is not None and (last.usage.input_tokens, last.usage.output_tokens) == (30, 9)
    assert last.finish_reason == "stop" and not last.usage.estimated
    assert all(c.usage is None for c in chunks[:-1])
    body = vendor.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_stream_without_usage_is_estimated(vendor: FakeVendor) -> None:
    vendor.script(Reply.ok("alpha beta", usage=False))
    async with make(vendor) as provider:
        chunks = await collect(provider, request())
    usage = chunks[-1].usage
    assert usage is not None and usage.estimated and usage.output_tokens == 2


async def test_stream_without_done_marker_but_finished_is_accepted(vendor: FakeVendor) -> None:
    vendor.script(Reply.ok("fine", done_marker=False))
    async with make(vendor) as provider:
        chunks = await collect(provider, request())
    assert chunks[-1].finish_reason == "stop"


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "0.25"}, 0.25),
        # no Retry-After: the reset of the exhausted limit
        (
            {
                "x-ratelimit-limit-tokens": "1000",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "1.5s",
                "x-ratelimit-limit-requests": "60",
                "x-ratelimit-remaining-requests": "12",
                "x-ratelimit-reset-requests": "40s",
            },
            1.5,
        ),
    ],
)
async def test_429_retried_after_the_server_wait(
    vendor: FakeVendor, headers: dict[str, str], wait: float
) -> None:
    vendor.script(
        Reply.error(
            429, "Rate limit reached", error_type="requests", code="rate_limit_exceeded", headers=headers
        )
    )
    sleep = WaitRecorder()
    async with make(vendor) as provider:
        result = await retry_call(lambda: provider.complete(request()), policy(), sleep=sleep)
    assert result.content == "Hello from the fake vendor."
    assert sleep.waits == [wait]
    assert len(vendor.requests) == 2


async def test_retry_after_http_date(vendor: FakeVendor) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    vendor.script(Reply.error(429, "slow down", headers={"retry-after": when}))
    async with make(vendor) as provider:
        with pytest.raises(RateLimitError) as caught:
            await provider.complete(request())
    assert caught.value.retry_after is not None and 25 <= caught.value.retry_after <= 31
    assert caught.value.status_code == 429 and caught.value.request_id == "req_fake_openai"


async def test_5xx_and_529_backoff_then_success(vendor: FakeVendor) -> None:
    vendor.script(
        Reply.error(500, "boom", error_type="server_error"),
        Reply.error(529, "Overloaded"),
        Reply.error(503, "unavailable"),
    )
    sleep = WaitRecorder()
    errors: list[BaseException] = []
    async with make(vendor) as provider:
        result = await retry_call(
            lambda: provider.complete(request()),
            policy(),
            sleep=sleep,
            on_retry=lambda _n, e, _w: errors.append(e),
        )
    assert result.content
    assert [type(e) for e in errors] == [ServiceUnavailableError, OverloadedError, ServiceUnavailableError]
    assert [getattr(e, "status_code", None) for e in errors] == [500, 529, 503]
    # no Retry-After: exponential backoff with full jitter, ceilings 0.5, 1, 2 s
    assert len(sleep.waits) == 3
    assert all(0 <= w <= c for w, c in zip(sleep.waits, [0.5, 1.0, 2.0], strict=True))
    assert len(vendor.requests) == 4


async def test_retries_are_capped(vendor: FakeVendor) -> None:
    vendor.script(*[Reply.error(500, "boom")] * 5)
    sleep = WaitRecorder()
    async with make(vendor) as provider:
        with pytest.raises(ServiceUnavailableError):
            await retry_call(lambda: provider.complete(request()), policy(max_retries=2), sleep=sleep)
    assert len(vendor.requests) == 3 and len(sleep.waits) == 2


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (Reply.error(400, "Invalid 'temperature'", error_type="invalid_request_error"), BadRequestError),
        (Reply.error(401, "Incorrect API key provided", code="invalid_api_key"), AuthenticationError),
        (Reply.error(403, "forbidden"), AuthenticationError),
        (Reply.error(404, "The model `nope` does not exist", code="model_not_found"), BadRequestError),
        (
            Reply.error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                error_type="insufficient_quota",
                code="insufficient_quota",
            ),
            QuotaExceededError,
        ),
        (
            Reply.error(
                400, "This model's maximum context length is 128000 tokens", code="context_length_exceeded"
            ),
            ContextLengthError,
        ),
    ],
)
async def test_no_retry_where_none_is_allowed(
    vendor: FakeVendor, reply: Reply, kind: type[ProviderError]
) -> None:
    vendor.script(reply)
    sleep = WaitRecorder()
    async with make(vendor) as provider:
        with pytest.raises(kind) as caught:
            await retry_call(lambda: provider.complete(request()), policy(), sleep=sleep)
    assert type(caught.value) is kind
    assert caught.value.status_code == reply.status and caught.value.provider == "openai"
    assert caught.value.request_id == "req_fake_openai"
    assert not is_retryable(caught.value)
    assert sleep.waits == [] and len(vendor.requests) == 1
    assert reply.message in str(caught.value)


async def test_hints_name_what_to_fix(vendor: FakeVendor) -> None:
    vendor.script(Reply.error(401, "bad key"), Reply.error(404, "no such model"))
    async with make(vendor) as provider:
        with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
            await provider.complete(request())
        with pytest.raises(BadRequestError, match="model name and the base URL"):
            await provider.complete(request())


async def test_timeout_is_retryable_and_then_answers(vendor: FakeVendor) -> None:
    vendor.script(Reply.slow(6.0))  # the fake hangs until the client gives up
    sleep = WaitRecorder()
    errors: list[BaseException] = []
    async with make(vendor, timeout=httpx.Timeout(10.0, read=0.5)) as provider:
        result = await retry_call(
            lambda: provider.complete(request()),
            policy(),
            sleep=sleep,
            on_retry=lambda _n, e, _w: errors.append(e),
        )
    assert result.content
    assert errors and all(isinstance(e, ProviderTimeoutError) for e in errors)
    assert "within 0.5s (read timeout)" in str(errors[0])


async def test_malformed_json_body(vendor: FakeVendor) -> None:
    vendor.script(Reply.raw(200, '{"choices": [', content_type="application/json"))
    async with make(vendor) as provider:
        with pytest.raises(MalformedResponseError, match="not JSON") as caught:
            await provider.complete(request())
    assert caught.value.status_code == 200 and not is_retryable(caught.value)


async def test_json_without_choices(vendor: FakeVendor) -> None:
    vendor.script(Reply.raw(200, '{"object": "list"}', content_type="application/json"))
    async with make(vendor) as provider:
        with pytest.raises(MalformedResponseError, match="no 'choices'"):
            await provider.complete(request())


async def test_error_object_in_a_200_answer(vendor: FakeVendor) -> None:
    vendor.script(
        Reply.raw(
            200,
            '{"error": {"message": "upstream exploded", "type": "server_error"}}',
            content_type="application/json",
        )
    )
    async with make(vendor) as provider:
        with pytest.raises(ServiceUnavailableError, match="upstream exploded"):
            await provider.complete(request())


async def test_html_error_page_from_a_proxy(vendor: FakeVendor) -> None:
    page = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    vendor.script(Reply.raw(502, page), Reply.raw(200, page))
    async with make(vendor) as provider:
        with pytest.raises(ServiceUnavailableError, match="HTML page") as caught:
            await provider.complete(request())
        assert caught.value.status_code == 502 and is_retryable(caught.value)
        with pytest.raises(MalformedResponseError, match=r"HTML page, not JSON.*OPENAI_BASE_URL"):
            await provider.complete(request())


async def test_wrong_base_url_path(vendor: FakeVendor) -> None:
    async with OpenAIProvider("gpt-4o-mini", api_key=SECRET, base_url=vendor.url) as provider:  # no /v1
        with pytest.raises(BadRequestError, match=r"HTML page.*API root") as caught:
            await provider.complete(request())
    assert caught.value.status_code == 404


async def test_connection_refused_names_provider_and_fix() -> None:
    async with OpenAIProvider("gpt-4o-mini", api_key=SECRET, base_url="http://127.0.0.1:9/v1") as provider:
        with pytest.raises(ServiceUnavailableError) as caught:
            await provider.complete(request())
    message = str(caught.value)
    assert message.startswith("openai: cannot connect to http://127.0.0.1:9/v1")
    assert "is the server running" in message and is_retryable(caught.value)


def test_bad_base_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"openai: base_url 'ftp://x' must look like http\(s\)"):
        OpenAIProvider(api_key=SECRET, base_url="ftp://x")


@pytest.mark.parametrize("declare", [True, False])
async def test_huge_response_is_refused(vendor: FakeVendor, declare: bool) -> None:
    vendor.script(Reply.huge(3 * 1024 * 1024, declare_length=declare))
    async with make(vendor, max_response_bytes=1024 * 1024) as provider:
        with pytest.raises(MalformedResponseError, match="larger than 1048576 bytes"):
            await provider.complete(request())


async def test_error_mid_stream_after_content_is_not_retried(vendor: FakeVendor) -> None:
    vendor.script(Reply.stream_error(after=2, error_type="server_error", message="upstream died"))
    received: list[str] = []

    async def call() -> None:
        async for chunk in provider.stream(request()):
            received.append(chunk.delta)

    sleep = WaitRecorder()
    async with make(vendor) as provider:
        with pytest.raises(ServiceUnavailableError, match="upstream died") as caught:
            await retry_call(call, policy(), sleep=sleep)
    assert getattr(caught.value, "no_retry", False) and not is_retryable(caught.value)
    assert received == ["Hello ", "from "] and sleep.waits == [] and len(vendor.requests) == 1


async def test_error_in_stream_before_content_is_retried(vendor: FakeVendor) -> None:
    vendor.script(Reply.stream_error(after=0, error_type="server_error"))
    sleep = WaitRecorder()
    async with make(vendor) as provider:
        chunks = await retry_call(lambda: collect(provider, request()), policy(), sleep=sleep)
    assert "".join(c.delta for c in chunks) == "Hello from the fake vendor."
    assert len(sleep.waits) == 1 and len(vendor.requests) == 2


@pytest.mark.parametrize("fault", [Reply.cut(after=2), Reply.drop(after=2)])
async def test_cut_stream_after_first_byte_is_an_error_and_not_retried(
    vendor: FakeVendor, fault: Reply
) -> None:
    vendor.script(fault)
    sleep = WaitRecorder()
    async with make(vendor) as provider:
        with pytest.raises(ServiceUnavailableError) as caught:
            await retry_call(lambda: collect(provider, request()), policy(), sleep=sleep)
    assert getattr(caught.value, "no_retry", False)
    assert sleep.waits == [] and len(vendor.requests) == 1


async def test_http_error_before_stream_starts_is_mapped(vendor: FakeVendor) -> None:
    vendor.script(Reply.error(429, "slow down", headers={"retry-after": "3"}))
    async with make(vendor) as provider:
        with pytest.raises(RateLimitError) as caught:
            await collect(provider, request())
    assert caught.value.retry_after == 3.0 and is_retryable(caught.value)


async def test_no_api_key_in_errors_reprs_or_logs(
    vendor: FakeVendor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"Incorrect API key provided: {SECRET}. You can find your API key at ..."
    vendor.script(
        Reply.error(401, echo),
        Reply.raw(500, f"<html>{SECRET}</html>"),
        Reply.stream_error(after=1, message=f"bad {SECRET}"),
    )
    seen: list[str] = []
    async with make(vendor) as provider:
        seen.append(repr(provider))
        for call in (
            provider.complete(request()),
            provider.complete(request()),
            collect(provider, request()),
        ):
            with pytest.raises(ProviderError) as caught:
                await call
            seen += [str(caught.value), repr(caught.value), str(caught.value.args)]
    async with OpenAIProvider("m", api_key=SECRET, base_url="http://127.0.0.1:9/v1") as refused:
        with pytest.raises(ProviderError) as caught:
            await refused.complete(request())
        seen += [str(caught.value), repr(caught.value), repr(refused)]
    seen += [record.getMessage() for record in caplog.records]
    assert any("[REDACTED]" in text for text in seen)
    assert not [text for text in seen if SECRET in text or "SECRETSECRET" in text]


def test_missing_key_is_one_line_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        OpenAIProvider()
    message = str(caught.value)
    assert "\n" not in message
    assert "OPENAI_API_KEY is not set" in message and "--provider" in message


def test_env_is_read_at_construction_not_import(monkeypatch: pytest.MonkeyPatch, vendor: FakeVendor) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", f"{vendor.url}/v1")
    provider = OpenAIProvider()
    assert provider.base_url == f"{vendor.url}/v1" and provider.model == "gpt-4o-mini"
    assert provider.max_tokens_field == "max_tokens"  # a compatible server, not api.openai.com
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert OpenAIProvider().max_tokens_field == "max_completion_tokens"


async def test_explicit_base_url_never_receives_the_env_key(
    monkeypatch: pytest.MonkeyPatch, vendor: FakeVendor
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    async with OpenAIProvider("local-model", base_url=f"{vendor.url}/v1") as provider:
        await provider.complete(request())
    assert "authorization" not in vendor.requests[0].headers


async def test_client_is_reused_and_reopened_after_aclose(vendor: FakeVendor) -> None:
    provider = make(vendor)
    await provider.complete(request())
    first = provider._client
    await provider.complete(request())
    assert provider._client is first
    await provider.aclose()
    result = await provider.complete(request())
    assert isinstance(result, Completion) and provider._client is not first
    await provider.aclose()


async def test_huge_stream_is_refused(vendor: FakeVendor) -> None:
    vendor.script(Reply.ok(" ".join(["word"] * 2000)))
    async with make(vendor, max_response_bytes=4096) as provider:
        with pytest.raises(MalformedResponseError, match="larger than 4096 bytes") as caught:
            await collect(provider, request())
    assert getattr(caught.value, "no_retry", False)  # content had been delivered


def test_adapters_are_native_providers(vendor: FakeVendor) -> None:
    provider = make(vendor)
    assert is_native_provider(provider) and as_provider(provider) is provider
    assert isinstance(provider, Provider) and provider.name == "openai"
