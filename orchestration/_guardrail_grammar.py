"""The guardrail condition language: a hand-written tokenizer and recursive-descent parser.

Conditions are parsed into a tiny tree and evaluated by walking it; nothing is ever
passed to ``eval`` or ``compile``, and only the identifiers below exist::

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand (("<" | "<=" | ">" | ">=" | "==" | "!=") operand)?
    operand    := NUMBER | METRIC | AGGREGATE "(" METRIC? ")" | "(" condition ")"

A comparison's operands must be numbers or metrics; ``and``/``or``/``not`` take
comparisons; the whole condition must be true or false.  Errors carry the column.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AGGREGATES",
    "CALL_METRICS",
    "METRICS",
    "RUN_METRICS",
    "Condition",
    "ExpressionError",
    "Lookup",
    "Metric",
    "parse_condition",
]

#: Metrics of one model call (at run and label scopes: totals over the scope's calls).
CALL_METRICS = ("cost_usd", "tokens_used", "input_tokens", "output_tokens", "latency_ms")
#: Metrics of a whole run.
RUN_METRICS = ("iterations", "calls", "wall_time_s", "agents_failed")
METRICS = CALL_METRICS + RUN_METRICS
AGGREGATES = ("sum", "max", "count")

_MAX_LENGTH = 2000
_MAX_DEPTH = 40

Aggregate = Literal["value", "sum", "max", "count"]
#: Resolves a metric to its number, or None when it is not known at this point.
Lookup = Callable[["Metric"], "float | None"]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

# Numbers may group thousands with "_" or, as the seed writes "10 000", with a space.
_TOKEN = re.compile(
    r"""(?P<number>\d{1,3}(?:[ \u2009\u202f]\d{3}(?!\d))+(?:\.\d+)?
                   |(?:\d[\d_]*(?:\.\d[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)
      | (?P<space>\s+)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op><=|>=|==|!=|<|>|\(|\))""",
    re.VERBOSE,
)


class ExpressionError(ValueError):
    """A condition does not parse; ``column`` is 1-based within the condition text."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


class _Unknown(Exception):
    """A metric the condition needs is not known at this point: the policy does not apply yet."""


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["number", "name", "op", "end"]
    text: str
    column: int


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric reference: ``cost_usd``, ``sum(cost_usd)``, ``max(latency_ms)`` or ``count()``."""

    aggregate: Aggregate
    name: str = ""

    def __str__(self) -> str:
        if self.aggregate == "count":
            return "count()"
        return self.name if self.aggregate == "value" else f"{self.aggregate}({self.name})"


@dataclass(frozen=True, slots=True)
class _Number:
    value: float

    def __str__(self) -> str:
        return (
            str(int(self.value)) if self.value.is_integer() and abs(self.value) < 1e16 else repr(self.value)
        )


_Operand = Metric | _Number


@dataclass(frozen=True, slots=True)
class _Compare:
    op: str
    left: _Operand
    right: _Operand

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True, slots=True)
class _Not:
    item: _Bool

    def __str__(self) -> str:
        return f"not {_wrap(self.item)}"


@dataclass(frozen=True, slots=True)
class _Join:
    op: Literal["and", "or"]
    items: tuple[_Bool, ...]

    def __str__(self) -> str:
        return f" {self.op} ".join(_wrap(item) for item in self.items)


_Bool = _Compare | _Not | _Join


def _wrap(node: _Bool) -> str:
    return f"({node})" if isinstance(node, _Join) else str(node)


def _value(node: _Operand, lookup: Lookup) -> float:
    if isinstance(node, _Number):
        return node.value
    found = lookup(node)
    if found is None:
        raise _Unknown(str(node))
    return float(found)


def _truth(node: _Bool, lookup: Lookup) -> bool:
    if isinstance(node, _Compare):
        return _COMPARE[node.op](_value(node.left, lookup), _value(node.right, lookup))
    if isinstance(node, _Not):
        return not _truth(node.item, lookup)
    if node.op == "and":
        return all(_truth(item, lookup) for item in node.items)
    return any(_truth(item, lookup) for item in node.items)


def _metrics(node: _Bool | _Operand) -> list[Metric]:
    if isinstance(node, Metric):
        return [node]
    if isinstance(node, _Number):
        return []
    if isinstance(node, _Compare):
        return _metrics(node.left) + _metrics(node.right)
    if isinstance(node, _Not):
        return _metrics(node.item)
    return [metric for item in node.items for metric in _metrics(item)]


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition: evaluate it with :meth:`holds`; ``str()`` gives its canonical text."""

    root: _Bool
    metrics: tuple[Metric, ...]

    def holds(self, lookup: Lookup) -> bool | None:
        """True or False, or None when a metric it needs is unknown (``lookup`` returned None)."""
        try:
            return _truth(self.root, lookup)
        except _Unknown:
            return None

    def __str__(self) -> str:
        return str(self.root)


def parse_condition(text: str) -> Condition:
    """Parse a condition; raises :class:`ExpressionError` (with the column) when malformed."""
    if len(text) > _MAX_LENGTH:
        raise ExpressionError(f"condition is longer than {_MAX_LENGTH} characters", 1)
    parser = _Parser(_tokenize(text))
    if parser.peek().kind == "end":
        raise ExpressionError("empty condition: write a comparison such as `calls > 10`", 1)
    root = parser.condition(0)
    end = parser.peek()
    if end.kind != "end":
        raise ExpressionError(f"unexpected {end.text!r} after a complete condition", end.column)
    if not isinstance(root, _Compare | _Not | _Join):
        raise ExpressionError(f"`{root}` is a number, not a condition: compare it, e.g. `{root} > 10`", 1)
    seen: dict[Metric, None] = dict.fromkeys(_metrics(root))
    return Condition(root, tuple(seen))


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            char = text[position]
            hint = " (use == to compare)" if char == "=" else ""
            raise ExpressionError(f"unexpected character {char!r}{hint}", position + 1)
        kind = match.lastgroup
        if kind in ("number", "name", "op"):
            tokens.append(_Token(kind, match.group(), position + 1))  # type: ignore[arg-type]
        position = match.end()
    tokens.append(_Token("end", "end of condition", len(text.rstrip()) + 1))
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._index = 0

    def peek(self) -> _Token:
        return self._tokens[self._index]

    def _next(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind != "end":
            self._index += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "name" and token.text.lower() == word:
            self._index += 1
            return True
        return False

    def _expect(self, text: str, what: str) -> None:
        token = self._next()
        if token.text != text:
            raise ExpressionError(f"expected {what}, got {token.text!r}", token.column)

    def condition(self, depth: int) -> _Bool | _Operand:
        if depth > _MAX_DEPTH:
            raise ExpressionError(f"condition nests deeper than {_MAX_DEPTH} levels", self.peek().column)
        return self._join("or", depth)

    def _join(self, op: Literal["and", "or"], depth: int) -> _Bool | _Operand:
        column = self.peek().column
        first = self._join("and", depth) if op == "or" else self._not(depth)
        items = [first]
        while self._keyword(op):
            column_next = self.peek().column
            items.append(self._join("and", depth) if op == "or" else self._not(depth))
            _require_bool(items[-1], column_next, op)
        if len(items) == 1:
            return first
        _require_bool(first, column, op)
        return _Join(op, tuple(items))  # type: ignore[arg-type]

    def _not(self, depth: int) -> _Bool | _Operand:
        if depth > _MAX_DEPTH:  # `not not not ...` nests too (and evaluating it recurses)
            raise ExpressionError(f"condition nests deeper than {_MAX_DEPTH} levels", self.peek().column)
        if self._keyword("not"):
            column = self.peek().column
            item = self._not(depth + 1)
            _require_bool(item, column, "not")
            return _Not(item)  # type: ignore[arg-type]
        return self._comparison(depth)

    def _comparison(self, depth: int) -> _Bool | _Operand:
        column = self.peek().column
        left = self._operand(depth)
        token = self.peek()
        if token.kind != "op" or token.text not in _COMPARE:
            return left
        self._next()
        right_column = self.peek().column
        right = self._operand(depth)
        _require_number(left, column)
        _require_number(right, right_column)
        after = self.peek()
        if after.kind == "op" and after.text in _COMPARE:
            raise ExpressionError("chained comparisons are not supported: join them with `and`", after.column)
        return _Compare(token.text, left, right)  # type: ignore[arg-type]

    def _operand(self, depth: int) -> _Bool | _Operand:
        token = self._next()
        if token.kind == "number":
            value = float(re.sub(r"[_ \u2009\u202f]", "", token.text))
            if not math.isfinite(value):  # 1e999: every comparison with it would be decided already
                raise ExpressionError(f"the number {token.text} is too large to compare with", token.column)
            return _Number(value)
        if token.text == "(":
            inner = self.condition(depth + 1)
            self._expect(")", "')'")
            return inner
        if token.kind == "name":
            return self._name(token)
        if token.kind == "end":
            raise ExpressionError("the condition ends too soon: expected a metric or a number", token.column)
        raise ExpressionError(f"expected a metric or a number, got {token.text!r}", token.column)

    def _name(self, token: _Token) -> Metric:
        name = token.text
        if name.lower() in ("and", "or", "not"):
            raise ExpressionError(f"expected a metric or a number, got {name!r}", token.column)
        if name in AGGREGATES:
            self._expect("(", f"'(' after {name}")
            if name == "count":
                self._expect(")", "')': count() takes no argument")
                return Metric("count")
            argument = self._next()
            if argument.kind != "name" or argument.text not in METRICS:
                raise ExpressionError(
                    f"{name}() takes one metric ({', '.join(METRICS)}), got {argument.text!r}",
                    argument.column,
                )
            self._expect(")", f"')' after {name}({argument.text}")
            return Metric(name, argument.text)  # type: ignore[arg-type]
        if name in METRICS:
            if self.peek().text == "(":
                raise ExpressionError(f"{name} is a metric, not a function", self.peek().column)
            return Metric("value", name)
        raise ExpressionError(
            f"unknown identifier {name!r}: use one of {', '.join(METRICS)}, "
            f"the aggregates {', '.join(a + '()' for a in AGGREGATES)}, and/or/not",
            token.column,
        )


def _require_bool(node: _Bool | _Operand, column: int, where: str) -> None:
    if isinstance(node, Metric | _Number):
        raise ExpressionError(f"`{where}` needs a comparison such as `{node} > 10`, not `{node}`", column)


def _require_number(node: _Bool | _Operand, column: int) -> None:
    if not isinstance(node, Metric | _Number):
        raise ExpressionError(f"cannot compare a condition (`{node}`) with a number", column)
