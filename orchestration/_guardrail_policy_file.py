"""Reading guardrail policy files: YAML (safe loader) to validated specs.

Every problem is one :class:`~orchestration.errors.ConfigError` line with its position
(``line N, column M``): YAML syntax, control characters such as NUL, nesting deeper than
a policy file ever needs, duplicate keys (YAML would silently keep the last), and each
field's own checks.

A source is a file or text by its type and shape, never by what the file system holds:
an ``os.PathLike`` is always a file; a string is policy text when it has a line break or
starts like YAML (``key:``, ``- ``, ``[``, ``{``, ``#``, or nothing at all), and a file
path otherwise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._guardrail_grammar import ExpressionError, parse_condition
from .errors import ConfigError

if TYPE_CHECKING:
    import yaml

__all__ = [
    "ACTIONS",
    "PolicySpec",
    "is_policy_text",
    "read_policy_file",
    "scope_label",
    "validate_action",
    "validate_scope",
]

ACTIONS = ("reject_execution", "pause_run", "abort_run")
_ACTION_ALIASES = {"abort_lifetime": "abort_run", "pause_lifetime": "pause_run", "reject": "reject_execution"}
_SCOPES = ("execution", "run", "tenant", "user")
_LABEL = re.compile(r"label:([A-Za-z_][A-Za-z0-9_.-]*)")
_KEYS = ("name", "when", "action", "scope", "description")
_MAX_BYTES = 1_000_000
#: Collections nest two levels in a policy file (``policies`` > a policy); anything much
#: deeper is a mistake or an attack on the (recursive) YAML composer.
_MAX_DEPTH = 16
#: How an inline policy text starts: a key (``policies:``), a list item, flow YAML, a comment.
_TEXT_START = re.compile(r"\s*(?:$|[-?](?:\s|$)|[\[{#]|[^\s:\\/]+\s*:(?:\s|$))")
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")
)


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """One policy as written in the file (``line`` is 1-based), checked but not yet built."""

    name: str
    when: str
    action: str
    scope: str
    description: str
    line: int


def validate_action(value: object) -> str:
    """The canonical action for ``value``; ValueError naming the valid ones otherwise."""
    text = str(value).strip().lower()
    text = _ACTION_ALIASES.get(text, text)
    if text not in ACTIONS:
        raise ValueError(f"unknown action {value!r}: use one of {', '.join(ACTIONS)}")
    return text


def validate_scope(value: object) -> str:
    """The canonical scope for ``value``; ValueError naming the valid ones otherwise."""
    text = str(value).strip()
    if text.lower() in _SCOPES:
        return text.lower()
    if _LABEL.fullmatch(text):
        return text
    raise ValueError(f"unknown scope {value!r}: use one of {', '.join(_SCOPES)}, or label:NAME")


def scope_label(scope: str) -> str | None:
    """The run label a scope aggregates over, or None for ``execution``/``run``."""
    if scope in ("tenant", "user"):
        return scope
    match = _LABEL.fullmatch(scope)
    return match.group(1) if match else None


def read_policy_file(source: str | os.PathLike[str]) -> list[PolicySpec]:
    """Read and check a policy file (path) or text; :class:`ConfigError` with positions."""
    import yaml  # on first use: importing orchestration does not load PyYAML

    text, origin = _read(source)
    loader: Any = None
    try:
        loader = _loader_class()(text)  # checks the characters first
        root = loader.get_single_node()
    except _TooDeep as error:
        raise ConfigError(
            f"{origin}: {_mark(error.mark)}: nested deeper than {_MAX_DEPTH} levels; "
            "a policy file is 'policies:' with a list of flat policies"
        ) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{_mark(mark)}: " if mark is not None else ""
        problem = error.problem or error.context or "malformed"
        raise ConfigError(f"{origin}: {where}invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as error:
        raise ConfigError(
            f"{origin}: {_offset(text, error.position)}: the character {_codepoint(error.character)} "
            "is not allowed in YAML; remove it"
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{origin}: invalid YAML: {' '.join(str(error).split())}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return _policies(root, origin)


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__("too deep")
        self.mark = mark


@cache
def _loader_class() -> type[Any]:
    """The safe loader, refusing nesting deeper than ``_MAX_DEPTH`` (made on first use)."""
    import yaml

    class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
        """The safe loader, refusing nesting deeper than ``_MAX_DEPTH`` before it recurses."""

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._depth = 0

        def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
            if self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
                if self._depth >= _MAX_DEPTH:
                    raise _TooDeep(self.peek_event().start_mark)
                self._depth += 1
                try:
                    return super().compose_node(parent, index)  # type: ignore[no-any-return]
                finally:
                    self._depth -= 1
            return super().compose_node(parent, index)  # type: ignore[no-any-return]

    return _Loader


def _mark(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _offset(text: str, position: int) -> str:
    """``line N, column M`` of character ``position`` of ``text``."""
    line = text.count("\n", 0, position)
    column = position - (text.rfind("\n", 0, position) + 1)
    return f"line {line + 1}, column {column + 1}"


def _codepoint(character: object) -> str:
    code = ord(character) if isinstance(character, str) else int(character)  # type: ignore[call-overload]
    return f"U+{code:04X}" + (" (NUL)" if code == 0 else "")


def _read(source: str | os.PathLike[str]) -> tuple[str, str]:
    if isinstance(source, str) and is_policy_text(source):
        return source, "guardrail policies"
    path = Path(source)
    shown = str(path) if len(str(path)) <= 200 else str(path)[:200] + "..."
    if "\x00" in str(path):
        raise ConfigError(f"the policy file name {shown!r} contains a NUL character")
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ConfigError(f"{shown}: a policy file larger than {_MAX_BYTES} bytes is not plausible")
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise ConfigError(
            f"cannot read guardrail policies from {shown}: no such file (inline policy text "
            "starts with 'policies:' or '- ')"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ConfigError(f"cannot read guardrail policies from {shown}: {reason}") from None


def is_policy_text(source: str) -> bool:
    """True when the string ``source`` is policy text rather than a file path (by its shape)."""
    return "\n" in source or "\r" in source or _TEXT_START.match(source) is not None


def _at(origin: str, node: yaml.Node, message: str) -> ConfigError:
    return ConfigError(f"{origin}: {_mark(node.start_mark)}: {message}")


def _duplicate(origin: str, key: yaml.Node, first: yaml.Node) -> ConfigError:
    return _at(
        origin,
        key,
        f"duplicate key {_scalar(key)!r} (first at line {first.start_mark.line + 1}); "
        "YAML would keep only the last: remove one",
    )


def _policies(root: yaml.Node | None, origin: str) -> list[PolicySpec]:
    import yaml

    if root is None or _is_null(root):
        return []
    items: yaml.Node | None = root
    if isinstance(root, yaml.MappingNode):
        items = None
        keys: dict[str, yaml.Node] = {}
        for key, value in root.value:
            if _scalar(key) in keys:
                raise _duplicate(origin, key, keys[_scalar(key)])
            keys[_scalar(key)] = key
            if _scalar(key) == "policies":
                items = value
            elif _scalar(key) != "version":
                raise _at(origin, key, f"unknown key {_scalar(key)!r}: a policy file has 'policies: [...]'")
        if items is None or _is_null(items):
            return []
    if not isinstance(items, yaml.SequenceNode):
        raise _at(origin, items, "'policies' must be a list of policies (each '- name: ...')")
    specs = [_policy(node, origin) for node in items.value]
    seen: dict[str, int] = {}
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(
                f"{origin}: line {spec.line}: policy name {spec.name!r} is already used on line {seen[spec.name]}"
            )
        seen[spec.name] = spec.line
    return specs


def _policy(node: yaml.Node, origin: str) -> PolicySpec:
    import yaml

    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise _at(origin, node, "a policy is a mapping with name, when and action")
    fields: dict[str, yaml.Node] = {}
    keys: dict[str, yaml.Node] = {}
    for key, value in node.value:
        name = _scalar(key)
        if name in keys:
            raise _duplicate(origin, key, keys[name])
        keys[name] = key
        if name not in _KEYS:
            raise _at(origin, key, f"unknown policy key {name!r}: use {', '.join(_KEYS)}")
        if not isinstance(value, yaml.ScalarNode):
            raise _at(origin, value, f"{name!r} must be a single value, not a list or mapping")
        if value.tag not in _PLAIN_TAGS:
            raise _at(origin, value, f"{name!r} has an unsupported YAML tag {value.tag!r}")
        fields[name] = value
    for required in ("name", "when", "action"):
        if required not in fields or not str(fields[required].value).strip():
            raise ConfigError(f"{origin}: line {line}: the policy has no {required!r}")
    name = str(fields["name"].value).strip()
    try:
        action = validate_action(fields["action"].value)
    except ValueError as error:
        raise _at(origin, fields["action"], f"policy {name!r}: {error}") from error
    scope = "run"
    if "scope" in fields:
        try:
            scope = validate_scope(fields["scope"].value)
        except ValueError as error:
            raise _at(origin, fields["scope"], f"policy {name!r}: {error}") from error
    when_node = fields["when"]
    when = str(when_node.value)
    try:
        parse_condition(when)
    except ExpressionError as error:
        raise ConfigError(
            f"{origin}: {_position(when_node, error.column)}: policy {name!r}: {error.message}"
        ) from error
    description = str(fields["description"].value) if "description" in fields else ""
    return PolicySpec(name, when, action, scope, description, line)


def _position(node: yaml.ScalarNode, column: int) -> str:
    """Where column ``column`` of a condition is in the file (exact for one-line scalars)."""
    line = node.start_mark.line + 1
    if node.start_mark.line == node.end_mark.line and node.style in (None, '"', "'"):
        opening = 1 if node.style else 0
        return f"line {line}, column {node.start_mark.column + opening + column}"
    return f"line {line}, column {column} of the condition"


def _scalar(node: yaml.Node) -> str:
    import yaml

    return str(node.value) if isinstance(node, yaml.ScalarNode) else ""


def _is_null(node: yaml.Node) -> bool:
    import yaml

    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
