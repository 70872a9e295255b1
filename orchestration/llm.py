"""The provider plug-in point.

A native provider implements the :class:`Provider` protocol: an async ``complete`` that
takes a :class:`CompletionRequest` and returns a :class:`Completion` (content + usage),
and optionally an async ``stream`` yielding :class:`CompletionChunk` objects.  The HTTP
adapters in ``providers/`` and :class:`~orchestration.scripted.ScriptedProvider` are
native.

Tool calls are part of the protocol: a request may offer ``tools`` (:class:`ToolSpec`),
say how to choose (``tool_choice``) and ask for structured output (``response_format``,
an :class:`OutputSchema`); a completion carries the :class:`ToolCall` objects the model
asked for (a stream, on its last chunk).  Messages are plain dicts in the OpenAI Chat
Completions shape: ``completion.message()`` is the assistant turn to append,
``call.result(...)`` a tool's answer; each adapter translates them for its vendor.

Any other object is adapted by :func:`as_provider`:

- the seed README shape, ``complete(messages, **kwargs)`` (sync or async) returning an
  object with ``.content`` (or ``.text``, or a plain string) and optionally ``.usage``;
- the older ``chat(system_prompt=..., user_prompt=..., model=..., temperature=...,
  max_tokens=...)`` shape.

Sync methods run in a worker thread so they never block the event loop.  When the
object reports no usage, tokens are counted offline and the usage is marked estimated.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, NoReturn, Protocol, runtime_checkable

from .completions import Completion, CompletionChunk, CompletionRequest, output_text
from .errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    MalformedResponseError,
    OverloadedError,
    ProviderError,
    RateLimitError,
    ServiceUnavailableError,
    describe,
    redact,
)
from .retry import is_retryable
from .tokens import count_message_tokens, count_tokens
from .toolcalls import (
    OutputSchema,
    ToolCall,
    ToolSpec,
    openai_messages,
    openai_tool_choice,
    tool_result_message,
)
from .usage import Usage, UsageReader

__all__ = [
    "Completion",
    "CompletionChunk",
    "CompletionRequest",
    "OutputSchema",
    "Provider",
    "ToolCall",
    "ToolSpec",
    "as_provider",
    "is_native_provider",
    "tool_result_message",
]


@runtime_checkable
class Provider(Protocol):
    """What the framework calls.  Subclass it (explicitly) to mark a native provider."""

    name: str

    async def complete(self, request: CompletionRequest) -> Completion:
        """Answer ``request`` or raise a :class:`~orchestration.errors.ProviderError`."""
        ...


def is_native_provider(obj: object) -> bool:
    """True when ``obj`` implements :class:`Provider` itself (no adapter needed)."""
    if Provider in type(obj).__mro__:
        return True
    method = getattr(obj, "complete", None)
    if method is None or not inspect.iscoroutinefunction(method):
        return False
    params = list(inspect.signature(method).parameters.values())
    return bool(params) and (
        params[0].name == "request" or params[0].annotation in (CompletionRequest, "CompletionRequest")
    )


def as_provider(obj: object) -> Provider:
    """Return ``obj`` as a :class:`Provider`, adapting the seed README's shapes."""
    if obj is None:
        raise ConfigError(
            "provider is required: pass a Provider, an object with complete(messages, **kwargs), "
            "or ScriptedProvider() for offline runs"
        )
    if is_native_provider(obj):
        return obj  # type: ignore[return-value]
    if callable(getattr(obj, "complete", None)):
        return _CompleteAdapter(obj)
    if callable(getattr(obj, "chat", None)):
        return _ChatAdapter(obj)
    raise ConfigError(
        f"provider {type(obj).__name__} has neither complete(messages, **kwargs) nor "
        "chat(system_prompt=..., user_prompt=...); implement one of them"
    )


