"""JSON schemas: checking values against them, and :class:`OutputSchema`, the schema a
structured answer must follow.

Values are checked with ``jsonschema`` (imported on first use: it takes a fifth of a
second, so async code loads it in a thread with :func:`load_jsonschema_async`).  Problems
read as ``"$.age: '36' is not of type 'integer'"``, for a developer and for a model alike.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, StructuredOutputError
from .text import valid_text

__all__ = [
    "OutputSchema",
    "check_name",
    "json_text",
    "load_jsonschema",
    "load_jsonschema_async",
    "schema_errors",
    "schema_validator",
    "struct_schema",
    "surrogate_escape",
    "valid_json",
]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
surrogate_escape = re.compile(r"\\u[dD][89a-fA-F]")
_MAX_ERRORS = 5
_SNIPPET = 200


def snippet(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."


def valid_json(value: Any) -> Any:
    """``value`` with every string in it made valid UTF-8 (keys included)."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [valid_json(v) for v in value]
    if isinstance(value, dict):
        return {valid_text(k): valid_json(v) for k, v in value.items()}
    return value


def check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"{what} name {name!r} is not allowed: use 1-64 letters, digits, '_' or '-' (vendors require it)"
        )
    return name


def json_text(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"{what} must be JSON (dicts, lists, strings, numbers, booleans): {error}"
        ) from None


def load_jsonschema() -> Any:
    """The ``jsonschema`` module (imported on first use)."""
    import jsonschema

    return jsonschema


async def load_jsonschema_async() -> None:
    """Import ``jsonschema`` in a worker thread, so the event loop does not wait for it."""
    import sys

    if "jsonschema" not in sys.modules:
        await asyncio.to_thread(load_jsonschema)


def struct_schema(args_type: type[Any]) -> dict[str, Any]:
    """A msgspec Struct's JSON schema, inlined (no ``$ref``/``$defs``, no titles), as
    vendors' tool formats want it."""
    import msgspec

    schema = msgspec.json.schema(args_type)
    defs = schema.pop("$defs", {})

    def inline(value: Any) -> Any:
        if isinstance(value, dict):
            ref = value.get("$ref")
            if isinstance(ref, str):
                return inline(dict(defs[ref.rsplit("/", 1)[-1]]))
            return {k: inline(v) for k, v in value.items() if k != "title"}
        if isinstance(value, list):
            return [inline(v) for v in value]
        return value

    return dict(inline(schema))


def schema_validator(schema: Mapping[str, Any], what: str) -> Any:
    jsonschema = load_jsonschema()
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise ConfigError(f"{what} is not a valid JSON schema: {snippet(error.message)}") from None
    return cls(schema)


def _path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def schema_errors(validator: Any, value: Any) -> list[str]:
    """Up to five readable problems of ``value`` under a ``jsonschema`` validator
    (``"$.age: 'x' is not of type 'integer'"``); empty when it is valid."""
    found = []
    for error in validator.iter_errors(value):
        found.append(f"{_path(error.absolute_path)}: {snippet(error.message)}")
        if len(found) == _MAX_ERRORS:
            break
    return found


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
        check_name(self.name, "output schema")
        if not isinstance(self.schema, Mapping):
            raise ConfigError(
                f"output schema {self.name!r}: schema must be a JSON schema dict, not {type(self.schema).__name__}"
            )
        json_text(self.schema, f"output schema {self.name!r}")
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
            validator = schema_validator(self.schema, f"output schema {self.name!r}")
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
        if surrogate_escape.search(stripped):
            value = valid_json(value)
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
