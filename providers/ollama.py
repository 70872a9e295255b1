"""Ollama's native chat API (``POST {host}/api/chat``).

Streaming is newline-delimited JSON; the final object (``"done": true``) carries
``prompt_eval_count`` (input) and ``eval_count`` (output).  Ollama omits
``prompt_eval_count`` when the whole prompt came from its cache; that count is then
estimated offline and the usage marked so.  (Ollama also speaks the OpenAI format on
``/v1``: use :class:`~providers.openai.OpenAIProvider` with that base URL if you prefer.)

Tools go as ``tools``; the answer's ``message.tool_calls`` (argument objects; in a stream
each answer's calls come whole in one line) become
:class:`~orchestration.toolcalls.ToolCall` objects; tool results go back with
``tool_name``.  Ollama cannot force a tool call: ``tool_choice="none"`` sends no tools,
a tool's name sends only that tool, and ``"required"`` sends them all (the model may
still answer in text).  Structured output is Ollama's ``format`` (the JSON schema).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from orchestration.completions import output_text
from orchestration.errors import ProviderError
from orchestration.llm import Completion, CompletionChunk, CompletionRequest
from orchestration.tokens import count_message_tokens, count_tokens
from orchestration.toolcalls import ToolCall
from orchestration.usage import Usage, UsageReader

from ._http import HttpProvider
from ._tools import ollama_messages, tool_call
from ._wire import no_retry_once_delivered, str_or_none

__all__ = ["OLLAMA_DEFAULT_HOST", "OllamaProvider", "normalize_ollama_host", "parse_ollama_usage"]

OLLAMA_DEFAULT_HOST = "http://127.0.0.1:11434"
# Keys of a request's options that belong at the top level of Ollama's payload; every
# other option is a model option (num_ctx, top_k, seed...).
_TOP_LEVEL = frozenset({"format", "keep_alive", "tools", "think"})


def normalize_ollama_host(host: str) -> str:
    """``OLLAMA_HOST`` as a client URL, as Ollama reads it: ``0.0.0.0:11434`` ->
    ``http://127.0.0.1:11434``; port 11434 unless a scheme is given (then its default)."""
    host = host.strip().rstrip("/")
    has_scheme = "://" in host
    scheme, rest = host.split("://", 1) if has_scheme else ("http", host)
    authority, slash, path = rest.partition("/")
    hostname, colon, port = authority.rpartition(":") if ":" in authority.lstrip("[") else (authority, "", "")
    if not colon or not port.isdigit():
        hostname, port = authority, ("" if has_scheme else "11434")
    if hostname in ("", "0.0.0.0"):  # a bind-all address is not a destination
        hostname = "127.0.0.1"
    elif hostname in ("::", "[::]"):
        hostname = "[::1]"
    return f"{scheme}://{hostname}{':' + port if port else ''}{slash}{path}"


def parse_ollama_usage(
    raw: Mapping[str, Any],
    request: CompletionRequest,
    model: str,
    content: str,
    tool_calls: Sequence[ToolCall] = (),
) -> tuple[Usage, tuple[str, ...]]:
    """Usage from a final Ollama object; a missing count (or one that cannot be right:
    negative, NaN, infinite) is estimated offline; the second value lists the latter."""
    read = UsageReader()
    prompt = read.count(raw, "prompt_eval_count")
    output = read.count(raw, "eval_count")
    estimated = prompt is None or output is None
    if prompt is None:
        prompt = count_message_tokens(request.counted_messages, model).tokens
    if output is None:
        output = count_tokens(output_text(content, tool_calls), model).tokens
    usage = Usage(input_tokens=prompt, output_tokens=output, calls=1, estimated=estimated)
    return usage, tuple(read.rejected)


