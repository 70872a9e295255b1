"""What a model call sends and gets back: :class:`CompletionRequest`, :class:`Completion`
and :class:`CompletionChunk` (re-exported by :mod:`orchestration.llm`, with the
:class:`~orchestration.llm.Provider` protocol that speaks them).

A completion's text and tool calls are made valid UTF-8 here, where a provider's answer
enters the system.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .text import valid_text
from .toolcalls import TOOL_CHOICES, OutputSchema, ToolCall, ToolSpec
from .usage import Usage

__all__ = ["Completion", "CompletionChunk", "CompletionRequest", "output_text"]


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One model call: messages plus the options every vendor understands.

    ``options`` carries vendor-specific extras unchanged.  ``fingerprint()`` is a stable
    hash of everything that determines the answer (used for recording and replay).

    Tools: ``tools`` the model may call (:class:`ToolSpec` objects, or dicts in OpenAI's
    or Anthropic's shape); ``tool_choice`` is ``"auto"`` (the default), ``"none"``,
    ``"required"`` (some tool) or a tool's name (that tool); ``parallel_tool_calls=False``
    asks for at most one call per answer.  ``response_format`` (an :class:`OutputSchema`
    or a JSON schema dict) asks for a JSON answer following the schema.
    """

    messages: Sequence[Mapping[str, Any]]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stop: Sequence[str] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    tools: Sequence[ToolSpec] = ()
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    response_format: OutputSchema | None = None

    def __post_init__(self) -> None:
        options = self.options
        if options and ("tools" in options or "response_format" in options):
            _lift_tool_options(self)
        if self.tools or self.tool_choice is not None or self.response_format is not None:
            _check_tools(self)

    @property
    def uses_tools(self) -> bool:
        """True when the request offers tools or asks for structured output."""
        return bool(self.tools) or self.response_format is not None

    @property
    def counted_messages(self) -> Sequence[Mapping[str, Any]]:
        """The messages as the prompt is billed: tool definitions and the output schema
        count too (vendors send them to the model), as one more message."""
        if not self.uses_tools and self.tool_choice is None:
            return self.messages
        extra: dict[str, Any] = {"tools": [t.to_dict() for t in self.tools]}
        if self.response_format is not None:
            extra["response_format"] = self.response_format.schema
        return [*self.messages, {"role": "system", "content": json.dumps(extra, ensure_ascii=False)}]

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
        """A JSON-ready dict (tool fields only when set); ``from_dict`` reads it back."""
        data: dict[str, Any] = {
            "messages": [dict(m) for m in self.messages],
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stop": list(self.stop) if self.stop is not None else None,
            "options": dict(self.options),
        }
        if self.tools:
            data["tools"] = [t.to_dict() for t in self.tools]
        if self.tool_choice is not None:
            data["tool_choice"] = self.tool_choice
        if self.parallel_tool_calls is not None:
            data["parallel_tool_calls"] = self.parallel_tool_calls
        if self.response_format is not None:
            data["response_format"] = self.response_format.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompletionRequest:
        """Inverse of :meth:`to_dict`."""
        response_format = data.get("response_format")
        return cls(
            messages=list(data["messages"]),
            model=data.get("model"),
            max_tokens=data.get("max_tokens"),
            temperature=data.get("temperature"),
            stop=data.get("stop"),
            options=dict(data.get("options") or {}),
            tools=tuple(ToolSpec.from_dict(t) for t in data.get("tools") or ()),
            tool_choice=data.get("tool_choice"),
            parallel_tool_calls=data.get("parallel_tool_calls"),
            response_format=OutputSchema.from_dict(response_format) if response_format else None,
        )

    def fingerprint(self) -> str:
        """A stable hash (BLAKE2b, 128 bits) of everything that determines the answer.

        It hashes the request exactly as built (message keys in their order, options
        sorted), so the same code building the same request, in this process or another,
        gets the same fingerprint.
        """
        parts: tuple[Any, ...] = (
            self.messages if isinstance(self.messages, list) else list(self.messages),
            self.model,
            self.max_tokens,
            self.temperature,
            list(self.stop) if self.stop is not None else None,
            sorted(self.options.items()) if self.options else (),
        )
        if self.uses_tools or self.tool_choice is not None or self.parallel_tool_calls is not None:
            # Only then: a request without tools keeps the fingerprint earlier versions recorded.
            parts += (
                [t.to_dict() for t in self.tools],
                self.tool_choice,
                self.parallel_tool_calls,
                self.response_format.to_dict() if self.response_format is not None else None,
            )
        return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def _lift_tool_options(request: CompletionRequest) -> None:
    """Typed tool fields passed among the options (``call_llm(prompt, tools=[ToolSpec(...)],
    response_format=OutputSchema(...))`` puts its extra keywords there) become the fields;
    a vendor's raw dicts stay options, sent as they are."""
    options = dict(request.options)
    tools = options.get("tools")
    if (
        not request.tools
        and isinstance(tools, (list, tuple))
        and tools
        and all(isinstance(t, ToolSpec) for t in tools)
    ):
        object.__setattr__(request, "tools", tuple(options.pop("tools")))
        if request.tool_choice is None and isinstance(options.get("tool_choice"), str):
            object.__setattr__(request, "tool_choice", options.pop("tool_choice"))
        if request.parallel_tool_calls is None and isinstance(options.get("parallel_tool_calls"), bool):
            object.__setattr__(request, "parallel_tool_calls", options.pop("parallel_tool_calls"))
    if request.response_format is None and isinstance(options.get("response_format"), OutputSchema):
        object.__setattr__(request, "response_format", options.pop("response_format"))
    if len(options) != len(request.options):
        object.__setattr__(request, "options", options)


