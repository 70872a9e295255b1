"""Tool calls and structured output: the vendor-neutral types the providers speak.

- :class:`ToolSpec`: a tool the model may call (a name, a description, a JSON schema of
  its arguments).
- :class:`ToolCall`: one call the model asked for.  ``arguments`` are parsed once, where
  the call enters; arguments that are not a JSON object are kept as sent
  (``arguments_json``) and reading ``arguments`` raises
  :class:`~orchestration.errors.ToolArgumentsError`, so a malformed call is never read
  as a silent ``{}``.  ``checked_arguments(spec)`` also validates them against the tool's
  schema.
- :class:`~orchestration.schemas.OutputSchema` (re-exported here): a JSON schema the
  answer must follow (structured output).

Messages stay plain dicts in the OpenAI Chat Completions shape, which every adapter
translates to its vendor's format: an assistant turn with calls is
:meth:`Completion.message() <orchestration.llm.Completion.message>`, a tool's answer is
:meth:`ToolCall.result`.  Schemas are checked by :mod:`orchestration.schemas`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, ToolArgumentsError
from .schemas import (
    OutputSchema,
    check_name,
    json_text,
    load_jsonschema_async,
    schema_errors,
    schema_validator,
    snippet,
    surrogate_escape,
    valid_json,
)
from .text import valid_text

__all__ = [
    "TOOL_CHOICES",
    "OutputSchema",
    "ToolCall",
    "ToolSpec",
    "call_fields",
    "content_text",
    "load_jsonschema_async",
    "openai_messages",
    "openai_tool_choice",
    "tool_result_message",
]

#: ``tool_choice`` values that are modes, not tool names.
TOOL_CHOICES = frozenset({"auto", "none", "required"})

# -- tools ------------------------------------------------------------------------------


def _empty_object() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call.

    Args:
        name: 1-64 letters, digits, ``_`` or ``-`` (what every vendor accepts).
        description: what the tool does and when to use it (the model reads it).
        parameters: a JSON schema of type ``object`` for the arguments.
        strict: ask vendors that support it (OpenAI) to follow the schema exactly; the
            schema must then meet their rules (``additionalProperties: false``...).
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=_empty_object)
    strict: bool = False
    _validator: Any = field(default=None, init=False, repr=False, compare=False)
    _openai: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_name(self.name, "tool")
        if not isinstance(self.description, str):
            raise ConfigError(f"tool {self.name!r}: description must be a string")
        if not isinstance(self.parameters, Mapping) or self.parameters.get("type") != "object":
            raise ConfigError(
                f"tool {self.name!r}: parameters must be a JSON schema of an object, "
                'e.g. {"type": "object", "properties": {"query": {"type": "string"}}}'
            )
        json_text(self.parameters, f"tool {self.name!r}: parameters")

    def validate(self, arguments: Any) -> list[str]:
        """The problems of ``arguments`` under :attr:`parameters` (empty when valid)."""
        validator = self._validator
        if validator is None:
            validator = schema_validator(self.parameters, f"tool {self.name!r}: parameters")
            object.__setattr__(self, "_validator", validator)
        return schema_errors(validator, arguments)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_dict`` reads it back)."""
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }
        if self.strict:
            data["strict"] = True
        return data

    def to_openai(self) -> dict[str, Any]:
        """The tool in OpenAI's ``tools`` shape (``{"type": "function", "function": ...}``).

        Built once per spec (every request that offers the tool sends it): do not change it."""
        shape = self._openai
        if shape is None:
            shape = {"type": "function", "function": self.to_dict()}
            object.__setattr__(self, "_openai", shape)
        return shape  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolSpec:
        """A tool from :meth:`to_dict`'s shape, OpenAI's (``{"type": "function",
        "function": {...}}``) or Anthropic's (``input_schema``)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a tool must be a ToolSpec or a dict, not {type(data).__name__}")
        inner = data.get("function")
        if isinstance(inner, Mapping):
            data = inner
        parameters = data.get("parameters", data.get("input_schema"))
        return cls(
            name=data.get("name"),  # type: ignore[arg-type]  # checked in __post_init__
            description=data.get("description") or "",
            parameters=parameters if parameters is not None else _empty_object(),
            strict=bool(data.get("strict", False)),
        )


@dataclass(frozen=True, slots=True, init=False)
class ToolCall:
    """One tool call the model asked for.

    ``ToolCall("search", {"query": "x"}, id="call_1")``; ``arguments`` may also be the
    JSON text the model wrote.  ``arguments_json`` is that text exactly (what is sent
    back to the vendor); ``arguments`` the parsed object; ``problem`` says why the text
    is not a JSON object (then reading ``arguments`` raises ``ToolArgumentsError``).
    """

    name: str
    arguments_json: str
    id: str
    _arguments: dict[str, Any] | None = field(repr=False, compare=False)
    _problem: str | None = field(repr=False, compare=False)

    def __init__(self, name: str, arguments: Mapping[str, Any] | str | None = None, *, id: str = "") -> None:
        if not isinstance(name, str):
            raise ConfigError(f"a tool call's name must be a string, not {type(name).__name__}")
        parsed: Any
        problem = None
        if arguments is None:
            raw, parsed = "{}", {}
        elif isinstance(arguments, str):
            raw = valid_text(arguments)
            try:
                parsed = json.loads(raw) if raw.strip() else {}
            except ValueError as error:
                parsed = None
                where = (
                    f" ({error.msg} at character {error.pos})"
                    if isinstance(error, json.JSONDecodeError)
                    else ""
                )
                problem = f"the arguments are not valid JSON{where}: {snippet(raw)!r}"
            else:
                if "\\u" in raw and surrogate_escape.search(raw):
                    parsed = valid_json(parsed)
                if not isinstance(parsed, dict):
                    problem = (
                        f"the arguments are a JSON {type(parsed).__name__}, not an object: {snippet(raw)!r}"
                    )
                    parsed = None
        elif isinstance(arguments, Mapping):
            parsed = dict(arguments)
            raw = json_text(parsed, f"tool call {name!r}: arguments")
            checked = valid_text(raw)
            if checked is not raw:
                raw, parsed = checked, valid_json(parsed)
        else:
            raise ConfigError(
                f"tool call {name!r}: arguments must be a dict or JSON text, not {type(arguments).__name__}"
            )
        object.__setattr__(self, "name", valid_text(name))
        object.__setattr__(self, "arguments_json", raw)
        object.__setattr__(self, "id", valid_text(id) if isinstance(id, str) else "")
        object.__setattr__(self, "_arguments", parsed)
        object.__setattr__(self, "_problem", problem)

    @property
    def problem(self) -> str | None:
        """Why ``arguments_json`` is not a JSON object, or None when it is."""
        return self._problem

    @property
    def arguments(self) -> dict[str, Any]:
        """The parsed arguments (a copy); raises ``ToolArgumentsError`` if they are not a
        JSON object (see :attr:`problem`)."""
        if self._arguments is None:
            raise ToolArgumentsError(
                f"tool call {self.name!r}{self._for()}: {self._problem}; send the error back to the "
                "model with call.result(..., error=True) so it can correct it",
                tool=self.name,
                call_id=self.id,
                errors=[self._problem or "not a JSON object"],
            )
        return dict(self._arguments)

    def checked_arguments(self, spec: ToolSpec) -> dict[str, Any]:
        """The arguments, validated against ``spec``'s schema (``ToolArgumentsError``
        lists what is wrong: a missing field, a wrong type...)."""
        arguments = self.arguments
        errors = spec.validate(arguments)
        if errors:
            raise ToolArgumentsError(
                f"tool call {self.name!r}{self._for()}: the arguments do not match the tool's schema: "
                + "; ".join(errors),
                tool=self.name,
                call_id=self.id,
                errors=errors,
            )
        return arguments

    def _for(self) -> str:
        return f" (id {self.id})" if self.id else ""

    def with_id(self, id: str) -> ToolCall:
        """The same call with another id."""
        return ToolCall(self.name, self.arguments_json, id=id)

    def result(self, content: Any, *, error: bool = False) -> dict[str, Any]:
        """The message that answers this call (see :func:`tool_result_message`)."""
        return tool_result_message(self, content, error=error)

    def to_message(self) -> dict[str, Any]:
        """This call as an entry of an assistant message's ``tool_calls`` (OpenAI's shape)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments_json},
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_dict`` reads it back, the malformed arguments too)."""
        return {"id": self.id, "name": self.name, "arguments": self.arguments_json}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        """A call from :meth:`to_dict`'s shape or OpenAI's (``{"id", "function": {"name",
        "arguments"}}``)."""
        inner = data.get("function")
        source = inner if isinstance(inner, Mapping) else data
        call_id = data.get("id")
        return cls(
            source.get("name", ""), source.get("arguments"), id=call_id if isinstance(call_id, str) else ""
        )


def openai_tool_choice(choice: str) -> str | dict[str, Any]:
    """``tool_choice`` in OpenAI's shape: a mode as is, a tool's name as a function choice."""
    if choice in TOOL_CHOICES:
        return choice
    return {"type": "function", "function": {"name": choice}}


def call_fields(entry: Mapping[str, Any]) -> tuple[str, str, Any]:
    """(id, name, arguments) of an assistant message's ``tool_calls`` entry, in OpenAI's
    shape or the flat ``{"id", "name", "arguments"}``."""
    function = entry.get("function")
    source = function if isinstance(function, Mapping) else entry
    return str(entry.get("id") or ""), str(source.get("name") or ""), source.get("arguments")


def content_text(content: Any) -> str:
    """A message's content as text (anything that is not a string as JSON)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    return json.dumps(content, ensure_ascii=False, default=str)


def openai_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages for Chat Completions: tool results keep only the fields OpenAI accepts,
    and call arguments are JSON text (the common case is a plain copy)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": message.get("tool_call_id"),
                    "content": content_text(message.get("content")),
                }
            )
        elif role == "assistant" and message.get("tool_calls"):
            copy = dict(message)
            calls = []
            for entry in message["tool_calls"]:
                call_id, name, arguments = call_fields(entry)
                text = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
                calls.append(
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}
                )
            copy["tool_calls"] = calls
            out.append(copy)
        else:
            out.append(dict(message))
    return out


def tool_result_message(call: ToolCall, content: Any, *, error: bool = False) -> dict[str, Any]:
    """The ``{"role": "tool", ...}`` message that answers ``call``.

    ``content`` that is not a string is sent as JSON.  ``error=True`` tells the model the
    call failed (Anthropic's ``is_error``; other vendors read it in the text).
    """
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)
    message: dict[str, Any] = {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": text}
    if error:
        message["is_error"] = True
    return message
