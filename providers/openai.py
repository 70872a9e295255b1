"""OpenAI-compatible Chat Completions (``POST {base_url}/chat/completions``).

Works for OpenAI and the many servers that speak its format: vLLM, llama.cpp server,
LM Studio, Ollama's ``/v1``, Groq, Together, xAI, OpenRouter...  Streaming asks for
usage with ``stream_options: {"include_usage": true}``; servers that still send none
get their usage counted offline and marked estimated.

Tools go as ``tools``/``tool_choice``/``parallel_tool_calls``, structured output as
``response_format: {"type": "json_schema", ...}``; the answer's ``message.tool_calls``
(in a stream: indexed deltas whose argument text comes in fragments) become
:class:`~orchestration.toolcalls.ToolCall` objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx

from orchestration.errors import ProviderError
from orchestration.llm import Completion, CompletionChunk, CompletionRequest
from orchestration.toolcalls import ToolCall, openai_messages
from orchestration.usage import Usage, UsageReader

from ._errors import error_class, request_id_of, vendor_error
from ._http import HttpProvider
from ._tools import OpenAIToolDeltas, openai_tool_fields, tool_call
from ._wire import estimate_usage, no_retry_once_delivered, str_or_none

__all__ = ["OPENAI_BASE_URL", "OpenAIProvider", "parse_openai_usage"]

OPENAI_BASE_URL = "https://api.openai.com/v1"


def parse_openai_usage(
    raw: Any, request: CompletionRequest, model: str, content: str, tool_calls: Sequence[ToolCall] = ()
) -> tuple[Usage, tuple[str, ...]]:
    """Usage from an OpenAI ``usage`` object; cached tokens are part of the prompt and
    reasoning tokens part of the completion, as OpenAI reports them.  Missing counts,
    and counts that cannot be right (negative, NaN, infinite), are estimated offline
    (and the usage marked so); the second value lists the ones that could not be right."""
    if not isinstance(raw, Mapping):
        return estimate_usage(request, model, content, tool_calls), ()
    read = UsageReader()
    prompt = read.count(raw, "prompt_tokens")
    completion = read.count(raw, "completion_tokens")
    cached = read.count(raw.get("prompt_tokens_details"), "cached_tokens", "prompt_tokens_details.")
    reasoning = read.count(
        raw.get("completion_tokens_details"), "reasoning_tokens", "completion_tokens_details."
    )
    cost = read.cost(raw, "cost")  # OpenRouter and some gateways report what they charged
    estimated = prompt is None or completion is None
    if estimated:
        guess = estimate_usage(request, model, content, tool_calls)
        prompt = guess.input_tokens if prompt is None else prompt
        completion = guess.output_tokens if completion is None else completion
    usage = Usage(
        input_tokens=prompt or 0,
        output_tokens=completion or 0,
        cached_input_tokens=min(cached or 0, prompt or 0),
        reasoning_tokens=min(reasoning or 0, completion or 0),
        cost_usd=cost or 0.0,
        calls=1,
        estimated=estimated,
    )
    return usage, tuple(read.rejected)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # a few servers answer with content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


class OpenAIProvider(HttpProvider):
    """An OpenAI-compatible Chat Completions endpoint.

    Args:
        model: the default model (a request's ``model`` wins).
        api_key: the key; when omitted it is read from ``OPENAI_API_KEY`` now, unless
            ``base_url`` was passed explicitly (so your OpenAI key is never sent to
            another server by accident: pass that server's key as ``api_key``).
        base_url: the API root (``.../v1``); default ``OPENAI_BASE_URL`` or OpenAI's.
        name: the provider name in results and errors (e.g. ``"groq"``).
        stream_usage: send ``stream_options.include_usage`` when streaming.
        max_tokens_field: ``"max_tokens"`` or ``"max_completion_tokens"`` (default: the
            latter for OpenAI itself, whose reasoning models require it).
        timeout, max_response_bytes, rate_limiter, headers, limits, transport: see
            :class:`~providers._http.HttpProvider`.
    """

    name = "openai"
    default_base_url = OPENAI_BASE_URL
    default_model = "gpt-4o-mini"
    key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    base_url_env: ClassVar[str | None] = "OPENAI_BASE_URL"
    chat_path = "/chat/completions"

    def __init__(
        self,
        model: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        name: str | None = None,
        stream_usage: bool = True,
        max_tokens_field: str | None = None,
        require_key: bool | None = None,
        **options: Any,
    ) -> None:
        base_url, api_key = self._endpoint_from_env(base_url, api_key)
        official = httpx.URL(base_url).host == "api.openai.com" if "://" in base_url else False
        if (official if require_key is None else require_key) and not api_key:
            raise self._missing_key(name, "anthropic|ollama|local|scripted")
        super().__init__(base_url=base_url, api_key=api_key, model=model, name=name, **options)
        self.stream_usage = stream_usage
        self.max_tokens_field = max_tokens_field or ("max_completion_tokens" if official else "max_tokens")

    def _payload(self, request: CompletionRequest, model: str, stream: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": model, "messages": openai_messages(request.messages)}
        if request.max_tokens is not None:
            payload[self.max_tokens_field] = request.max_tokens
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.stop:
            payload["stop"] = list(request.stop)
        if request.uses_tools or request.tool_choice is not None:
            payload.update(openai_tool_fields(request))
        payload.update(request.options)
        if stream:
            payload["stream"] = True
            if self.stream_usage:
                payload["stream_options"] = {"include_usage": True}
        return payload

    async def complete(self, request: CompletionRequest) -> Completion:
        """One Chat Completions call."""
        model = self._model(request)
        payload = self._payload(request, model, stream=False)
        async with self._limited(request, model) as slot:
            data, headers = await self._post_json(self.chat_path, payload, model, slot)
            if not isinstance(data, Mapping):
                raise self._malformed(f"expected a JSON object, got {type(data).__name__}", model)
            choices = data.get("choices")
            if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
                if "error" in data:
                    raise self._error_object(data, model, headers)
                raise self._malformed("no 'choices' in the answer", model)
            choice = choices[0]
            message = choice.get("message")
            content = _text(message.get("content")) if isinstance(message, Mapping) else ""
            calls = self._tool_calls(message, model) if isinstance(message, Mapping) else ()
            usage, rejected = parse_openai_usage(data.get("usage"), request, model, content, calls)
            slot.settle(usage)
        return Completion(
            content=content,
            usage=usage,
            model=str_or_none(data.get("model")) or model,
            finish_reason=str_or_none(choice.get("finish_reason")),
            request_id=request_id_of(headers) or str_or_none(data.get("id")),
            provider=self.name,
            rejected_usage=rejected,
            tool_calls=calls,
        )

    def _tool_calls(self, message: Mapping[str, Any], model: str) -> tuple[ToolCall, ...]:
        raw = message.get("tool_calls")
        if not raw:
            return ()
        if not isinstance(raw, list):
            raise self._malformed("'tool_calls' is not a list", model)
        calls = []
        for index, entry in enumerate(raw):
            function = entry.get("function") if isinstance(entry, Mapping) else None
            call = (
                tool_call(function.get("name"), function.get("arguments"), entry.get("id"), f"call_{index}")
                if isinstance(function, Mapping) and isinstance(entry, Mapping)
                else None
            )
            if call is None:
                raise self._malformed(f"tool call {index} has no function name", model)
            calls.append(call)
        return tuple(calls)

    def _error_object(self, data: Mapping[str, Any], model: str, headers: httpx.Headers) -> ProviderError:
        vendor = vendor_error(data)
        kind = error_class(None, vendor)
        detail = vendor.message if vendor and vendor.message else "unknown error"
        return self._error(kind, f"error in a 200 answer: {detail}", model, request_id=request_id_of(headers))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        """Stream the answer; the last chunk carries usage and the finish reason."""
        model = self._model(request)
        payload = self._payload(request, model, stream=True)
        parts: list[str] = []
        deltas = OpenAIToolDeltas()
        async with (
            self._limited(request, model) as slot,
            self._open_stream(self.chat_path, payload, model, slot) as response,
        ):
            with no_retry_once_delivered(parts):
                usage_raw: Any = None
                finish: str | None = None
                answered_model: str | None = None
                done = False
                async for event, data in self._sse(response, model):
                    if data.strip() == "[DONE]":
                        done = True
                        break
                    chunk = self._json_object(data, "stream event", model, response)
                    if event == "error" or chunk.get("error") is not None:
                        raise self._stream_error(chunk, model, response)
                    answered_model = str_or_none(chunk.get("model")) or answered_model
                    if chunk.get("usage"):
                        usage_raw = chunk["usage"]
                    for choice in chunk.get("choices") or ():
                        if not isinstance(choice, Mapping):
                            continue
                        delta = choice.get("delta")
                        if not isinstance(delta, Mapping):
                            delta = {}
                        text = _text(delta.get("content"))
                        if text:
                            parts.append(text)
                            yield CompletionChunk(delta=text, model=answered_model or model)
                        if "tool_calls" in delta:
                            deltas.add(delta["tool_calls"])
                        finish = str_or_none(choice.get("finish_reason")) or finish
                if not done and finish is None:
                    raise self._cut(model, response, "data: [DONE]")
                calls = self._assembled(deltas, model, response) if deltas else ()
            usage, rejected = parse_openai_usage(usage_raw, request, model, "".join(parts), calls)
            slot.settle(usage)
        yield CompletionChunk(
            usage=usage,
            finish_reason=finish,
            model=answered_model or model,
            rejected_usage=rejected,
            tool_calls=calls,
        )

    def _assembled(
        self, deltas: OpenAIToolDeltas, model: str, response: httpx.Response
    ) -> tuple[ToolCall, ...]:
        calls = deltas.calls()
        for index, call in enumerate(calls):
            if call is None:
                raise self._malformed(f"streamed tool call {index} has no function name", model, response)
        return calls  # type: ignore[return-value]  # no None left
