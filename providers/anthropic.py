"""Anthropic Messages API (``POST {base_url}/v1/messages``).

Authenticates with ``x-api-key`` and a pinned ``anthropic-version``; system messages go
to the top-level ``system`` field; ``max_tokens`` is required, so a default is sent
when the request has none.  Anthropic reports ``input_tokens`` *excluding* prompt-cache
reads and writes; our :class:`~orchestration.usage.Usage` counts them inside
``input_tokens``, so we add them.  In a stream, ``message_delta`` carries the
*cumulative* output count.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from orchestration.llm import Completion, CompletionChunk, CompletionRequest
from orchestration.usage import Usage, UsageReader

from ._errors import request_id_of
from ._http import HttpProvider
from ._wire import estimate_usage, is_number, no_retry_once_delivered, str_or_none

__all__ = ["ANTHROPIC_BASE_URL", "ANTHROPIC_VERSION", "AnthropicProvider", "parse_anthropic_usage"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def parse_anthropic_usage(
    raw: Mapping[str, Any] | None, request: CompletionRequest, model: str, content: str
) -> tuple[Usage, tuple[str, ...]]:
    """Usage from Anthropic's counters: input = input + cache writes + cache reads.

    A missing input or output count (or one that cannot be right: negative, NaN,
    infinite) is counted offline and the usage marked estimated; the second value lists
    the counts that could not be right."""
    read = UsageReader()
    source = raw if isinstance(raw, Mapping) else {}
    fresh = read.count(source, "input_tokens")
    output = read.count(source, "output_tokens")
    written = read.count(source, "cache_creation_input_tokens") or 0
    cached = read.count(source, "cache_read_input_tokens") or 0
    estimated = fresh is None or output is None
    if estimated:
        guess = estimate_usage(request, model, content)
        if fresh is None:  # the offline count is of the whole prompt, cache traffic included
            fresh = max(0, guess.input_tokens - written - cached)
        if output is None:
            output = guess.output_tokens
    usage = Usage(
        input_tokens=(fresh or 0) + written + cached,
        output_tokens=output or 0,
        cached_input_tokens=cached,
        cache_write_tokens=written,
        calls=1,
        estimated=estimated,
    )
    return usage, tuple(read.rejected)


class AnthropicProvider(HttpProvider):
    """The Anthropic Messages API.

    Args:
        model: the default model (a request's ``model`` wins).
        api_key: the key; read from ``ANTHROPIC_API_KEY`` now when omitted (unless
            ``base_url`` is given explicitly).
        base_url: default ``ANTHROPIC_BASE_URL`` or Anthropic's.
        default_max_tokens: sent when a request has no ``max_tokens`` (it is required).
        version: the ``anthropic-version`` header (pinned; change it deliberately).
    """

    name = "anthropic"
    default_base_url = ANTHROPIC_BASE_URL
    default_model = "claude-haiku-4-5"
    key_env = "ANTHROPIC_API_KEY"
    base_url_env = "ANTHROPIC_BASE_URL"
    messages_path = "/v1/messages"

    def __init__(
        self,
        model: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        default_max_tokens: int = 4096,
        version: str = ANTHROPIC_VERSION,
        require_key: bool = True,
        **options: Any,
    ) -> None:
        base_url, api_key = self._endpoint_from_env(base_url, api_key)
        if require_key and not api_key:
            raise self._missing_key(None, "openai|ollama|local|scripted")
        self.version = version
        self.default_max_tokens = default_max_tokens
        super().__init__(base_url=base_url, api_key=api_key, model=model, **options)

    def _auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.version}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def _payload(self, request: CompletionRequest, model: str, stream: bool) -> dict[str, Any]:
        messages = [
            {"role": m.get("role"), "content": m.get("content")}
            for m in request.messages
            if m.get("role") != "system"
        ]
        payload: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens or self.default_max_tokens,
            "messages": messages,
        }
        system = request.system
        if system:
            payload["system"] = system
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.stop:
            payload["stop_sequences"] = list(request.stop)
        payload.update(request.options)
        if stream:
            payload["stream"] = True
        return payload

    async def complete(self, request: CompletionRequest) -> Completion:
        """One Messages call."""
        model = self._model(request)
        payload = self._payload(request, model, stream=False)
        async with self._limited(request, model) as slot:
            data, headers = await self._post_json(self.messages_path, payload, model, slot)
            if not isinstance(data, Mapping) or not isinstance(data.get("content"), list):
                raise self._malformed("no 'content' list in the answer", model)
            content = "".join(
                str(block.get("text", ""))
                for block in data["content"]
                if isinstance(block, Mapping) and block.get("type") == "text"
            )
            raw = data.get("usage")
            usage, rejected = parse_anthropic_usage(
                raw if isinstance(raw, Mapping) else None, request, model, content
            )
            slot.settle(usage)
        return Completion(
            content=content,
            usage=usage,
            model=str_or_none(data.get("model")) or model,
            finish_reason=str_or_none(data.get("stop_reason")),
            request_id=request_id_of(headers) or str_or_none(data.get("id")),
            provider=self.name,
            rejected_usage=rejected,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        """Stream text deltas; the last chunk carries usage and the stop reason."""
        model = self._model(request)
        payload = self._payload(request, model, stream=True)
        parts: list[str] = []
        counters: dict[str, Any] = {}
        finish: str | None = None
        answered_model = model
        async with (
            self._limited(request, model) as slot,
            self._open_stream(self.messages_path, payload, model, slot) as response,
        ):
            with no_retry_once_delivered(parts):
                stopped = False
                async for _event, data in self._sse(response, model):
                    event = self._json_object(data, "stream event", model, response)
                    kind = event.get("type")
                    if kind == "content_block_delta":
                        delta = event.get("delta")
                        if isinstance(delta, Mapping) and delta.get("type") == "text_delta":
                            text = str(delta.get("text", ""))
                            if text:
                                parts.append(text)
                                yield CompletionChunk(delta=text, model=answered_model)
                    elif kind == "message_start":
                        message = event.get("message")
                        if isinstance(message, Mapping):
                            answered_model = str_or_none(message.get("model")) or answered_model
                            _merge(counters, message.get("usage"))
                    elif kind == "message_delta":
                        delta = event.get("delta")
                        if isinstance(delta, Mapping):
                            finish = str_or_none(delta.get("stop_reason")) or finish
                        _merge(counters, event.get("usage"))  # cumulative: replace, never add
                    elif kind == "message_stop":
                        stopped = True
                        break
                    elif kind == "error":
                        raise self._stream_error(event, model, response)
                    # ping, content_block_start/stop and unknown new events are ignored
                if not stopped:
                    raise self._cut(model, response, "message_stop")
            usage, rejected = parse_anthropic_usage(counters, request, model, "".join(parts))
            slot.settle(usage)
        yield CompletionChunk(
            usage=usage, finish_reason=finish, model=answered_model, rejected_usage=rejected
        )


def _merge(counters: dict[str, Any], usage: Any) -> None:
    if isinstance(usage, Mapping):
        for field in _USAGE_FIELDS:
            value = usage.get(field)
            if is_number(value):
                counters[field] = value