def _check_tools(request: CompletionRequest) -> None:
    """Normalise the tool fields of ``request`` (dicts become specs) and check they agree."""
    tools = tuple(t if isinstance(t, ToolSpec) else ToolSpec.from_dict(t) for t in request.tools)
    object.__setattr__(request, "tools", tools)
    names = [t.name for t in tools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"tools: {', '.join(map(repr, duplicates))} offered twice; give each tool one name")
    choice = request.tool_choice
    if choice is not None and choice not in TOOL_CHOICES and choice not in names:
        offered = ", ".join(map(repr, names)) or "none"
        raise ConfigError(
            f"tool_choice {choice!r} is neither 'auto', 'none', 'required' nor an offered tool (offered: {offered})"
        )
    if choice in ("required",) and not tools:
        raise ConfigError("tool_choice 'required' needs tools: pass tools=[ToolSpec(...)]")
    schema = request.response_format
    if schema is not None and not isinstance(schema, OutputSchema):
        if not isinstance(schema, Mapping):
            raise ConfigError(
                f"response_format must be an OutputSchema or a JSON schema dict, not {type(schema).__name__}"
            )
        schema = OutputSchema(schema)
        object.__setattr__(request, "response_format", schema)
    if schema is not None and schema.name in names:
        raise ConfigError(f"response_format is named {schema.name!r}, as a tool is; rename one of them")


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's answer: text, tool calls, usage, and which model produced it.

    Every string in it is valid UTF-8 (:func:`~orchestration.text.valid_text`): this is
    where a provider's text enters the system, so a lone surrogate in an answer never
    reaches a report, a store or a stream.  ``rejected_usage`` lists the usage numbers the
    provider reported that cannot be right (``"prompt_tokens=-5"``) and were counted
    offline instead; the run reports them in a warning event.  ``tool_calls`` are the
    calls the model asked for, in its order (several when it calls tools in parallel);
    ``parsed`` is the validated JSON value of a structured answer (``response_format``),
    set by the framework's call path.
    """

    content: str
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    finish_reason: str | None = None
    request_id: str | None = None
    provider: str | None = None
    rejected_usage: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    parsed: Any = None

    def __post_init__(self) -> None:
        _make_valid(self, ("content", "model", "finish_reason", "request_id", "provider"))
        if type(self.tool_calls) is not tuple:
            object.__setattr__(self, "tool_calls", tuple(self.tool_calls))

    def message(self) -> dict[str, Any]:
        """This answer as the assistant message to append to the conversation (with its
        tool calls, in the OpenAI shape every adapter translates)."""
        if not self.tool_calls:
            return {"role": "assistant", "content": self.content}
        return {
            "role": "assistant",
            "content": self.content or None,
            "tool_calls": [call.to_message() for call in self.tool_calls],
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = {
            "content": self.content,
            "usage": self.usage.to_dict(),
            "model": self.model,
            "finish_reason": self.finish_reason,
            "request_id": self.request_id,
            "provider": self.provider,
            "rejected_usage": list(self.rejected_usage),
            "tool_calls": [call.to_dict() for call in self.tool_calls],
        }
        if self.parsed is not None:
            data["parsed"] = self.parsed
        return data

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
            tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ()),
            parsed=data.get("parsed"),
        )


@dataclass(frozen=True, slots=True)
class CompletionChunk:
    """A piece of a streamed answer.  The last chunk carries ``usage`` and ``finish_reason``
    (and ``rejected_usage``, as :class:`Completion` does) and the answer's ``tool_calls``,
    assembled from the vendor's fragments.  Its strings are valid UTF-8."""

    delta: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None
    rejected_usage: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()

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


def output_text(content: str, tool_calls: Sequence[ToolCall]) -> str:
    """What an answer's output tokens are counted on: its text and its tool calls."""
    if not tool_calls:
        return content
    return content + "".join(f"{call.name}{call.arguments_json}" for call in tool_calls)
