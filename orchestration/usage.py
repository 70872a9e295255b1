"""Token usage and its cost in USD."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["Usage"]


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
