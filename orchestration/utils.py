"""Small helpers the seed README's users import: progress, cost, formatting, lists."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import BudgetExceededError, redact

__all__ = [
    "CostTracker",
    "ProgressTracker",
    "RedactSecretsFilter",
    "calculate_progress",
    "chunk_list",
    "deduplicate_by_key",
    "format_cost",
    "format_duration",
    "install_redaction",
    "format_usd",
]

T = TypeVar("T")


def calculate_progress(completed: int, total: int) -> float:
    """Percentage of ``completed`` out of ``total`` (0-100; 100 when there is nothing to do)."""
    if total <= 0:
        return 100.0
    return max(0.0, min(100.0, 100.0 * completed / total))


def format_duration(seconds: float) -> str:
    """``0.25`` -> ``'250ms'``, ``5.2`` -> ``'5.2s'``, ``125`` -> ``'2m 5s'``, ``3725`` -> ``'1h 2m 5s'``."""
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s"


def format_cost(cost: float) -> str:
    """USD with enough precision for small LLM bills: ``$0.0042``, ``$1.25``."""
    if 0 < abs(cost) < 0.0001:
        return f"${cost:.6f}"  # sub-cent model calls still show what they cost
    if abs(cost) < 1:
        return f"${cost:.4f}"
    return f"${cost:,.2f}"


def format_usd(value: float, *, up: bool = False) -> str:
    """USD so that no non-zero amount reads as zero: the one formatter of every cost users
    see (reports, the CLI's tables and status lines, budget messages).

    ``0`` -> ``'$0'``; from $100 two decimals with thousands separators (``'$1,234.50'``);
    from a cent four decimals (``'$0.0123'``, ``'$1.5000'``); below a cent two significant
    digits (``'$0.0000031'``, ``'$0.00025'``).  ``up`` rounds up at the precision shown
    (for "a budget of at least ..." to be enough).
    """
    if not math.isfinite(value):
        return f"${value}"
    if value == 0:
        return "$0"
    sign, size = ("-" if value < 0 else ""), abs(value)
    decimals = _usd_decimals(size)
    if up:
        scale = 10**decimals
        size = math.ceil(size * scale - 1e-9) / scale
        decimals = _usd_decimals(size)
    grouping = "," if decimals == 2 else ""
    return f"{sign}${size:{grouping}.{decimals}f}"


def _usd_decimals(size: float) -> int:
    if round(size, 2) >= 100:
        return 2
    if round(size, 4) >= 0.01:
        return 4
    exponent = int(f"{size:.1e}".split("e")[1])  # after rounding: 9.96e-6 is 1.0e-05
    return max(1 - exponent, 0)


def chunk_list(items: Sequence[T], size: int) -> list[list[T]]:
    """Split ``items`` into lists of ``size`` (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def deduplicate_by_key(items: Iterable[T], key: str | Callable[[T], Hashable]) -> list[T]:
    """Keep the first item for each key; ``key`` is a dict key/attribute name or a function."""
    seen: set[Hashable] = set()
    unique: list[T] = []
    for item in items:
        if callable(key):
            value = key(item)
        elif isinstance(item, Mapping):
            value = item.get(key)
        else:
            value = getattr(item, key, None)
        if value in seen:
            continue
        seen.add(value)
        unique.append(item)
    return unique


class RedactSecretsFilter(logging.Filter):
    """A logging filter that masks secrets (see :func:`~orchestration.errors.redact`) in a
    record's message and string arguments: URL userinfo, credential query parameters
    (percent-encoded names too) and API-key-shaped strings.  Always keeps the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted_arg(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _redacted_arg(value) for key, value in record.args.items()}
        return True


def _redacted_arg(value: object) -> object:
    # Non-strings whose text may hold a URL (httpx.URL, exceptions) are rendered and redacted;
    # numbers stay numbers so %d and %.2f formats keep working.
    if isinstance(value, (int, float)) or value is None:
        return value
    return redact(value if isinstance(value, str) else str(value))


def install_redaction(*logger_names: str) -> None:
    """Attach one :class:`RedactSecretsFilter` to each named logger (idempotent).

    A filter on a logger sees the records logged to that logger itself, which is where
    libraries such as httpx (``"httpx"``) write request URLs.
    """
    for name in logger_names:
        target = logging.getLogger(name)
        if not any(isinstance(existing, RedactSecretsFilter) for existing in target.filters):
            target.addFilter(RedactSecretsFilter())


@dataclass
class ProgressTracker:
    """Counts finished tasks out of a total: ``tracker.update(completed=3); tracker.percentage``."""

    total_tasks: int
    completed: int = 0
    failed: int = 0

    def update(self, completed: int | None = None, failed: int | None = None) -> None:
        """Set the counts (absolute values, as the seed README uses them)."""
        if completed is not None:
            self.completed = completed
        if failed is not None:
            self.failed = failed

    def increment(self, *, failed: bool = False) -> None:
        """Count one more finished task."""
        if failed:
            self.failed += 1
        else:
            self.completed += 1

    @property
    def percentage(self) -> float:
        """Finished (completed or failed) as a percentage of the total."""
        return calculate_progress(self.completed + self.failed, self.total_tasks)

    @property
    def is_complete(self) -> bool:
        """True when every task finished."""
        return self.completed + self.failed >= self.total_tasks


@dataclass
class CostTracker:
    """Adds up costs per model, warns past ``warning_threshold`` and refuses past ``max_cost``.

    ``add_cost`` raises :class:`BudgetExceededError` (and records nothing) when the cost
    would exceed ``max_cost``; ``warnings`` lists the threshold crossings.
    """

    max_cost: float | None = None
    warning_threshold: float | None = None
    total_cost: float = 0.0
    by_model: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    on_warning: Callable[[str], Any] | None = None

    def add_cost(self, cost: float, model: str | None = None) -> float:
        """Record ``cost`` USD (for ``model``); returns the new total."""
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost}")
        new_total = self.total_cost + cost
        if self.max_cost is not None and new_total > self.max_cost + 1e-12:
            raise BudgetExceededError(
                f"adding ${cost:.4f} would exceed the cap of ${self.max_cost:.4f} "
                f"(spent ${self.total_cost:.4f})",
                cap=self.max_cost,
                spent=self.total_cost,
                requested=cost,
            )
        crossed = self.warning_threshold is not None and self.total_cost < self.warning_threshold <= new_total
        self.total_cost = new_total
        key = model or "unknown"
        self.by_model[key] = self.by_model.get(key, 0.0) + cost
        if crossed:
            threshold = format_cost(self.warning_threshold or 0)
            message = f"cost {format_cost(new_total)} passed the warning threshold {threshold}"
            self.warnings.append(message)
            if self.on_warning is not None:
                self.on_warning(message)
        return new_total

    @property
    def remaining(self) -> float | None:
        """USD left under ``max_cost`` (None without a cap)."""
        return None if self.max_cost is None else max(0.0, self.max_cost - self.total_cost)