class OllamaProvider(HttpProvider):
    """A local or remote Ollama server.

    Args:
        model: the default model (e.g. ``"llama3.2"``; a request's ``model`` wins).
        host: the server; default ``OLLAMA_HOST`` (read now) or ``127.0.0.1:11434``.
        api_key: optional bearer token, for an Ollama behind an authenticating proxy.
    """

    name = "ollama"
    default_base_url = OLLAMA_DEFAULT_HOST
    default_model = "llama3.2"
    base_url_env = "OLLAMA_HOST"
    chat_path = "/api/chat"

    def __init__(
        self, model: str | None = None, *, host: str | None = None, api_key: str | None = None, **options: Any
    ) -> None:
        host, api_key = self._endpoint_from_env(host, api_key)
        super().__init__(base_url=normalize_ollama_host(host), api_key=api_key, model=model, **options)

    def _payload(self, request: CompletionRequest, model: str, stream: bool) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if request.stop:
            options["stop"] = list(request.stop)
        payload: dict[str, Any] = {
            "model": model,
            "messages": ollama_messages(request.messages),
            "stream": stream,
        }
        if request.tools and request.tool_choice != "none":
            tools = request.tools
            if request.tool_choice is not None and request.tool_choice not in ("auto", "required"):
                tools = tuple(tool for tool in tools if tool.name == request.tool_choice)
            payload["tools"] = [tool.to_openai() for tool in tools]
        if request.response_format is not None:
            payload["format"] = dict(request.response_format.schema)
        for key, value in request.options.items():
            if key == "options" and isinstance(value, Mapping):
                options.update(value)
            elif key in _TOP_LEVEL:
                payload[key] = value
            else:
                options[key] = value
        if options:
            payload["options"] = options
        return payload

    def _hint(self, kind: type[ProviderError], status: int | None) -> str:
        if status == 404:
            return "; is the model pulled (`ollama pull <model>`) and OLLAMA_HOST right?"
        return super()._hint(kind, status)

    async def complete(self, request: CompletionRequest) -> Completion:
        """One chat call."""
        model = self._model(request)
        payload = self._payload(request, model, stream=False)
        async with self._limited(request, model) as slot:
            data, _headers = await self._post_json(self.chat_path, payload, model, slot)
            if not isinstance(data, Mapping):
                raise self._malformed(f"expected a JSON object, got {type(data).__name__}", model)
            message = data.get("message")
            if not isinstance(message, Mapping):
                raise self._malformed("no 'message' in the answer", model)
            content = str(message.get("content") or "")
            calls = self._tool_calls(message, model, 0)
            usage, rejected = parse_ollama_usage(data, request, model, content, calls)
            slot.settle(usage)
        return Completion(
            content=content,
            usage=usage,
            model=str_or_none(data.get("model")) or model,
            finish_reason=str_or_none(data.get("done_reason")) or ("stop" if data.get("done") else None),
            provider=self.name,
            rejected_usage=rejected,
            tool_calls=calls,
        )

    def _tool_calls(self, message: Mapping[str, Any], model: str, first: int) -> tuple[ToolCall, ...]:
        """The calls in one message (``first``: how many came before, for their ids)."""
        raw = message.get("tool_calls")
        if not raw:
            return ()
        if not isinstance(raw, list):
            raise self._malformed("'tool_calls' is not a list", model)
        calls = []
        for offset, entry in enumerate(raw):
            function = entry.get("function") if isinstance(entry, Mapping) else None
            index = first + offset
            call = (
                tool_call(function.get("name"), function.get("arguments"), entry.get("id"), f"call_{index}")
                if isinstance(function, Mapping) and isinstance(entry, Mapping)
                else None
            )
            if call is None:
                raise self._malformed(f"tool call {index} has no function name", model)
            calls.append(call)
        return tuple(calls)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        """Stream newline-delimited JSON deltas; the last chunk carries usage."""
        model = self._model(request)
        payload = self._payload(request, model, stream=True)
        parts: list[str] = []
        calls: tuple[ToolCall, ...] = ()
        async with (
            self._limited(request, model) as slot,
            self._open_stream(self.chat_path, payload, model, slot) as response,
        ):
            with no_retry_once_delivered(parts):
                final: Mapping[str, Any] | None = None
                async for line in self._lines(response, model):
                    if not line.strip():
                        continue
                    obj = self._json_object(line, "stream line", model, response)
                    if obj.get("error") is not None:
                        raise self._stream_error(obj, model, response)
                    message = obj.get("message")
                    text = str(message.get("content") or "") if isinstance(message, Mapping) else ""
                    if text:
                        parts.append(text)
                        yield CompletionChunk(delta=text, model=str_or_none(obj.get("model")) or model)
                    if isinstance(message, Mapping) and message.get("tool_calls"):
                        calls += self._tool_calls(message, model, len(calls))
                    if obj.get("done"):
                        final = obj
                        break
                if final is None:
                    raise self._cut(model, response, 'the final "done": true line')
            usage, rejected = parse_ollama_usage(final, request, model, "".join(parts), calls)
            slot.settle(usage)
        yield CompletionChunk(
            usage=usage,
            finish_reason=str_or_none(final.get("done_reason")) or "stop",
            model=str_or_none(final.get("model")) or model,
            rejected_usage=rejected,
            tool_calls=calls,
        )
