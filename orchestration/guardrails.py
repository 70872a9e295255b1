"""Guardrail policies: declarative YAML conditions on cost, tokens, latency, iterations, time.

A policy file (loaded with PyYAML's safe loader)::

    policies:
      - name: cost cap
        when: sum(cost_usd) > 5.00
        action: abort_run              # or pause_run (resumable), reject_execution
      - name: loop cap
        when: iterations > 10
        action: pause_run
      - name: big call
        when: tokens_used > 4000
        scope: execution               # one model call; default: run
        action: reject_execution
      - name: tenant budget
        when: sum(cost_usd) >= 100
        scope: tenant                  # every run labelled with the same tenant
        action: abort_run

Conditions use a small grammar (see :mod:`orchestration._guardrail_grammar`): metrics
``cost_usd tokens_used input_tokens output_tokens latency_ms iterations calls
wall_time_s agents_failed``, aggregates ``sum(x) max(x) count()``, comparisons, ``and``/
``or``/``not`` and parentheses.  Never ``eval``.

What a metric means depends on the scope.  ``execution``: the call's own numbers (run
metrics such as ``iterations`` are the run's).  ``run``: a bare call metric is the run's
total (``cost_usd`` = ``sum(cost_usd)``), ``max(x)`` the largest single call, ``count()``
the number of calls.  ``tenant``/``user``/``label:NAME``: the same, over every run in the
process carrying that label value (kept by a :class:`GuardrailLedger`).

:class:`Guardrails` only decides; the engine enforces, emits the events, and keeps the
totals.  Before a call, with the call's worst-case ``predicted`` numbers, a policy fires
if this call *could* make its condition true, so a cap is never crossed however many
calls run at once, provided the engine's totals include its in-flight reservations.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ._guardrail_grammar import Condition, parse_condition
from ._guardrail_policy_file import read_policy_file, scope_label, validate_action, validate_scope
from ._guardrail_totals import CallStats, GuardrailLedger, RunTotals, View, call_scope_view, run_scope_view
from .errors import ConfigError

__all__ = [
    "Action",
    "CallStats",
    "Decision",
    "GuardrailLedger",
    "GuardrailPolicy",
    "Guardrails",
    "RunTotals",
    "load_policies",
]

Action = Literal["reject_execution", "pause_run", "abort_run"]
_SEVERITY = {"reject_execution": 0, "pause_run": 1, "abort_run": 2}
_LATENCY_UNKNOWN = frozenset({"latency_ms"})


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy fired: what to do, which policy, and why (with the values that triggered it)."""

    action: Action
    policy: str
    reason: str
    scope: str = "run"
    stage: Literal["before_call", "after_call"] = "after_call"
    values: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the payload of a guardrail event)."""
        return {
            "action": self.action,
            "policy": self.policy,
            "reason": self.reason,
            "scope": self.scope,
            "stage": self.stage,
            "values": dict(self.values),
        }


@dataclass(frozen=True)
class GuardrailPolicy:
    """One policy: when ``when`` holds in ``scope``, take ``action``.

    Validated on construction (:class:`ConfigError` for an unknown action or scope or a
    malformed condition).  ``action`` accepts the seed's spellings too (``ABORT_LIFETIME``,
    ``pause_lifetime``...); ``scope`` is ``execution``, ``run`` (default), ``tenant``,
    ``user`` or ``label:NAME``.
    """

    name: str
    when: str
    action: Action
    scope: str = "run"
    description: str = ""
    line: int = field(default=0, compare=False)
    condition: Condition = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"guardrail {self.name!r}" + (f" (line {self.line})" if self.line else "")
        try:
            object.__setattr__(self, "action", validate_action(self.action))
            object.__setattr__(self, "scope", validate_scope(self.scope))
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from error
        try:
            object.__setattr__(self, "condition", parse_condition(str(self.when)))
        except ValueError as error:
            column = getattr(error, "column", 1)
            raise ConfigError(f"{where}: when: column {column}: {error}") from error

    @property
    def label(self) -> str | None:
        """The run label this policy aggregates over (``tenant``...), or None."""
        return scope_label(self.scope)


def load_policies(path_or_text: str | os.PathLike[str]) -> list[GuardrailPolicy]:
    """Policies from a YAML file path or YAML text.

    A ``Path`` is always read as a file; a string is YAML text when it has a line break or
    starts like YAML (``key:``, ``- ``, ``[``, ``{``, ``#``), else a file path.  Raises
    :class:`ConfigError` with the line and column of the problem.
    """
    return [
        GuardrailPolicy(
            name=spec.name,
            when=spec.when,
            action=spec.action,  # type: ignore[arg-type]  # validated by GuardrailPolicy
            scope=spec.scope,
            description=spec.description,
            line=spec.line,
        )
        for spec in read_policy_file(path_or_text)
    ]


class Guardrails:
    """A set of policies and the pure decisions the engine asks of them.

    Args:
        policies: the policies, in priority order (ties between equally severe decisions
            go to the earlier policy).
        ledger: shared label totals for ``tenant``/``user``/``label:`` scopes; by default
            one private to this object.
    """

    def __init__(self, policies: Iterable[GuardrailPolicy], ledger: GuardrailLedger | None = None) -> None:
        self.policies: tuple[GuardrailPolicy, ...] = tuple(policies)
        names = [policy.name for policy in self.policies]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"guardrail policy names must be unique: {', '.join(map(repr, duplicates))}")
        self.ledger = ledger if ledger is not None else GuardrailLedger()

    @classmethod
    def load(cls, path_or_text: str | Path, ledger: GuardrailLedger | None = None) -> Guardrails:
        """Guardrails from a policy file (see :func:`load_policies`)."""
        return cls(load_policies(path_or_text), ledger)

    def __len__(self) -> int:
        return len(self.policies)

    def __repr__(self) -> str:
        return f"Guardrails({[policy.name for policy in self.policies]!r})"

    def check_before_call(self, run_view: RunTotals, predicted: CallStats | None = None) -> Decision | None:
        """May the run make its next model call?  None if so, else the most severe decision.

        Run and label policies fire if already breached, or if ``predicted`` (the call's
        worst case: input tokens counted plus ``max_tokens``, priced) could breach them;
        execution policies are checked against ``predicted`` (latency is not known yet,
        so policies about latency wait for :meth:`check_after_call`).
        """
        projected = run_view.with_call(predicted) if predicted is not None else None
        decisions: list[Decision] = []
        for policy in self.policies:
            if policy.scope == "execution":
                if predicted is not None:
                    call = call_scope_view(predicted, run_view, _LATENCY_UNKNOWN)
                    self._fire(decisions, policy, call, "before_call", "worst case of this call", run_view)
                continue
            view_now = self._scope_view(policy, run_view)
            if view_now is None or self._fire(
                decisions, policy, view_now, "before_call", "already breached", run_view
            ):
                continue
            view = self._scope_view(policy, projected, _LATENCY_UNKNOWN) if projected is not None else None
            if view is not None:
                self._fire(decisions, policy, view, "before_call", "worst case if this call runs", run_view)
        return _most_severe(decisions)

    def check_after_call(self, run_view: RunTotals, call: CallStats) -> Decision | None:
        """After a call (``run_view`` already includes it): None, or the most severe decision."""
        decisions: list[Decision] = []
        for policy in self.policies:
            if policy.scope == "execution":
                view: View | None = call_scope_view(call, run_view)
            else:
                view = self._scope_view(policy, run_view)
            if view is not None:
                self._fire(decisions, policy, view, "after_call", "after this call", run_view)
        return _most_severe(decisions)

    def check_shared(
        self, run_view: RunTotals, labels: Mapping[str, RunTotals], predicted: CallStats | None = None
    ) -> Decision | None:
        """:meth:`check_before_call` for the label policies only, against label totals kept
        in a store: ``labels[label]`` is that label's totals over every run (in every process
        sharing the store), calls in flight included.  None if the call may go ahead."""
        decisions: list[Decision] = []
        for policy in self.policies:
            label = policy.label
            totals = labels.get(label) if label is not None else None
            if totals is None:
                continue
            if self._fire(
                decisions, policy, run_scope_view(totals), "before_call", "already breached", run_view
            ):
                continue
            if predicted is not None:
                view = run_scope_view(totals.with_call(predicted), _LATENCY_UNKNOWN)
                self._fire(decisions, policy, view, "before_call", "worst case if this call runs", run_view)
        return _most_severe(decisions)

    @property
    def labels(self) -> frozenset[str]:
        """The run labels some policy aggregates over (``tenant``...)."""
        return frozenset(policy.label for policy in self.policies if policy.label is not None)

    def observe(self, run_view: RunTotals) -> None:
        """Record a run's latest totals in the ledger (the only state the guardrails keep).

        Call it after every call (and, for label caps exact under concurrency, whenever
        a reservation is made or settled); runs without labels are not recorded.
        """
        if run_view.labels:
            self.ledger.observe(run_view)

    def _scope_view(
        self, policy: GuardrailPolicy, totals: RunTotals, unknown: frozenset[str] = frozenset()
    ) -> View | None:
        label = policy.label
        if label is None:
            return run_scope_view(totals, unknown)
        value = totals.labels.get(label)
        if value is None:
            return None  # the run has no such label: the policy does not apply to it
        return self.ledger.view(label, value, totals, unknown)

    @staticmethod
    def _fire(
        decisions: list[Decision],
        policy: GuardrailPolicy,
        view: View,
        stage: Literal["before_call", "after_call"],
        when: str,
        totals: RunTotals,
    ) -> bool:
        if not policy.condition.holds(view.lookup):
            return False
        values = {
            str(metric): value
            for metric in policy.condition.metrics
            if (value := view.lookup(metric)) is not None
        }
        shown = ", ".join(f"{name} = {value:.6g}" for name, value in values.items())
        label = policy.label
        where = f"{label} {totals.labels.get(label, '')!r}" if label else policy.scope
        reason = (
            f"guardrail {policy.name!r} ({where}: {policy.when.strip()}) -> {policy.action}: "
            f"{shown or 'condition holds'} ({when})"
        )
        decisions.append(Decision(policy.action, policy.name, reason, policy.scope, stage, values))
        return True


def _most_severe(decisions: list[Decision]) -> Decision | None:
    if not decisions:
        return None
    return max(decisions, key=lambda d: _SEVERITY[d.action])  # max keeps the first of equals
