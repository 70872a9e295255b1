"""Token usage and its cost in USD, and reading the usage numbers a vendor reports.

A vendor's numbers are not trusted blindly: a count that is negative, NaN or infinite
cannot be right (negative counts once billed a run -$0.665).  :class:`UsageReader` reads
such a number as missing, so the caller counts it offline as it does a count the vendor
left out, and remembers it; a :class:`Usage` a provider built itself is checked with
:meth:`Usage.impossible` and mended with :meth:`Usage.repaired` where the call is billed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["Usage", "UsageReader"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one or more model calls used, and what they cost.

    ``cached_input_tokens`` and ``cache_write_tokens`` are *part of* ``input_tokens``
    (they are priced differently); ``reasoning_tokens`` are part of ``output_tokens``.
    ``estimated`` is True when any count came from the offline tokenizer because the
    server reported none.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            calls=self.calls + other.calls,
            estimated=self.estimated or other.estimated,
        )

    def with_cost(self, cost_usd: float) -> Usage:
        """The same usage priced at ``cost_usd`` (and counted as at least one call)."""
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.cached_input_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            cost_usd,
            self.calls or 1,
            self.estimated,
        )

    def impossible(self) -> tuple[str, ...]:
        """``"name=value"`` for each number that cannot be a count or a cost (not a number,
        negative, NaN or infinite); empty for any usage the framework built itself."""
        return tuple(
            f"{name}={value!r}" for name in _NUMBER_FIELDS if not _possible(value := getattr(self, name))
        )

    def repaired(self, estimate: Usage) -> Usage:
        """This usage with its impossible numbers replaced: input and output tokens by
        ``estimate``'s (offline counts, and the usage is then marked estimated), the other
        counts and the cost by 0 (the call is then priced from its tokens)."""
        if not self.impossible():
            return self
        values = {name: getattr(self, name) for name in _NUMBER_FIELDS}
        estimated = self.estimated
        for name, value in values.items():
            if not _possible(value):
                if name in ("input_tokens", "output_tokens"):
                    values[name] = getattr(estimate, name)
                    estimated = True
                else:
                    values[name] = 0
        return Usage(
            input_tokens=int(values["input_tokens"]),
            output_tokens=int(values["output_tokens"]),
            cached_input_tokens=min(int(values["cached_input_tokens"]), int(values["input_tokens"])),
            cache_write_tokens=min(int(values["cache_write_tokens"]), int(values["input_tokens"])),
            reasoning_tokens=min(int(values["reasoning_tokens"]), int(values["output_tokens"])),
            cost_usd=float(values["cost_usd"]),
            calls=int(values["calls"]),
            estimated=estimated,
        )

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style access, so code written for ``usage.get('total_tokens')`` keeps working."""
        aliases = {"prompt_tokens": "input_tokens", "completion_tokens": "output_tokens"}
        name = aliases.get(key, key)
        if name == "total_tokens":
            return self.total_tokens
        return getattr(self, name, default) if name in _FIELD_NAMES else default

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (includes ``total_tokens``)."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_usd,
            "calls": self.calls,
            "estimated": self.estimated,
            "total_tokens": self.input_tokens + self.output_tokens,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        get = data.get
        return cls(
            get("input_tokens", 0),
            get("output_tokens", 0),
            get("cached_input_tokens", 0),
            get("cache_write_tokens", 0),
            get("reasoning_tokens", 0),
            get("cost_usd", 0.0),
            get("calls", 0),
            get("estimated", False),
        )


_FIELD_NAMES = frozenset(f.name for f in fields(Usage))
_NUMBER_FIELDS = tuple(f.name for f in fields(Usage) if f.name != "estimated")


def _possible(value: object) -> bool:
    """True for a number that can be a count or a cost: finite and not negative."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 0 and (isinstance(value, int) or math.isfinite(value))


class UsageReader:
    """Reads the numbers of one usage report a vendor (or a user's client) sent.

    A value that is not a number is missing; a number that cannot be a count or a cost
    (negative, NaN, infinite) is read as missing too, so the caller estimates it as it
    does a count the vendor left out, and is kept in :attr:`rejected` (``"prompt_tokens=-5"``)
    so that the run can say, in a warning event and the log, what it did not believe.
    """

    __slots__ = ("rejected",)

    def __init__(self) -> None:
        self.rejected: list[str] = []

    def count(self, source: object, name: str, where: str = "") -> int | None:
        """``source[name]`` (or ``source.name``) as a token count, or None."""
        value = self._number(source, name, where)
        return None if value is None else int(value)

    def cost(self, source: object, name: str, where: str = "") -> float | None:
        """``source[name]`` (or ``source.name``) as a cost in USD, or None."""
        value = self._number(source, name, where)
        return None if value is None else float(value)

    def _number(self, source: object, name: str, where: str) -> int | float | None:
        value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if not _possible(value):
            self.rejected.append(f"{where}{name}={value!r}")
            return None
        return value
