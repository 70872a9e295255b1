"""The provider plug-in point.

A native provider implements the :class:`Provider` protocol: an async ``complete`` that
takes a :class:`CompletionRequest` and returns a :class:`Completion` (content + usage),
and optionally an async ``stream`` yielding :class:`CompletionChunk` objects.  The HTTP
adapters in ``providers/`` and :class:`~orchestration.scripted.ScriptedProvider` are
native.

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
import hashlib
import inspect
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, runtime_checkable

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
from .text import valid_text
from .tokens import count_message_tokens, count_tokens
from .usage import Usage, UsageReader

__all__ = [
    "Completion",
    "CompletionChunk",
    "CompletionRequest",
    "Provider",
    "as_provider",
    "is_native_provider",
]


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One model call: messages plus the options every vendor understands.

    ``options`` carries vendor-specific extras unchanged.  ``fingerprint()`` is a stable
    hash of everything that determines the answer (used for recording and replay).
    """

    messages: Sequence[Mapping[str, Any]]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stop: Sequence[str] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def system(self) -> str | None:
        """The concatenated system messages, if any (for vendors that take it separately)."""
        parts = [str(m.get("content", "")) for m in self.messages if m.get("role") == "system"]
        return "\n\n".join(parts) if parts else None

    @property
    def prompt_text(self) -> str:
        """The last user message's text."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content", "")
                return content if isinstance(content, str) else json.dumps(content)
        return ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "messages": [dict(m) for m in self.messages],
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stop": list(self.stop) if self.stop is not None else None,
            "options": dict(self.options),
        }

    def fingerprint(self) -> str:
        """A stable hash (BLAKE2b, 128 bits) of everything that determines the answer.

        It hashes the request exactly as built (message keys in their order, options
        sorted), so the same code building the same request, in this process or another,
        gets the same fingerprint.
        """
        canonical = repr(
            (
                self.messages if isinstance(self.messages, list) else list(self.messages),
                self.model,
                self.max_tokens,
                self.temperature,
                list(self.stop) if self.stop is not None else None,
                sorted(self.options.items()) if self.options else (),
            )
        )
        return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's answer: text, usage, and which model produced it.

    Every string in it is valid UTF-8 (:func:`~orchestration.text.valid_text`): this is
    where a provider's text enters the system, so a lone surrogate in an answer never
    reaches a report, a store or a stream.  ``rejected_usage`` lists the usage numbers the
    provider reported that cannot be right (``"prompt_tokens=-5"``) and were counted
    offline instead; the run reports them in a warning event.
    """

    content: str
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    finish_reason: str | None = None
    request_id: str | None = None
    provider: str | None = None
    rejected_usage: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _make_valid(self, ("content", "model", "finish_reason", "request_id", "provider"))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "content": self.content,
            "usage": self.usage.to_dict(),
            "model": self.model,
            "finish_reason": self.finish_reason,
            "request_id": self.request_id,
            "provider": self.provider,
            "rejected_usage": list(self.rejected_usage),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Completion:
        """Inverse of :meth:`to_dict`."""
        return cls(
            content=data["content"],
            usage=Usage.from_dict(data.get("usage") or {}),
            model=data.get("model"),
            finish_reason=data.get("finish_reason"),
            request_id=data.get("request_id"),
            provider=data.get("provider"),
            rejected_usage=tuple(data.get("rejected_usage") or ()),
        )


@dataclass(frozen=True, slots=True)
class CompletionChunk:
    """A piece of a streamed answer.  The last chunk carries ``usage`` and ``finish_reason``
    (and ``rejected_usage``, as :class:`Completion` does).  Its strings are valid UTF-8."""

    delta: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None
    rejected_usage: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _make_valid(self, ("delta", "finish_reason", "model"))


def _make_valid(answer: Completion | CompletionChunk, names: tuple[str, ...]) -> None:
    """Replace each of ``answer``'s string fields ``names`` by its valid UTF-8 form."""
    for name in names:
        value = getattr(answer, name)
        if isinstance(value, str) and not value.isascii():  # ASCII is valid: the common case costs one check
            valid = valid_text(value)
            if valid is not value:
                object.__setattr__(answer, name, valid)


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


def _text_of(response: Any) -> str:
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
            first = value[0]  # e.g. Anthropic's list of content blocks
            text = getattr(first, "text", None)
            if isinstance(text, str):
                return "".join(str(getattr(block, "text", "")) for block in value)
    raise MalformedResponseError(
        f"provider returned {type(response).__name__}, which has no text content; "
        "return a str or an object with .content or .text"
    )


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
        prompt = count_message_tokens(request.messages, request.model).tokens
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
                **request.options,
            },
        )
        try:
            response = await _call(method, messages=[dict(m) for m in request.messages], **kwargs)
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
    content = _text_of(response)
    usage, rejected = _usage_of(response, request, content)
    model = getattr(response, "model", None)
    return Completion(
        content=content,
        usage=usage,
        model=model if isinstance(model, str) and model else request.model,
        provider=provider,
        rejected_usage=rejected,
    )