def _accepted_kwargs(method: Any, candidates: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``candidates`` that ``method`` accepts (all of them with ``**kwargs``)."""
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return {k: v for k, v in candidates.items() if v is not None}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return {k: v for k, v in candidates.items() if v is not None and (takes_any or k in params)}


async def _call(method: Any, **kwargs: Any) -> Any:
    if inspect.iscoroutinefunction(method):
        return await method(**kwargs)
    result = await asyncio.to_thread(method, **kwargs)
    if inspect.isawaitable(result):
        return await result
    return result


def _text_of(response: Any, tool_calls: tuple[ToolCall, ...] = ()) -> str:
    if isinstance(response, str):
        return response
    if isinstance(response, Mapping):
        for key in ("content", "text", "output"):
            if isinstance(response.get(key), str):
                return str(response[key])
    for attr in ("content", "text"):
        value = getattr(response, attr, None)
        if isinstance(value, str):
            return value
        if isinstance(value, Sequence) and value and not isinstance(value, (bytes, str)):
            # e.g. Anthropic's list of content blocks (tool_use blocks have no text)
            texts = [getattr(block, "text", None) for block in value]
            if any(isinstance(text, str) for text in texts) or tool_calls:
                return "".join(text for text in texts if isinstance(text, str))
    if tool_calls:
        return ""  # an answer that is only tool calls
    raise MalformedResponseError(
        f"provider returned {type(response).__name__}, which has no text content; "
        "return a str or an object with .content or .text"
    )


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _tool_calls_of(response: Any) -> tuple[ToolCall, ...]:
    """The tool calls in a foreign answer: ``.tool_calls`` (ToolCall objects, OpenAI's
    shape as dicts or SDK objects, or ``{"name", "arguments"}``) or Anthropic's
    ``tool_use`` content blocks."""
    if isinstance(response, str):
        return ()
    raw = _field(response, "tool_calls")
    calls: list[ToolCall] = []
    if isinstance(raw, Sequence) and not isinstance(raw, (str, bytes)):
        for item in raw:
            if isinstance(item, ToolCall):
                calls.append(item)
                continue
            function = _field(item, "function")
            source = function if function is not None else item
            name, arguments, call_id = _field(source, "name"), _field(source, "arguments"), _field(item, "id")
            if not isinstance(name, str):
                raise MalformedResponseError(
                    f"a tool call in the provider's answer has no name: {describe_value(item)}"
                )
            if arguments is not None and not isinstance(arguments, (str, Mapping)):
                arguments = json.dumps(arguments, default=str)  # shown to the model as malformed
            calls.append(ToolCall(name, arguments, id=call_id if isinstance(call_id, str) else ""))
        return tuple(calls)
    blocks = _field(response, "content")
    if isinstance(blocks, Sequence) and not isinstance(blocks, (str, bytes)):
        for block in blocks:
            if _field(block, "type") == "tool_use":
                name, arguments, call_id = _field(block, "name"), _field(block, "input"), _field(block, "id")
                if isinstance(name, str):
                    if not isinstance(arguments, (str, Mapping)):
                        arguments = json.dumps(arguments, default=str)
                    calls.append(ToolCall(name, arguments, id=call_id if isinstance(call_id, str) else ""))
    return tuple(calls)


def describe_value(value: Any) -> str:
    """A short repr of ``value`` for an error message."""
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _tool_kwargs(request: CompletionRequest) -> dict[str, Any]:
    """A request's tool fields as OpenAI-style keyword arguments (for a foreign client)."""
    if not request.uses_tools and request.tool_choice is None:
        return {}
    return {
        "tools": [t.to_openai() for t in request.tools] or None,
        "tool_choice": openai_tool_choice(request.tool_choice) if request.tool_choice else None,
        "parallel_tool_calls": request.parallel_tool_calls,
        "response_format": request.response_format.to_openai() if request.response_format else None,
    }


def _usage_of(response: Any, request: CompletionRequest, content: str) -> tuple[Usage, tuple[str, ...]]:
    """The usage a foreign response reports (what it leaves out, or gets impossibly
    wrong, counted offline and marked estimated), and the numbers it got wrong."""
    raw = response.get("usage") if isinstance(response, Mapping) else getattr(response, "usage", None)
    if isinstance(raw, Usage):
        return raw, ()  # the provider's own: checked where the call is billed
    read = UsageReader()
    prompt = completion = total = None
    if raw is not None:
        prompt = read.count(raw, "prompt_tokens")
        if prompt is None:
            prompt = read.count(raw, "input_tokens")
        completion = read.count(raw, "completion_tokens")
        if completion is None:
            completion = read.count(raw, "output_tokens")
        total = read.count(raw, "total_tokens")
    estimated = prompt is None or completion is None
    if prompt is None:
        prompt = count_message_tokens(request.counted_messages, request.model).tokens
        if completion is None and total is not None:  # only a total: split it with the prompt's count
            prompt = min(total, prompt)
    if completion is None:
        if total is not None and total >= prompt:
            completion = total - prompt
        else:
            completion = count_tokens(content, request.model).tokens
    usage = Usage(input_tokens=prompt, output_tokens=completion, calls=1, estimated=estimated)
    return usage, tuple(read.rejected)


def map_foreign_error(error: BaseException, provider: str) -> BaseException:
    """Map an exception from a user's client (openai, anthropic, requests...) onto our tree.

    Clients expose ``status_code`` (or ``status``) on their errors; that is enough to
    decide retryability.  Anything else is returned unchanged.
    """
    if isinstance(error, ProviderError):
        return error
    status = getattr(error, "status_code", None) or getattr(error, "status", None)
    if not isinstance(status, int):
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
    if not isinstance(status, int):
        return error
    kind: type[ProviderError]
    if status == 429:
        kind = RateLimitError
    elif status in (401, 403):
        kind = AuthenticationError
    elif status == 529:
        kind = OverloadedError
    elif status in (408, 409) or status >= 500:
        kind = ServiceUnavailableError
    else:
        kind = BadRequestError
    mapped = kind(describe(error), provider=provider, status_code=status)
    mapped.__cause__ = error
    return mapped


class _CompleteAdapter:
    """Adapts ``complete(messages, **kwargs)`` objects (sync or async)."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self.name = getattr(target, "name", None) or type(target).__name__
        # Secrets the object holds, so that its errors can be cleaned of them.
        self._secrets = tuple(
            value
            for attr in ("api_key", "key", "token", "_api_key", "_key", "_token")
            if isinstance(value := getattr(target, attr, None), str) and len(value) >= 8
        )

    def _raise_clean(self, error: Exception) -> NoReturn:
        """Raise ``error`` mapped onto our tree, never carrying the object's own secrets."""
        mapped = map_foreign_error(error, self.name)
        if any(secret in str(mapped) for secret in self._secrets):
            clean = ProviderError(redact(describe(mapped), *self._secrets), provider=self.name)
            clean.retryable = is_retryable(mapped)
            raise clean from None  # the original (and its message) stays out of sight
        if mapped is error:
            raise error
        raise mapped from error

    async def complete(self, request: CompletionRequest) -> Completion:
        method = self._target.complete
        kwargs = _accepted_kwargs(
            method,
            {
                "model": request.model,
                "max_tokens": request.max_tokens,
                "temperature": request.temperature,
                "stop": request.stop,
                **_tool_kwargs(request),
                **request.options,
            },
        )
        try:
            # Strictly in OpenAI's shape: the client may hand them to an OpenAI-style API.
            response = await _call(method, messages=openai_messages(request.messages), **kwargs)
        except Exception as error:
            self._raise_clean(error)
        return _completion(response, request, self.name)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        """Not streaming-capable: yields the whole answer as one chunk."""
        completion = await self.complete(request)
        yield CompletionChunk(
            delta=completion.content,
            usage=completion.usage,
            model=completion.model,
            rejected_usage=completion.rejected_usage,
            tool_calls=completion.tool_calls,
        )


class _ChatAdapter(_CompleteAdapter):
    """Adapts ``chat(system_prompt=..., user_prompt=..., model=..., ...)`` objects."""

    async def complete(self, request: CompletionRequest) -> Completion:
        method = self._target.chat
        history = [m for m in request.messages if m.get("role") != "system"]
        user_prompt = "\n\n".join(
            f"{m.get('role')}: {m.get('content')}" if len(history) > 1 else str(m.get("content"))
            for m in history
        )
        kwargs = _accepted_kwargs(
            method,
            {
                "system_prompt": request.system or "",
                "user_prompt": user_prompt,
                "model": request.model,
                "temperature": request.temperature,
                "max_tokens": request.max_tokens,
            },
        )
        try:
            response = await _call(method, **kwargs)
        except Exception as error:
            self._raise_clean(error)
        return _completion(response, request, self.name)


def _completion(response: Any, request: CompletionRequest, provider: str) -> Completion:
    """A user's object's answer as a :class:`Completion`."""
    tool_calls = _tool_calls_of(response)
    content = _text_of(response, tool_calls)
    usage, rejected = _usage_of(response, request, output_text(content, tool_calls))
    model = getattr(response, "model", None)
    return Completion(
        content=content,
        usage=usage,
        model=model if isinstance(model, str) and model else request.model,
        provider=provider,
        rejected_usage=rejected,
        tool_calls=tool_calls,
    )
