"""Tool calls and structured output: the vendor-neutral types the providers speak.

- :class:`ToolSpec`: a tool the model may call (a name, a description, a JSON schema of
  its arguments).
- :class:`ToolCall`: one call the model asked for.  ``arguments`` are parsed once, where
  the call enters; arguments that are not a JSON object are kept as sent
  (``arguments_json``) and reading ``arguments`` raises
  :class:`~orchestration.errors.ToolArgumentsError`, so a malformed call is never read
  as a silent ``{}``.  ``checked_arguments(spec)`` also validates them against the tool's
  schema.
- :class:`OutputSchema`: a JSON schema the answer must follow (structured output).

Messages stay plain dicts in the OpenAI Chat Completions shape, which every adapter
translates to its vendor's format: an assistant turn with calls is
:meth:`Completion.message() <orchestration.llm.Completion.message>`, a tool's answer is
:meth:`ToolCall.result`.  JSON schemas are checked with ``jsonschema`` (imported on
first use: it takes a fifth of a second, so async code loads it in a thread with
:func:`load_jsonschema`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, StructuredOutputError, ToolArgumentsError
from .text import valid_text

__all__ = [
    "TOOL_CHOICES",
    "OutputSchema",
    "ToolCall",
    "ToolSpec",
    "load_jsonschema",
    "load_jsonschema_async",
    "openai_tool_choice",
    "schema_errors",
    "tool_result_message",
]

#: ``tool_choice`` values that are modes, not tool names.
TOOL_CHOICES = frozenset({"auto", "none", "required"})

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A JSON ``\\uD800``-``\\uDFFF`` escape: it decodes to a lone surrogate (not valid UTF-8).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_MAX_ERRORS = 5
_SNIPPET = 200


def _snippet(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."


def _valid_json(value: Any) -> Any:
    """``value`` with every string in it made valid UTF-8 (keys included)."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [_valid_json(v) for v in value]
    if isinstance(value, dict):
        return {valid_text(k): _valid_json(v) for k, v in value.items()}
    return value


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"{what} name {name!r} is not allowed: use 1-64 letters, digits, '_' or '-' (vendors require it)"
        )
    return name


def _json_text(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"{what} must be JSON (dicts, lists, strings, numbers, booleans): {error}"
        ) from None


# -- JSON schema validation -------------------------------------------------------------


def load_jsonschema() -> Any:
    """The ``jsonschema`` module (imported on first use)."""
    import jsonschema

    return jsonschema


async def load_jsonschema_async() -> None:
    """Import ``jsonschema`` in a worker thread, so the event loop does not wait for it."""
    import sys

    if "jsonschema" not in sys.modules:
        await asyncio.to_thread(load_jsonschema)


def _validator(schema: Mapping[str, Any], what: str) -> Any:
    jsonschema = load_jsonschema()
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise ConfigError(f"{what} is not a valid JSON schema: {_snippet(error.message)}") from None
    return cls(schema)


def _path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def schema_errors(validator: Any, value: Any) -> list[str]:
    """Up to five readable problems of ``value`` under a ``jsonschema`` validator
    (``"$.age: 'x' is not of type 'integer'"``); empty when it is valid."""
    found = []
    for error in validator.iter_errors(value):
        found.append(f"{_path(error.absolute_path)}: {_snippet(error.message)}")
        if len(found) == _MAX_ERRORS:
            break
    return found


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
        _check_name(self.name, "tool")
        if not isinstance(self.description, str):
            raise ConfigError(f"tool {self.name!r}: description must be a string")
        if not isinstance(self.parameters, Mapping) or self.parameters.get("type") != "object":
            raise ConfigError(
                f"tool {self.name!r}: parameters must be a JSON schema of an object, "
                'e.g. {"type": "object", "properties": {"query": {"type": "string"}}}'
            )
        _json_text(self.parameters, f"tool {self.name!r}: parameters")

    def validate(self, arguments: Any) -> list[str]:
        """The problems of ``arguments`` under :attr:`parameters` (empty when valid)."""
        validator = self._validator
        if validator is None:
            validator = _validator(self.parameters, f"tool {self.name!r}: parameters")
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
                problem = f"the arguments are not valid JSON{where}: {_snippet(raw)!r}"
            else:
                if "\\u" in raw and _SURROGATE_ESCAPE.search(raw):
                    parsed = _valid_json(parsed)
                if not isinstance(parsed, dict):
                    problem = (
                        f"the arguments are a JSON {type(parsed).__name__}, not an object: {_snippet(raw)!r}"
                    )
                    parsed = None
        elif isinstance(arguments, Mapping):
            parsed = dict(arguments)
            raw = _json_text(parsed, f"tool call {name!r}: arguments")
            checked = valid_text(raw)
            if checked is not raw:
                raw, parsed = checked, _valid_json(parsed)
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


