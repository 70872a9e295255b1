"""Conditions as text: the safe expression language a conditional accepts from the CLI or JSON."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestration import ConfigError, MemoryStore, TaskStatus
from orchestration.scripted import demo_provider
from patterns import ConditionalOrchestrator


def _branch(name: str) -> Any:
    def answer(task: str, context: dict[str, Any]) -> str:
        return name

    return answer


def choose(condition: str, context: dict[str, Any], task: str = "Assess the proposal") -> str | None:
    """The branch a text condition picks ("true"/"false"), or None when the run failed."""
    orchestrator = ConditionalOrchestrator(
        None,
        demo_provider(),
        condition=condition,
        true_branch=_branch("yes"),
        false_branch=_branch("no"),
        store=MemoryStore(),
    )
    result = asyncio.run(orchestrator.execute_workflow(task, context=context))
    if result.status is not TaskStatus.COMPLETED:
        return None
    return str(result.metadata["branch"])


@pytest.mark.parametrize(
    ("condition", "context", "branch"),
    [
        ("complexity > 0.7", {"complexity": 0.9}, "true"),
        ("complexity > 0.7", {"complexity": 0.7}, "false"),
        ("complexity >= 0.7 and not urgent", {"complexity": 0.7, "urgent": False}, "true"),
        ("a < 1 or b == 'x'", {"a": 5, "b": "x"}, "true"),
        ("not (a < 1 or b == 'x')", {"a": 5, "b": "x"}, "false"),
        ("'battery' in task", {}, "false"),
        ("'proposal' in task", {}, "true"),
        ("'vip' not in tags", {"tags": ["new", "vip"]}, "false"),
        ('user.tier == "gold"', {"user": {"tier": "gold"}}, "true"),
        ("limit != null", {"limit": None}, "false"),
        ("enabled", {"enabled": True}, "true"),
        ("count == -2", {"count": -2}, "true"),
        ("ratio < 1e-3", {"ratio": 0.0001}, "true"),
        ("'it\\'s' in note", {"note": "it's fine"}, "true"),
    ],
)
def test_a_text_condition_picks_the_branch(condition: str, context: dict[str, Any], branch: str) -> None:
    assert choose(condition, context) == branch


def test_an_evaluator_as_text_returns_a_branch_key() -> None:
    orchestrator = ConditionalOrchestrator(
        None,
        demo_provider(),
        branches={"deep": _branch("deep"), "quick": _branch("quick")},
        evaluator="depth",
        default="quick",
        store=MemoryStore(),
    )
    result = asyncio.run(orchestrator.execute_workflow("Assess", context={"depth": "deep"}))
    assert result.final_synthesis == "deep" and result.metadata["branch"] == "deep"


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("", "a condition must be a non-empty expression"),
        ("a >", "column 4: expected a context key, a number"),
        ("(a", "column 3: expected ')', found the end"),
        ("a b", "column 3: expected and, or, or the end of the condition, found 'b'"),
        ("open('x')", "column 5: expected and, or, or the end of the condition, found '('"),
        ("a.__class__ == 1 or x[0]", "unexpected '['"),
        ("(" * 50 + "a" + ")" * 50, "nested more than 40 levels"),
        ("a" * 2001, "at most 2000 characters"),
    ],
)
def test_a_bad_condition_is_a_config_error_at_construction(condition: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        ConditionalOrchestrator(
            None, demo_provider(), condition=condition, true_branch="a", false_branch="b", store=MemoryStore()
        )
    assert message in str(caught.value)


def test_a_missing_key_or_a_mixed_ordering_fails_the_run_with_the_reason() -> None:
    for condition, context, reason in (
        (
            "complexty > 0.7",
            {"complexity": 1},
            "no key 'complexty' in the context (its keys: complexity, run_id, task)",
        ),
        ("user.tier == 1", {"user": {}}, "no key 'user.tier' in user (its keys: )"),
        ("task > 3", {}, "cannot order 'Assess the proposal' > 3: compare numbers or strings"),
    ):
        orchestrator = ConditionalOrchestrator(
            None, demo_provider(), condition=condition, true_branch="a", false_branch="b", store=MemoryStore()
        )
        result = asyncio.run(orchestrator.execute_workflow("Assess the proposal", context=context))
        assert result.status is TaskStatus.FAILED and reason in str(result.error), result.error
