"""Model prices in USD per million tokens.

The built-in table is dated (:data:`PRICES_AS_OF`); vendors change prices, so users
override or extend it: ``PriceTable({"my-model": ModelPrice(1.0, 2.0)})`` or
``table.with_prices(...)``.  Models are matched by exact id, then by the longest known
prefix (so dated ids such as ``gpt-4o-mini-2024-07-18`` find ``gpt-4o-mini``); a
``provider:`` prefix is ignored.  A model with no price costs 0 and is reported as
unpriced, never silently guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .usage import Usage

__all__ = ["DEFAULT_PRICES", "PRICES_AS_OF", "ModelPrice", "PriceTable"]

PRICES_AS_OF = "2026-11-01"


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens: input, output, cached input reads, cache writes."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None

    def cost(self, usage: Usage) -> float:
        """What ``usage`` costs at these prices (cached tokens at their own price)."""
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        written = min(usage.cache_write_tokens, usage.input_tokens - cached)
        fresh = usage.input_tokens - cached - written
        cached_price = self.input if self.cached_input is None else self.cached_input
        write_price = self.input if self.cache_write is None else self.cache_write
        return (
            fresh * self.input
            + cached * cached_price
            + written * write_price
            + usage.output_tokens * self.output
        ) / 1_000_000


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    # OpenAI
    "gpt-5": ModelPrice(1.25, 10.0, 0.125),
    "gpt-5-mini": ModelPrice(0.25, 2.0, 0.025),
    "gpt-5-nano": ModelPrice(0.05, 0.40, 0.005),
    "gpt-4.1": ModelPrice(2.0, 8.0, 0.50),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60, 0.10),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40, 0.025),
    "gpt-4o": ModelPrice(2.50, 10.0, 1.25),
    "gpt-4o-mini": ModelPrice(0.15, 0.60, 0.075),
    "gpt-4-turbo": ModelPrice(10.0, 30.0),
    "gpt-4": ModelPrice(30.0, 60.0),
    "gpt-3.5-turbo": ModelPrice(0.50, 1.50),
    "o1": ModelPrice(15.0, 60.0, 7.50),
    "o3": ModelPrice(2.0, 8.0, 0.50),
    "o3-mini": ModelPrice(1.10, 4.40, 0.55),
    "o4-mini": ModelPrice(1.10, 4.40, 0.275),
    # Anthropic (cache writes at 1.25x input, reads at 0.1x)
    "claude-opus-4-1": ModelPrice(15.0, 75.0, 1.50, 18.75),
    "claude-opus-4": ModelPrice(15.0, 75.0, 1.50, 18.75),
    "claude-sonnet-4-5": ModelPrice(3.0, 15.0, 0.30, 3.75),
    "claude-sonnet-4": ModelPrice(3.0, 15.0, 0.30, 3.75),
    "claude-haiku-4-5": ModelPrice(1.0, 5.0, 0.10, 1.25),
    "claude-3-7-sonnet": ModelPrice(3.0, 15.0, 0.30, 3.75),
    "claude-3-5-sonnet": ModelPrice(3.0, 15.0, 0.30, 3.75),
    "claude-3-5-haiku": ModelPrice(0.80, 4.0, 0.08, 1.0),
    "claude-3-opus": ModelPrice(15.0, 75.0, 1.50, 18.75),
    "claude-3-sonnet": ModelPrice(3.0, 15.0, 0.30, 3.75),
    "claude-3-haiku": ModelPrice(0.25, 1.25, 0.03, 0.30),
    # The offline ScriptedProvider bills like a small hosted model so demos show real arithmetic.
    "scripted": ModelPrice(0.15, 0.60, 0.075),
}


class PriceTable:
    """Looks up a model's price; an instance travels with an orchestrator (no globals)."""

    def __init__(
        self, prices: Mapping[str, ModelPrice] | None = None, *, include_defaults: bool = True
    ) -> None:
        merged: dict[str, ModelPrice] = dict(DEFAULT_PRICES) if include_defaults else {}
        merged.update(prices or {})
        self._prices = merged
        self._by_length = sorted(merged, key=len, reverse=True)

    def with_prices(self, prices: Mapping[str, ModelPrice]) -> PriceTable:
        """A new table with ``prices`` added or replaced."""
        return PriceTable({**self._prices, **prices}, include_defaults=False)

    def lookup(self, model: str | None) -> ModelPrice | None:
        """The price for ``model``, or None when it has none."""
        if not model:
            return None
        name = model.split(":", 1)[1] if ":" in model else model
        price = self._prices.get(name)
        if price is not None:
            return price
        for known in self._by_length:
            if name.startswith(known):
                return self._prices[known]
        return None

    def cost(self, model: str | None, usage: Usage) -> float | None:
        """USD for ``usage`` on ``model``, or None when the model has no price."""
        price = self.lookup(model)
        return None if price is None else price.cost(usage)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.lookup(model) is not None