# -- structured output ------------------------------------------------------------------

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n(.*?)\n?```$", re.S)


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """Structured output: the answer must be JSON that follows ``schema``.

    Vendors that support it constrain the answer (OpenAI ``response_format``,
    Anthropic through a forced tool, Ollama ``format``); the framework then validates
    it, and when it does not match shows the model what is wrong and asks again, up to
    ``retries`` times (``StructuredOutputError`` after that).

    Args:
        schema: the JSON schema of the answer.
        name: what the vendor calls it (letters, digits, ``_``, ``-``).
        description: what the answer is (some vendors show it to the model).
        strict: OpenAI's strict mode (the schema must meet its rules).
        retries: how many times a non-matching answer is sent back for correction.
    """

    schema: Mapping[str, Any]
    name: str = "output"
    description: str = ""
    strict: bool = False
    retries: int = 2
    _validator: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name, "output schema")
        if not isinstance(self.schema, Mapping):
            raise ConfigError(
                f"output schema {self.name!r}: schema must be a JSON schema dict, not {type(self.schema).__name__}"
            )
        _json_text(self.schema, f"output schema {self.name!r}")
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise ConfigError(f"output schema {self.name!r}: retries must be a whole number >= 0")

    @property
    def is_object(self) -> bool:
        """True when the schema describes a JSON object (a tool's input must be one)."""
        return self.schema.get("type") == "object"

    def validate(self, value: Any) -> list[str]:
        """The problems of ``value`` under the schema (empty when valid)."""
        validator = self._validator
        if validator is None:
            validator = _validator(self.schema, f"output schema {self.name!r}")
            object.__setattr__(self, "_validator", validator)
        return schema_errors(validator, value)

    def parse(self, text: str) -> Any:
        """The JSON value of ``text`` (a Markdown code fence around it is allowed),
        validated; ``StructuredOutputError`` says what is wrong."""
        stripped = text.strip()
        fenced = _FENCE.match(stripped)
        if fenced:
            stripped = fenced.group(1).strip()
        if not stripped:
            raise StructuredOutputError(
                f"output {self.name!r}: the answer is empty, not JSON",
                errors=["the answer is empty"],
                content=text,
            )
        try:
            value = json.loads(stripped)
        except ValueError as error:
            where = (
                f" ({error.msg} at character {error.pos})" if isinstance(error, json.JSONDecodeError) else ""
            )
            problem = f"the answer is not valid JSON{where}"
            raise StructuredOutputError(
                f"output {self.name!r}: {problem}", errors=[problem], content=text
            ) from None
        if _SURROGATE_ESCAPE.search(stripped):
            value = _valid_json(value)
        errors = self.validate(value)
        if errors:
            raise StructuredOutputError(
                f"output {self.name!r}: the answer does not match the schema: " + "; ".join(errors),
                errors=errors,
                content=text,
            )
        return value

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's ``response_format`` for this schema (``json_schema``)."""
        spec: dict[str, Any] = {"name": self.name, "schema": dict(self.schema), "strict": self.strict}
        if self.description:
            spec["description"] = self.description
        return {"type": "json_schema", "json_schema": spec}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_dict`` reads it back)."""
        return {
            "schema": dict(self.schema),
            "name": self.name,
            "description": self.description,
            "strict": self.strict,
            "retries": self.retries,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputSchema:
        """Inverse of :meth:`to_dict`."""
        return cls(
            schema=data["schema"],
            name=data.get("name") or "output",
            description=data.get("description") or "",
            strict=bool(data.get("strict", False)),
            retries=int(data.get("retries", 2)),
        )
