"""Conditions written as text: a tiny, safe expression language over a run's context.

``ConditionalOrchestrator(condition="complexity > 0.7 and not urgent", ...)`` and the CLI's
``--condition`` use it.  The text is parsed once into a small tree and evaluated by
walking it; nothing reaches ``eval``, there are no calls or attribute access, and the
only names are keys of the context (``task``, ``run_id`` and what the caller passed)::

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := value (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") value)?
    value      := NUMBER | STRING | "true" | "false" | "null" | NAME ("." NAME)* | "(" condition ")"

Strings are single- or double-quoted (backslash escapes the quote); ``a.b`` reads key
``b`` of the dict at key ``a``; ``x in y`` is a substring test for strings and membership
for lists and dicts.  A bare value counts by its truth (``urgent``), so an evaluator may
also return a value (``depth`` picks the branch named by ``context["depth"]``).  Syntax
errors are a :class:`~orchestration.ConfigError` with the column; a name the context lacks
or an ordering across types fails the evaluation with the reason.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestration import ConfigError

__all__ = ["TextCondition"]

_MAX_LENGTH = 2000
_MAX_DEPTH = 40

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|<|>|\(|\))
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, string, op, name, keyword, end
    text: str
    column: int


@dataclass(frozen=True, slots=True)
class _Node:
    kind: str  # literal, name, not, and, or, compare
    value: Any = None
    children: tuple[_Node, ...] = ()


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            column = position + len(text[position:]) - len(text[position:].lstrip()) + 1
            raise ConfigError(f"condition {text!r}: column {column}: unexpected {text[column - 1]!r}")
        kind = match.lastgroup or ""
        raw = match.group(kind)
        column = match.start(kind) + 1
        if kind == "name" and raw in _KEYWORDS:
            kind = "keyword"
        tokens.append(_Token(kind, raw, column))
        position = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0

    def fail(self, message: str) -> ConfigError:
        token = self.tokens[self.index]
        found = repr(token.text) if token.kind != "end" else "the end"
        return ConfigError(f"condition {self.text!r}: column {token.column}: {message}, found {found}")

    def peek(self, *texts: str) -> bool:
        token = self.tokens[self.index]
        return token.kind in ("keyword", "op") and token.text in texts

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> _Node:
        node = self.or_()
        if self.tokens[self.index].kind != "end":
            raise self.fail("expected and, or, or the end of the condition")
        return node

    def or_(self) -> _Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.fail(f"nested more than {_MAX_DEPTH} levels")
        parts = [self.and_()]
        while self.peek("or"):
            self.take()
            parts.append(self.and_())
        self.depth -= 1
        return parts[0] if len(parts) == 1 else _Node("or", children=tuple(parts))

    def and_(self) -> _Node:
        parts = [self.not_()]
        while self.peek("and"):
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else _Node("and", children=tuple(parts))

    def not_(self) -> _Node:
        if self.peek("not"):
            self.take()
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise self.fail(f"nested more than {_MAX_DEPTH} levels")
            inner = self.not_()
            self.depth -= 1
            return _Node("not", children=(inner,))
        return self.comparison()

    def comparison(self) -> _Node:
        left = self.value()
        if self.peek("==", "!=", "<", "<=", ">", ">=", "in"):
            op = self.take().text
        elif self.peek("not") and self.tokens[self.index + 1].text == "in":
            self.index += 2
            op = "not in"
        else:
            return left
        return _Node("compare", op, (left, self.value()))

    def value(self) -> _Node:
        token = self.tokens[self.index]
        if token.kind == "number":
            self.take()
            number = float(token.text)
            return _Node("literal", int(number) if number.is_integer() and "." not in token.text else number)
        if token.kind == "string":
            self.take()
            return _Node("literal", re.sub(r"\\(.)", r"\1", token.text[1:-1]))
        if token.kind == "keyword" and token.text in ("true", "false", "null"):
            self.take()
            return _Node("literal", {"true": True, "false": False, "null": None}[token.text])
        if token.kind == "name":
            self.take()
            return _Node("name", tuple(token.text.split(".")))
        if self.peek("("):
            self.take()
            inner = self.or_()
            if not self.peek(")"):
                raise self.fail("expected ')'")
            self.take()
            return inner
        raise self.fail("expected a context key, a number, a quoted string, true, false, null or '('")


class TextCondition:
    """A condition (or evaluator) parsed from text; call it with the context dict."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise ConfigError('a condition must be a non-empty expression, e.g. "complexity > 0.7"')
        if len(text) > _MAX_LENGTH:
            raise ConfigError(f"a condition may have at most {_MAX_LENGTH} characters, got {len(text)}")
        self.text = text
        self.__name__ = repr(text)  # how the pattern's events and errors name the rule
        self._tree = _Parser(text).parse()

    def __repr__(self) -> str:
        return f"TextCondition({self.text!r})"

    def __call__(self, context: Mapping[str, Any]) -> Any:
        """The expression's value for ``context`` (a bool for a comparison)."""
        return _evaluate(self._tree, context)


def _evaluate(node: _Node, context: Mapping[str, Any]) -> Any:
    if node.kind == "literal":
        return node.value
    if node.kind == "name":
        return _lookup(node.value, context)
    if node.kind == "not":
        return not _evaluate(node.children[0], context)
    if node.kind == "and":
        return all(_evaluate(child, context) for child in node.children)
    if node.kind == "or":
        return any(_evaluate(child, context) for child in node.children)
    left, right = (_evaluate(child, context) for child in node.children)
    op = str(node.value)
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op in ("in", "not in"):
        if not isinstance(right, (str, list, tuple, dict)) or (
            isinstance(right, str) and not isinstance(left, str)
        ):
            raise ValueError(f"'{op}' needs a string, list or dict on its right, got {right!r}"[:300])
        found = left in right
        return found if op == "in" else not found
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    if not numeric and not (isinstance(left, str) and isinstance(right, str)):
        raise ValueError(f"cannot order {left!r} {op} {right!r}: compare numbers or strings"[:300])
    return _ORDER[op](left, right)


def _lookup(path: tuple[str, ...], context: Mapping[str, Any]) -> Any:
    value: Any = context
    for depth, key in enumerate(path):
        if not isinstance(value, Mapping) or key not in value:
            where = ".".join(path[:depth]) or "the context"
            keys = ", ".join(sorted(map(str, value))) if isinstance(value, Mapping) else "none"
            raise ValueError(f"no key {'.'.join(path)!r} in {where} (its keys: {keys})"[:300])
        value = value[key]
    return value
