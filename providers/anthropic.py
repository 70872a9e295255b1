"""Anthropic Messages API (``POST {base_url}/v1/messages``).

Authenticates with ``x-api-key`` and a pinned ``anthropic-version``; system messages go
to the top-level ``system`` field; ``max_tokens`` is required, so a default is sent
when the request has none.  Anthropic reports ``input_tokens`` *excluding* prompt-cache
reads and writes; our :class:`~orchestration.usage.Usage` counts them inside
``input_tokens``, so we add them.  In a stream, ``message_delta`` carries the
*cumulative* output count.

Tools go as ``tools`` (``input_schema``) and ``tool_choice``; the answer's ``tool_use``
blocks (in a stream: ``input_json_delta`` fragments) become
:class:`~orchestration.toolcalls.ToolCall` objects, and the framework's tool results go
back as ``tool_result`` blocks.  Structured output is a forced tool whose input is the
answer: its JSON is the completion's ``content`` (streamed as text deltas).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from orchestration.llm import Completion, CompletionChunk, CompletionRequest
from orchestration.toolcalls import OutputSchema, ToolCall
from orchestration.usage import Usage, UsageReader

from ._errors import request_id_of
from ._http import HttpProvider
from ._tools import anthropic_messages, anthropic_output, anthropic_tool_fields, tool_call
from ._wire import estimate_usage, is_number, no_retry_once_delivered, str_or_none

__all__ = ["ANTHROPIC_BASE_URL", "ANTHROPIC_VERSION", "AnthropicProvider", "parse_anthropic_usage"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def parse_anthropic_usage(
    raw: Mapping[str, Any] | None,
    request: CompletionRequest,
    model: str,
    content: str,
    tool_calls: Sequence[ToolCall] = (),
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
        guess = estimate_usage(request, model, content, tool_calls)
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
        messages = anthropic_messages(request.messages)
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
        if request.uses_tools or request.tool_choice is not None:
            payload.update(anthropic_tool_fields(request))
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
            blocks = [block for block in data["content"] if isinstance(block, Mapping)]
            content = "".join(str(block.get("text", "")) for block in blocks if block.get("type") == "text")
            calls: list[ToolCall] = []
            schema = request.response_format
            finish = str_or_none(data.get("stop_reason"))
            for index, block in enumerate(blocks):
                if block.get("type") != "tool_use":
                    continue
                if schema is not None and block.get("name") == schema.name:
                    content = anthropic_output(schema, block.get("input"))  # the structured answer
                    finish = "end_turn" if finish == "tool_use" else finish
                    continue
                call = tool_call(block.get("name"), block.get("input"), block.get("id"), f"toolu_{index}")
                if call is None:
                    raise self._malformed(f"tool_use block {index} has no name", model)
                calls.append(call)
            if calls and finish == "end_turn":
                finish = "tool_use"  # the model asked for tools besides the answer
            raw = data.get("usage")
            usage, rejected = parse_anthropic_usage(
                raw if isinstance(raw, Mapping) else None, request, model, content, calls
            )
            slot.settle(usage)
        return Completion(
            content=content,
            usage=usage,
            model=str_or_none(data.get("model")) or model,
            finish_reason=finish,
            request_id=request_id_of(headers) or str_or_none(data.get("id")),
            provider=self.name,
            rejected_usage=rejected,
            tool_calls=tuple(calls),
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        """Stream text deltas; the last chunk carries usage, the stop reason and the tool
        calls (assembled from their ``input_json_delta`` fragments)."""
        model = self._model(request)
        payload = self._payload(request, model, stream=True)
        parts: list[str] = []
        counters: dict[str, Any] = {}
        finish: str | None = None
        answered_model = model
        blocks = _ToolBlocks(request.response_format)
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
                        if not isinstance(delta, Mapping):
                            continue
                        text = blocks.delta(event.get("index"), delta)
                        if text:
                            parts.append(text)
                            yield CompletionChunk(delta=text, model=answered_model)
                    elif kind == "content_block_start":
                        blocks.start(event.get("index"), event.get("content_block"))
                    elif kind == "content_block_stop":
                        text = blocks.stop(event.get("index"))
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
                    # ping and unknown new events are ignored
                if not stopped:
                    raise self._cut(model, response, "message_stop")
                text = blocks.leftover()
                if text:  # a structured answer that never used its tool: its text, for the check
                    parts.append(text)
                    yield CompletionChunk(delta=text, model=answered_model)
                calls = blocks.calls()
                if any(call is None for call in calls):
                    raise self._malformed("a streamed tool_use block has no name", model, response)
                if blocks.answered and finish == "tool_use" and not calls:
                    finish = "end_turn"
            tool_calls: tuple[ToolCall, ...] = tuple(call for call in calls if call is not None)
            usage, rejected = parse_anthropic_usage(counters, request, model, "".join(parts), tool_calls)
            slot.settle(usage)
        yield CompletionChunk(
            usage=usage,
            finish_reason=finish,
            model=answered_model,
            rejected_usage=rejected,
            tool_calls=tool_calls,
        )


class _ToolBlocks:
    """The content blocks of one streamed answer: text deltas pass through; a
    ``tool_use`` block's ``input_json_delta`` fragments are kept until it stops.

    With structured output the output tool's fragments *are* the answer's text (streamed
    as they come; a wrapped non-object answer is unwrapped when its block stops), and
    other text is held back: if no output tool comes, it is the answer after all."""

    def __init__(self, schema: OutputSchema | None) -> None:
        self.schema = schema
        self.answered = False  # the output tool was used
        self._tools: dict[Any, list[Any]] = {}  # index -> [id, name, fragments]
        self._order: list[Any] = []
        self._output: Any = None  # the output tool's block index
        self._held: list[str] = []

    def start(self, index: Any, block: Any) -> None:
        if not isinstance(block, Mapping) or block.get("type") != "tool_use":
            return
        name = block.get("name")
        if self.schema is not None and name == self.schema.name:
            self._output, self.answered = index, True
            self._held.clear()
            return
        self._tools[index] = [block.get("id"), name, []]
        self._order.append(index)

    def delta(self, index: Any, delta: Mapping[str, Any]) -> str:
        """The text this delta adds to the answer ('' for a tool's fragment)."""
        kind = delta.get("type")
        if kind == "text_delta":
            text = str(delta.get("text", ""))
            if self.schema is not None:
                if not self.answered:
                    self._held.append(text)
                return ""
            return text
        if kind == "input_json_delta":
            piece = str(delta.get("partial_json", ""))
            if index == self._output and self._output is not None:
                assert self.schema is not None
                if self.schema.is_object:
                    return piece
                self._held.append(piece)
            elif index in self._tools:
                self._tools[index][2].append(piece)
        return ""

    def stop(self, index: Any) -> str:
        """Text to add when a block stops (a wrapped structured answer, unwrapped)."""
        if index != self._output or self._output is None or self.schema is None or self.schema.is_object:
            return ""
        raw = "".join(self._held)
        self._held.clear()
        try:
            return anthropic_output(self.schema, json.loads(raw))
        except ValueError:
            return raw  # not JSON: the check says so, and the model is asked again

    def leftover(self) -> str:
        """Held-back text of a structured answer that never used its tool."""
        text = "".join(self._held) if not self.answered else ""
        self._held.clear()
        return text

    def calls(self) -> tuple[ToolCall | None, ...]:
        return tuple(
            tool_call(self._tools[i][1], "".join(self._tools[i][2]), self._tools[i][0], f"toolu_{i}")
            for i in self._order
        )


def _merge(counters: dict[str, Any], usage: Any) -> None:
    if isinstance(usage, Mapping):
        for field in _USAGE_FIELDS:
            value = usage.get(field)
            if is_number(value):
                counters[field] = value
