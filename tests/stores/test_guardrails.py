"""Guardrail policies: the condition grammar, the policy file, and the pure decisions."""

from __future__ import annotations

import builtins
import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest

from orchestration._guardrail_grammar import parse_condition
from orchestration.errors import ConfigError
from orchestration.guardrails import (
    CallStats,
    Decision,
    GuardrailLedger,
    GuardrailPolicy,
    Guardrails,
    RunTotals,
    load_policies,
)

SEED_EXAMPLE = """\
policies:
  - name: cost cap
    when: sum(cost_usd) > 5.00
    action: abort_run
  - name: loop cap
    when: iterations > 10
    action: pause_run
  - name: big call
    when: tokens_used > 4000
    scope: execution
    action: reject_execution
"""


def holds(condition: str, **values: float) -> bool | None:
    """Evaluate ``condition`` at run scope with the given totals."""
    policy = GuardrailPolicy("p", condition, "abort_run")
    decision = Guardrails([policy]).check_after_call(RunTotals(**values), CallStats())  # type: ignore[arg-type]
    return decision is not None


def policy(when: str, action: str = "abort_run", scope: str = "run", name: str = "p") -> GuardrailPolicy:
    return GuardrailPolicy(name, when, action, scope)  # type: ignore[arg-type]


# -- the grammar ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (
            "calls > 1 or iterations > 2 and agents_failed > 0",
            "calls > 1 or (iterations > 2 and agents_failed > 0)",
        ),
        (
            "(calls > 1 or iterations > 2) and agents_failed > 0",
            "(calls > 1 or iterations > 2) and agents_failed > 0",
        ),
        ("not calls > 1 and iterations > 2", "not calls > 1 and iterations > 2"),
        ("sum(cost_usd)>=5 AND max(latency_ms)!=0", "sum(cost_usd) >= 5 and max(latency_ms) != 0"),
        ("count() == 3", "count() == 3"),
        ("tokens_used > 10_000", "tokens_used > 10000"),
        ("sum(tokens_used) > 10 000", "sum(tokens_used) > 10000"),  # the seed's notation
        ("cost_usd > 1 000 000.25", "cost_usd > 1000000.25"),
        ("wall_time_s < 2.5e3 or cost_usd <= .5", "wall_time_s < 2500 or cost_usd <= 0.5"),
        ("((calls > 1))", "calls > 1"),
    ],
)
def test_conditions_parse_with_precedence(text: str, canonical: str) -> None:
    assert str(parse_condition(text)) == canonical


