"""What guardrails measure: one call's numbers, a run's totals, and totals per run label."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ._guardrail_grammar import CALL_METRICS, METRICS, RUN_METRICS, Metric
from .errors import OrchestrationError

__all__ = ["CallStats", "GuardrailLedger", "RunTotals", "View", "call_scope_view", "run_scope_view"]


@dataclass(frozen=True, slots=True)
class CallStats:
    """One model call's numbers (or, before the call, its worst-case prediction)."""

    cost_usd: float = 0.0
    tokens_used: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0

    def largest(self, other: CallStats) -> CallStats:
        """Each metric's larger value of the two."""
        return CallStats(*(max(getattr(self, name), getattr(other, name)) for name in CALL_METRICS))


@dataclass(frozen=True, slots=True)
class RunTotals:
    """What the guardrails see of a run: totals so far (call metrics summed over its calls).

    ``run_id`` is needed by label scopes (so a run counts once in its tenant's totals);
    ``latency_ms`` is the summed latency and ``max_call`` the largest value of each call
    metric over the run's calls.  :meth:`with_call` folds one call in.
    """

    cost_usd: float = 0.0
    tokens_used: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    iterations: int = 0
    agents_failed: int = 0
    wall_time_s: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    run_id: str = ""
    latency_ms: float = 0.0
    max_call: CallStats = CallStats()

    def with_call(self, call: CallStats) -> RunTotals:
        """The totals after ``call``."""
        return replace(
            self,
            cost_usd=self.cost_usd + call.cost_usd,
            tokens_used=self.tokens_used + call.tokens_used,
            input_tokens=self.input_tokens + call.input_tokens,
            output_tokens=self.output_tokens + call.output_tokens,
            latency_ms=self.latency_ms + call.latency_ms,
            calls=self.calls + 1,
            max_call=self.max_call.largest(call),
        )

    def sums(self) -> dict[str, float]:
        """Every metric's total (run metrics as they are)."""
        return {name: float(getattr(self, name)) for name in METRICS}

    def maxima(self) -> dict[str, float]:
        """Largest single call for call metrics, the value itself for run metrics."""
        values = {name: float(getattr(self.max_call, name)) for name in CALL_METRICS}
        values.update((name, float(getattr(self, name))) for name in RUN_METRICS)
        return values


@dataclass(slots=True)
class View:
    """The numbers one policy sees in its scope; ``unknown`` metrics are not known yet."""

    sums: Mapping[str, float]
    maxes: Mapping[str, float]
    count: float
    unknown: frozenset[str] = frozenset()

    def lookup(self, metric: Metric) -> float | None:
        """The metric's value here, or None if unknown."""
        if metric.aggregate == "count":
            return self.count
        if metric.name in self.unknown:
            return None
        return (self.maxes if metric.aggregate == "max" else self.sums)[metric.name]


def run_scope_view(totals: RunTotals, unknown: frozenset[str] = frozenset()) -> View:
    """What a run-scoped policy sees."""
    return View(totals.sums(), totals.maxima(), totals.calls, unknown)


def call_scope_view(call: CallStats, totals: RunTotals, unknown: frozenset[str] = frozenset()) -> View:
    """What an execution-scoped policy sees (run metrics are the run's)."""
    values = {name: float(getattr(call, name)) for name in CALL_METRICS}
    values.update((name, float(getattr(totals, name))) for name in RUN_METRICS)
    return View(values, values, 1.0, unknown)


class GuardrailLedger:
    """Totals per run label value (e.g. per tenant) over the runs observed in this process.

    The engine passes one ledger to every :class:`Guardrails` that should share tenant
    totals and calls :meth:`Guardrails.observe` with each run's latest totals (including
    in-flight reservations, for caps that hold under concurrency).  Not thread-safe: use
    it from one event loop.
    """

    def __init__(self) -> None:
        self._runs: dict[str, RunTotals] = {}
        self._sums: dict[tuple[str, str], dict[str, float]] = {}
        self._maxes: dict[tuple[str, str], dict[str, float]] = {}

    def observe(self, totals: RunTotals) -> None:
        """Record ``totals`` as the latest of run ``totals.run_id`` (replacing earlier ones)."""
        if not totals.run_id:
            raise OrchestrationError("GuardrailLedger.observe needs RunTotals with a run_id")
        old = self._runs.get(totals.run_id)
        self._runs[totals.run_id] = totals
        if old is not None and old.labels != totals.labels:
            self._rebuild()
            return
        old_sums = old.sums() if old is not None else dict.fromkeys(METRICS, 0.0)
        new_sums, new_maxes = totals.sums(), totals.maxima()
        for key in totals.labels.items():
            sums = self._sums.setdefault(key, dict.fromkeys(METRICS, 0.0))
            maxes = self._maxes.setdefault(key, dict.fromkeys(METRICS, 0.0))
            for name in METRICS:
                sums[name] += new_sums[name] - old_sums[name]
                maxes[name] = max(maxes[name], new_maxes[name])

    def forget(self, run_id: str) -> None:
        """Drop a run from the label totals."""
        if self._runs.pop(run_id, None) is not None:
            self._rebuild()

    def totals(self, label: str, value: str) -> dict[str, float]:
        """The summed metrics of every observed run with ``labels[label] == value``."""
        return dict(self._sums.get((label, value), dict.fromkeys(METRICS, 0.0)))

    def _rebuild(self) -> None:
        runs = list(self._runs.values())
        self._runs, self._sums, self._maxes = {}, {}, {}
        for totals in runs:
            self.observe(totals)

    def view(self, label: str, value: str, current: RunTotals, unknown: frozenset[str] = frozenset()) -> View:
        """The label's totals with ``current`` standing in for that run's last observation."""
        key = (label, value)
        sums = dict(self._sums.get(key, dict.fromkeys(METRICS, 0.0)))
        maxes = dict(self._maxes.get(key, dict.fromkeys(METRICS, 0.0)))
        previous = self._runs.get(current.run_id) if current.run_id else None
        previous_sums = (
            previous.sums() if previous is not None and previous.labels.get(label) == value else {}
        )
        current_sums, current_maxes = current.sums(), current.maxima()
        for name in METRICS:
            sums[name] += current_sums[name] - previous_sums.get(name, 0.0)
            maxes[name] = max(maxes[name], current_maxes[name])
        return View(sums, maxes, sums["calls"], unknown)
