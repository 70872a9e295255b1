"""Any provider object of the seed README's shapes works through the core adapter."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration import (
    CompletionRequest,
    ConfigError,
    MalformedResponseError,
    RateLimitError,
    ScriptedProvider,
    as_provider,
    is_retryable,
)

REQUEST = CompletionRequest(
    messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
    model="gpt-4o-mini",
    max_tokens=50,
)


class Message:
    def __init__(self, content: str) -> None:
        self.content = content


async def test_seed_openai_shape_without_usage_is_estimated() -> None:
    seen: dict[str, Any] = {}

    class OpenAIProvider:
        def complete(self, messages: Any, **kwargs: Any) -> Message:
            seen.update(kwargs, messages=messages)
            return Message("hi!")

    completion = await as_provider(OpenAIProvider()).complete(REQUEST)
    assert completion.content == "hi!"
    assert (
        completion.usage.estimated
        and completion.usage.input_tokens > 0
        and completion.usage.output_tokens > 0
    )
    assert seen["model"] == "gpt-4o-mini" and seen["max_tokens"] == 50
    assert seen["messages"][1] == {"role": "user", "content": "hello there"}


async def test_usage_dict_with_only_total_tokens_is_split_and_marked_estimated() -> None:
    class Response:
        content = "ok"
        usage = {"total_tokens": 100}

    class P:
        def complete(self, messages: Any, **kwargs: Any) -> Response:
            return Response()

    usage = (await as_provider(P()).complete(REQUEST)).usage
    assert usage.total_tokens == 100 and usage.estimated


async def test_async_complete_with_exact_usage() -> None:
    class Response:
        content = "ok"
        usage = {"prompt_tokens": 12, "completion_tokens": 3}

    class P:
        async def complete(self, messages: Any) -> Response:  # accepts no kwargs at all
            return Response()

    usage = (await as_provider(P()).complete(REQUEST)).usage
    assert (usage.input_tokens, usage.output_tokens, usage.estimated) == (12, 3, False)


async def test_usage_missing_or_impossible_counts_are_estimated_and_kept() -> None:
    class Response:
        def __init__(self, usage: dict[str, float]) -> None:
            self.content = "a four word answer"
            self.usage = usage

    class P:
        def __init__(self, usage: dict[str, float]) -> None:
            self.usage = usage

        def complete(self, messages: Any, **kwargs: Any) -> Response:
            return Response(self.usage)

    only_prompt = await as_provider(P({"input_tokens": 12})).complete(REQUEST)
    assert only_prompt.usage.estimated and only_prompt.usage.input_tokens == 12
    assert only_prompt.usage.output_tokens > 0 and only_prompt.rejected_usage == ()
    hostile = await as_provider(P({"prompt_tokens": -9, "completion_tokens": float("nan")})).complete(REQUEST)
    assert hostile.usage.estimated and hostile.usage.input_tokens > 0 and hostile.usage.output_tokens > 0
    assert hostile.rejected_usage == ("prompt_tokens=-9", "completion_tokens=nan")


async def test_anthropic_style_content_blocks() -> None:
    class Block:
        def __init__(self, text: str) -> None:
            self.text = text

    class Response:
        content = [Block("part one "), Block("part two")]

    class P:
        def complete(self, messages: Any, **kwargs: Any) -> Response:
            return Response()

    assert (await as_provider(P()).complete(REQUEST)).content == "part one part two"


async def test_chat_shape_gets_system_and_user_prompts() -> None:
    seen: dict[str, Any] = {}

    class Legacy:
        def chat(
            self,
            system_prompt: str,
            user_prompt: str,
            model: str,
            temperature: float = 0.7,
            max_tokens: int = 100,
        ) -> str:
            seen.update(system_prompt=system_prompt, user_prompt=user_prompt, model=model)
            return "legacy answer"

    completion = await as_provider(Legacy()).complete(REQUEST)
    assert completion.content == "legacy answer"
    assert seen == {"system_prompt": "be brief", "user_prompt": "hello there", "model": "gpt-4o-mini"}


async def test_foreign_http_errors_are_mapped_to_retryable_classes() -> None:
    class VendorRateLimit(Exception):
        status_code = 429

    class P:
        def complete(self, messages: Any, **kwargs: Any) -> str:
            raise VendorRateLimit("too many")

    with pytest.raises(RateLimitError) as caught:
        await as_provider(P()).complete(REQUEST)
    assert caught.value.status_code == 429 and is_retryable(caught.value)


async def test_non_text_response_is_a_malformed_response() -> None:
    class P:
        def complete(self, messages: Any, **kwargs: Any) -> int:
            return 7

    with pytest.raises(MalformedResponseError, match="no text content"):
        await as_provider(P()).complete(REQUEST)


def test_objects_without_a_known_method_are_rejected_clearly() -> None:
    with pytest.raises(ConfigError, match="neither complete"):
        as_provider(object())
    with pytest.raises(ConfigError, match="provider is required"):
        as_provider(None)


def test_native_providers_pass_through() -> None:
    provider = ScriptedProvider()
    assert as_provider(provider) is provider


async def test_scripted_provider_scripts_replies_failures_and_streams() -> None:
    provider = ScriptedProvider(["first", "second"], failures=[None, RateLimitError("x")])
    assert (await provider.complete(REQUEST)).content == "first"
    with pytest.raises(RateLimitError):
        await provider.complete(REQUEST)
    chunks = [c async for c in provider.stream(REQUEST)]
    assert "".join(c.delta for c in chunks) == "Response to: hello there"  # list exhausted: echo
    assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens > 0
    assert provider.call_count == 3