def test_precedence_is_evaluated_right() -> None:
    # `and` binds tighter than `or`: True or (True and False)
    assert holds("calls > 5 or calls > 1 and calls < 0", calls=10)
    assert not holds("(calls > 5 or calls > 1) and calls < 0", calls=10)
    # `not` binds tighter than `and`: (not False) and False
    assert not holds("not calls > 5 and iterations > 1", calls=1, iterations=0)
    assert holds("not (calls > 5 and iterations > 1)", calls=1, iterations=0)
    assert holds("not not calls == 1", calls=1)


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("cost > 5", "unknown identifier 'cost'", 1),
        ("__import__('os').system('x')", "unknown identifier|unexpected character", None),
        ("calls = 5", "use ==", 7),
        ("calls > 5 and", "ends too soon", 14),
        ("(calls > 5", "expected '\\)'", 11),
        ("calls > 5)", "unexpected '\\)'", 10),
        ("", "empty condition", 1),
        ("1 < calls < 5", "chained comparisons", 11),
        ("calls and iterations > 1", "needs a comparison", 1),
        ("calls", "is a number, not a condition", 1),
        ("calls > (iterations > 1)", "cannot compare a condition", 9),
        ("count(calls) > 1", "count\\(\\) takes no argument", 7),
        ("sum() > 1", "takes one metric", 5),
        ("sum(bogus) > 1", "takes one metric", 5),
        ("cost_usd(1) > 1", "not a function", 9),
        ("calls > and", "got 'and'", 9),
        ("calls > 1; import os", "unexpected character ';'", 10),
        ("calls > 1 0000", "unexpected '0000'", 11),
        ("cost_usd > 1e999", "the number 1e999 is too large", 12),
        ("calls < " + "9" * 400, "is too large", 9),
        ("calls.__class__ > 1", "unexpected character '.'", 6),
        ("(" * 60 + "calls > 1" + ")" * 60, "nests deeper", None),
        ("calls > 1 or " * 300 + "calls > 1", "longer than", 1),
    ],
)
def test_malformed_conditions_are_config_errors_with_a_column(
    text: str, message: str, column: int | None
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        policy(text)
    if column is not None:
        assert f"column {column}:" in str(caught.value)


def test_conditions_are_never_evaluated_by_python(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("eval/exec/compile must not be used")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    guardrails = Guardrails(load_policies(SEED_EXAMPLE))
    assert guardrails.check_before_call(RunTotals(cost_usd=6.0)) is not None
    with pytest.raises(ConfigError):
        policy("__import__('os').system('touch /tmp/pwned')")


# -- the policy file ------------------------------------------------------------------------------


def test_the_seed_example_loads() -> None:
    policies = load_policies(SEED_EXAMPLE)
    assert [(p.name, p.action, p.scope) for p in policies] == [
        ("cost cap", "abort_run", "run"),
        ("loop cap", "pause_run", "run"),
        ("big call", "reject_execution", "execution"),
    ]
    assert [p.line for p in policies] == [2, 5, 8]
    with pytest.raises(dataclasses.FrozenInstanceError):
        policies[0].action = "pause_run"  # type: ignore[misc]


def test_policies_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "guardrails.yaml"
    path.write_text(SEED_EXAMPLE, encoding="utf-8")
    assert len(load_policies(path)) == 3
    assert len(load_policies(str(path))) == 3
    assert len(Guardrails.load(path)) == 3
    with pytest.raises(ConfigError, match="cannot read"):
        load_policies(tmp_path / "missing.yaml")


def test_other_accepted_shapes() -> None:
    listed = load_policies("- {name: a, when: calls > 1, action: ABORT_LIFETIME, scope: label:team}")
    assert (listed[0].action, listed[0].scope, listed[0].label) == ("abort_run", "label:team", "team")
    assert load_policies("") == []
    assert load_policies("policies:\n") == []
    quoted = load_policies('policies:\n  - name: q\n    when: "calls >= 2"\n    action: pause_lifetime\n')
    assert quoted[0].action == "pause_run"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML errors: yaml's own mark
        (
            "policies:\n  - name: a\n    when: [calls > 1\n    action: abort_run\n",
            "line 4, column 11: invalid YAML",
        ),
        ("policies:\n  - name: a\n   when: x\n", "line 3, column 4: invalid YAML"),
        # expression errors: the line of `when:` and the column in the file
        (
            "policies:\n  - name: a\n    when: cost > 5\n    action: abort_run\n",
            "line 3, column 11: policy 'a': unknown",
        ),
        ("policies:\n  - name: a\n    when: 'calls > 1 or'\n    action: abort_run\n", "line 3, column 24:"),
        (
            "policies:\n  - name: a\n    when: >\n      calls >\n    action: abort_run\n",
            "line 3, column 8 of the condition",
        ),
        # structure errors: the line and column of the offending node
        ("policies:\n  - name: a\n    when: calls > 1\n", "line 2: the policy has no 'action'"),
        (
            "policies:\n  - name: a\n    when: calls > 1\n    action: explode\n",
            "line 4, column 13: policy 'a': unknown action",
        ),
        (
            "policies:\n  - name: a\n    when: calls > 1\n    action: abort_run\n    scope: galaxy\n",
            "line 5, column 12: policy 'a': unknown scope",
        ),
        (
            "policies:\n  - name: a\n    when: calls > 1\n    action: abort_run\n    colour: red\n",
            "line 5, column 5: unknown policy key 'colour'",
        ),
        ("polices:\n  - name: a\n", "line 1, column 1: unknown key 'polices'"),
        ("policies: 5\n", "line 1, column 11: 'policies' must be a list"),
        ("policies:\n  - just a string\n", "line 2, column 5: a policy is a mapping"),
        (
            "policies:\n  - name: a\n    when: [1]\n    action: abort_run\n",
            "line 3, column 11: 'when' must be a single value",
        ),
        (
            "policies:\n  - {name: a, when: calls > 1, action: abort_run}\n  - {name: a, when: calls > 2, action: abort_run}\n",
            "line 3: policy name 'a' is already used on line 2",
        ),
        (
            "policies:\n  - name: !!python/name:os.system x\n    when: calls > 1\n    action: abort_run\n",
            "unsupported YAML tag",
        ),
    ],
)
def test_malformed_policy_files_say_where(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_policies(text)
    assert expected in str(caught.value)


def test_programmatic_policies_are_validated() -> None:
    with pytest.raises(ConfigError, match="unknown action"):
        policy("calls > 1", action="explode")
    with pytest.raises(ConfigError, match="unknown scope"):
        policy("calls > 1", scope="everywhere")
    with pytest.raises(ConfigError, match="unique"):
        Guardrails([policy("calls > 1"), policy("calls > 2")])


# -- decisions ------------------------------------------------------------------------------------


def test_run_scope_abort_before_and_after_calls() -> None:
    guardrails = Guardrails(load_policies(SEED_EXAMPLE))
    assert guardrails.check_before_call(RunTotals(cost_usd=4.0)) is None
    assert (
        guardrails.check_before_call(RunTotals(cost_usd=4.0), CallStats(cost_usd=0.5, tokens_used=100))
        is None
    )
    decision = guardrails.check_before_call(RunTotals(cost_usd=4.9), CallStats(cost_usd=0.2, tokens_used=100))
    assert decision is not None
    assert (decision.action, decision.policy, decision.stage) == ("abort_run", "cost cap", "before_call")
    assert "cost cap" in decision.reason and "sum(cost_usd) = 5.1" in decision.reason
    after = RunTotals(cost_usd=5.3, calls=3)
    decision = guardrails.check_after_call(after, CallStats(cost_usd=0.4))
    assert decision is not None and decision.action == "abort_run" and decision.stage == "after_call"
    assert decision.values == {"sum(cost_usd)": pytest.approx(5.3)}
    assert "5.3" in decision.reason
    assert json.loads(json.dumps(decision.to_dict()))["policy"] == "cost cap"


def test_iterations_pause_the_run() -> None:
    guardrails = Guardrails(load_policies(SEED_EXAMPLE))
    assert guardrails.check_before_call(RunTotals(iterations=10)) is None
    decision = guardrails.check_before_call(RunTotals(iterations=11))
    assert decision is not None and decision.action == "pause_run" and "iterations = 11" in decision.reason


def test_execution_scope_rejects_one_call() -> None:
    guardrails = Guardrails(load_policies(SEED_EXAMPLE))
    small, big = CallStats(tokens_used=300), CallStats(tokens_used=5000, cost_usd=0.01)
    assert guardrails.check_before_call(RunTotals(), small) is None
    decision = guardrails.check_before_call(RunTotals(), big)
    assert decision is not None and (decision.action, decision.scope) == ("reject_execution", "execution")
    assert "tokens_used = 5000" in decision.reason
    decision = guardrails.check_after_call(RunTotals().with_call(big), big)
    assert decision is not None and decision.action == "reject_execution"
    # the run's total tokens are not the execution's: many small calls never trip it
    many = RunTotals(tokens_used=50_000, calls=100)
    assert guardrails.check_after_call(many, small) is None


def test_latency_is_judged_after_the_call() -> None:
    guardrails = Guardrails([policy("latency_ms > 2000", "reject_execution", "execution")])
    assert guardrails.check_before_call(RunTotals(), CallStats(tokens_used=10)) is None  # unknown yet
    slow = CallStats(latency_ms=2500)
    decision = guardrails.check_after_call(RunTotals().with_call(slow), slow)
    assert decision is not None and "latency_ms = 2500" in decision.reason


def test_run_scope_aggregates_and_wall_time() -> None:
    totals = RunTotals()
    for latency in (100, 900, 300):
        totals = totals.with_call(CallStats(cost_usd=0.1, tokens_used=10, latency_ms=latency))
    assert totals.calls == 3 and totals.latency_ms == 1300 and totals.max_call.latency_ms == 900
    assert holds("max(latency_ms) >= 900 and count() == 3", **_fields(totals))
    assert not holds("max(latency_ms) > 900", **_fields(totals))
    assert holds("latency_ms == 1300 and sum(tokens_used) == 30", **_fields(totals))
    guardrails = Guardrails([policy("wall_time_s > 600", "pause_run")])
    assert guardrails.check_before_call(RunTotals(wall_time_s=599)) is None
    assert guardrails.check_before_call(RunTotals(wall_time_s=601)) is not None
    failed = Guardrails([policy("agents_failed >= 3")])
    assert failed.check_before_call(RunTotals(agents_failed=3)) is not None


def _fields(totals: RunTotals) -> dict[str, Any]:
    return {f.name: getattr(totals, f.name) for f in dataclasses.fields(totals)}


def test_call_count_cap_allows_exactly_the_limit() -> None:
    guardrails = Guardrails([policy("calls > 3")])
    totals, made = RunTotals(), 0
    while guardrails.check_before_call(totals, CallStats()) is None:
        totals, made = totals.with_call(CallStats()), made + 1
    assert made == 3


def test_tenant_scope_aggregates_runs_through_a_shared_ledger() -> None:
    ledger = GuardrailLedger()
    cap = [policy("sum(cost_usd) > 5", "abort_run", "tenant", name="tenant cap")]
    first, second = Guardrails(cap, ledger), Guardrails(cap, ledger)
    run_a = RunTotals(cost_usd=3.0, calls=2, run_id="a", labels={"tenant": "acme"})
    first.observe(run_a)
    first.observe(run_a)  # the latest totals replace earlier ones: counted once
    assert ledger.totals("tenant", "acme")["cost_usd"] == 3.0
    run_b = RunTotals(cost_usd=1.5, run_id="b", labels={"tenant": "acme"})
    assert second.check_before_call(run_b) is None
    decision = second.check_before_call(run_b, CallStats(cost_usd=1.0))
    assert decision is not None and decision.scope == "tenant" and "'acme'" in decision.reason
    other_tenant = RunTotals(cost_usd=4.9, run_id="c", labels={"tenant": "globex"})
    assert second.check_before_call(other_tenant, CallStats(cost_usd=0.05)) is None
    unlabelled = RunTotals(cost_usd=100.0, run_id="d")
    assert second.check_before_call(unlabelled) is None  # tenant policies need a tenant
    ledger.forget("a")
    assert second.check_before_call(run_b, CallStats(cost_usd=1.0)) is None


def test_user_and_custom_label_scopes() -> None:
    guardrails = Guardrails(
        [
            policy("count() >= 4", "pause_run", "user", name="user calls"),
            policy("max(latency_ms) > 1000", "reject_execution", "label:team", name="team latency"),
        ]
    )
    slow = CallStats(latency_ms=1500)
    guardrails.observe(RunTotals(calls=3, run_id="x", labels={"user": "ann", "team": "red"}).with_call(slow))
    mine = RunTotals(run_id="y", labels={"user": "ann", "team": "blue"})
    decision = guardrails.check_before_call(mine)
    assert decision is not None and decision.policy == "user calls"
    red = RunTotals(run_id="z", labels={"user": "bob", "team": "red"})
    decision = guardrails.check_before_call(red)
    assert decision is not None and decision.policy == "team latency"


def test_checks_are_pure() -> None:
    ledger = GuardrailLedger()
    guardrails = Guardrails([policy("cost_usd > 1", scope="tenant")], ledger)
    totals = RunTotals(cost_usd=2.0, run_id="a", labels={"tenant": "t"})
    first = guardrails.check_after_call(totals, CallStats(cost_usd=2.0))
    second = guardrails.check_after_call(totals, CallStats(cost_usd=2.0))
    assert first == second and first is not None
    assert ledger.totals("tenant", "t")["cost_usd"] == 0.0  # only observe() records


def test_the_most_severe_decision_wins_then_the_first() -> None:
    guardrails = Guardrails(
        [
            policy("calls > 0", "reject_execution", name="r"),
            policy("calls > 0", "pause_run", name="p1"),
            policy("calls > 0", "abort_run", name="a1"),
            policy("calls > 0", "abort_run", name="a2"),
        ]
    )
    decision = guardrails.check_before_call(RunTotals(calls=1))
    assert isinstance(decision, Decision) and decision.policy == "a1"


@pytest.mark.parametrize("trial", range(20))
def test_concurrent_calls_under_a_cost_cap_never_exceed_it(trial: int) -> None:
    """500 calls, many in flight at once, admitted against totals that include reservations."""
    rng = random.Random(trial)
    cap = 5.0
    guardrails = Guardrails([policy(f"sum(cost_usd) > {cap}", "reject_execution", name="cap")])
    spent, reserved = 0.0, 0.0
    in_flight: list[float] = []
    pending = [rng.uniform(0.001, 0.05) for _ in range(500)]  # each call's worst case
    while pending or in_flight:
        if pending and (not in_flight or rng.random() < 0.7):
            worst = pending.pop()
            totals = RunTotals(cost_usd=spent + reserved, calls=len(in_flight))
            if guardrails.check_before_call(totals, CallStats(cost_usd=worst)) is None:
                reserved += worst
                in_flight.append(worst)
        else:
            worst = in_flight.pop(rng.randrange(len(in_flight)))
            reserved -= worst
            spent += worst * rng.uniform(0.2, 1.0)  # settles at or below its reservation
        assert spent + reserved <= cap + 1e-9
    assert spent <= cap
