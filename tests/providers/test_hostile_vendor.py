"""A hostile (or broken) vendor against every adapter, over real sockets.

What a vendor's JSON can carry and a careless parser trusts: ``"\\ud800"`` escapes that
decode to lone surrogates (text that cannot be written as UTF-8), and usage counts that
are negative, ``NaN`` or ``Infinity``.  Text is repaired where it enters (the
:class:`Completion`, each :class:`CompletionChunk`, the error); impossible counts are
estimated offline, the usage is marked estimated, and the numbers are kept in
``rejected_usage`` for the run to report.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from fakevendor import FakeVendor, Reply
from provider_helpers import ANTHROPIC_SECRET, SECRET, collect, request

from orchestration.errors import ProviderError, describe
from orchestration.llm import Completion, CompletionChunk
from orchestration.ratelimit import RateLimit, RateLimiter
from providers._http import HttpProvider
from providers.anthropic import AnthropicProvider
from providers.ollama import OllamaProvider
from providers.openai import OpenAIProvider

HOSTILE = "half a pair \ud800 and a stray low \udfff, then a real one \ud83d\ude00."
REPAIRED = "half a pair \ufffd and a stray low \ufffd, then a real one \U0001f600."

Make = Callable[[FakeVendor], HttpProvider]
VENDORS: dict[str, Make] = {
    "openai": lambda v: OpenAIProvider("gpt-4o-mini", api_key=SECRET, base_url=f"{v.url}/v1"),
    "anthropic": lambda v: AnthropicProvider("claude-haiku-4-5", api_key=ANTHROPIC_SECRET, base_url=v.url),
    "ollama": lambda v: OllamaProvider("llama3.2", host=v.url),
}


def _answer(chunks: list[CompletionChunk]) -> tuple[str, CompletionChunk]:
    return "".join(chunk.delta for chunk in chunks), chunks[-1]


@pytest.mark.parametrize("name", VENDORS)
async def test_lone_surrogates_in_an_answer_are_replaced_where_it_enters(
    vendor: FakeVendor, name: str
) -> None:
    vendor.script(Reply.ok(HOSTILE), Reply.ok(HOSTILE))
    async with VENDORS[name](vendor) as provider:
        completion = await provider.complete(request())
        streamed, _last = _answer(await collect(provider, request()))
    assert completion.content == REPAIRED
    assert streamed == REPAIRED
    completion.content.encode("utf-8")  # what every report, store and stream will do


@pytest.mark.parametrize("name", VENDORS)
async def test_a_vendor_error_quoting_lone_surrogates_gives_a_writable_message(
    vendor: FakeVendor, name: str
) -> None:
    vendor.script(Reply.error(400, message="refused: \ud800"))
    async with VENDORS[name](vendor) as provider:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(request())
    assert "refused: \ufffd" in str(caught.value)
    describe(caught.value).encode("utf-8")


def test_every_string_of_an_answer_is_valid_whoever_builds_it() -> None:
    completion = Completion("a\ud800", model="m\udfff", finish_reason="stop\ud800", request_id="r\ud800")
    assert (completion.content, completion.model) == ("a\ufffd", "m\ufffd")
    assert (completion.finish_reason, completion.request_id) == ("stop\ufffd", "r\ufffd")
    assert CompletionChunk(delta="\ud800x").delta == "\ufffdx"
    assert Completion.from_dict(completion.to_dict()) == completion


IMPOSSIBLE = [
    pytest.param(-1_000_000, 5, ("prompt_tokens=-1000000",), id="negative-prompt"),
    pytest.param(12, math.nan, ("completion_tokens=nan",), id="nan-output"),
    pytest.param(math.inf, -math.inf, ("prompt_tokens=inf", "completion_tokens=-inf"), id="infinite"),
]


@pytest.mark.parametrize(("prompt", "output", "rejected"), IMPOSSIBLE)
@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_openai_counts_that_cannot_be_right_are_estimated_and_kept(
    vendor: FakeVendor, prompt: float, output: float, rejected: tuple[str, ...], streaming: bool
) -> None:
    vendor.script(Reply.ok("four words of answer", prompt_tokens=prompt, completion_tokens=output))
    async with VENDORS["openai"](vendor) as provider:
        if streaming:
            _text, last = _answer(await collect(provider, request()))
            usage, kept = last.usage, last.rejected_usage
        else:
            completion = await provider.complete(request())
            usage, kept = completion.usage, completion.rejected_usage
    assert usage is not None and usage.estimated
    assert usage.input_tokens > 0 and usage.output_tokens > 0 and not usage.impossible()
    if prompt == 12:
        assert usage.input_tokens == 12  # the believable count is kept
    assert kept == rejected


async def test_a_negative_gateway_cost_is_ignored(vendor: FakeVendor) -> None:
    vendor.script(Reply.ok("fine", cost=-0.665))
    async with VENDORS["openai"](vendor) as provider:
        completion = await provider.complete(request())
    assert completion.usage.cost_usd == 0.0  # the core prices it from its tokens
    assert not completion.usage.estimated  # the token counts themselves were fine
    assert completion.rejected_usage == ("cost=-0.665",)


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_anthropic_and_ollama_impossible_counts_are_estimated(
    vendor: FakeVendor, streaming: bool
) -> None:
    vendor.script(
        Reply.ok("three words here", prompt_tokens=-3, completion_tokens=math.nan),
        Reply.ok("three words here", prompt_tokens=math.inf, completion_tokens=-7),
    )
    usages = []
    for name, rejected in (
        ("anthropic", {"input_tokens=-3", "output_tokens=nan"}),
        ("ollama", {"prompt_eval_count=inf", "eval_count=-7"}),
    ):
        async with VENDORS[name](vendor) as provider:
            if streaming:
                last = (await collect(provider, request()))[-1]
                usage, kept = last.usage, last.rejected_usage
            else:
                completion = await provider.complete(request())
                usage, kept = completion.usage, completion.rejected_usage
        assert usage is not None
        usages.append(usage)
        assert set(kept) == rejected, name
    assert all(u.estimated and u.input_tokens > 0 and u.output_tokens > 0 for u in usages)


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_anthropic_usage_without_output_tokens_is_estimated(
    vendor: FakeVendor, streaming: bool
) -> None:
    vendor.script(Reply.ok("five words in this answer", prompt_tokens=40, omit_usage=("output_tokens",)))
    async with VENDORS["anthropic"](vendor) as provider:
        if streaming:
            usage = (await collect(provider, request()))[-1].usage
        else:
            usage = (await provider.complete(request())).usage
    assert usage is not None
    assert usage.estimated and usage.input_tokens == 40 and usage.output_tokens > 0


async def test_infinite_rate_limit_headers_neither_crash_nor_pause_forever(vendor: FakeVendor) -> None:
    limiter = RateLimiter({"openai": RateLimit(requests=100)})
    hostile = {
        "x-ratelimit-limit-requests": "inf",
        "x-ratelimit-remaining-requests": "nan",
        "x-ratelimit-reset-requests": "9" * 400 + "s",
        "x-ratelimit-limit-tokens": "-5",
        "x-ratelimit-remaining-tokens": "Infinity",
    }
    vendor.script(Reply.ok("one", headers=hostile), Reply.ok("two"))
    provider = OpenAIProvider(
        "gpt-4o-mini", api_key=SECRET, base_url=f"{vendor.url}/v1", rate_limiter=limiter
    )
    async with provider:
        first = await provider.complete(request())
        second = await provider.complete(request())  # not paused until the end of time
    assert (first.content, second.content) == ("one", "two")
