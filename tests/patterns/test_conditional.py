"""Conditional: binary and multi-way choice, branch kinds, failures, cancellation, cost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestration import (
    ConfigError,
    EventType,
    OrchestratorConfig,
    TaskStatus,
)
from patterns import (
    ConditionalOrchestrator,
    DreamCascadeConfig,
    DreamCascadeOrchestrator,
    FanOutOrchestrator,
)

from .helpers import BillingProvider, Recorder, cancel_once_seen, check_bill, fail_when

TASK = "Assess the market for home batteries"


def should_deep_analyze(context: dict[str, Any]) -> bool:
    return context.get("complexity") > 0.7  # type: ignore[no-any-return,operator]


def make(provider: BillingProvider) -> ConditionalOrchestrator:
    deep = DreamCascadeOrchestrator(DreamCascadeConfig(belter_count=3, drummer_count=2), provider)
    return ConditionalOrchestrator(
        OrchestratorConfig(max_retries=0),
        provider,
        condition=should_deep_analyze,
        true_branch=deep,
        false_branch=["Answer in two sentences"],
    )


async def test_true_branch_runs_an_orchestrator_inside_the_run() -> None:
    provider = BillingProvider()
    recorder = Recorder()
    result = await make(provider).execute_workflow(
        TASK, context={"complexity": 0.9}, stream_callback=recorder
    )
    assert result.status is TaskStatus.COMPLETED, result.error
    [selected] = recorder.of(EventType.BRANCH_SELECTED)
    assert selected.data["branch"] == "true"
    assert selected.data["target"] == "DreamCascadeOrchestrator"
    assert selected.data["rule"] == "should_deep_analyze"
    assert result.metadata["branch"] == "true"
    assert result.synthesis_results[-1].metadata["branch"] == "true"
    assert [r.agent_id for r in result.agent_results] == [
        "agent_belter_1",
        "agent_belter_2",
        "agent_belter_3",
    ]
    assert [s.agent_id for s in result.synthesis_results] == ["drummer_1", "drummer_2", "camina_1"]
    assert provider.call_count == 1 + 3 + 2 + 1
    check_bill(result, recorder, provider)


async def test_false_branch_runs_a_list_of_steps() -> None:
    provider = BillingProvider()
    recorder = Recorder()
    result = await make(provider).execute_workflow(
        TASK, context={"complexity": 0.2}, stream_callback=recorder
    )
    assert result.status is TaskStatus.COMPLETED
    assert result.metadata["branch"] == "false"
    assert provider.call_count == 1
    assert provider.prompts()[0].startswith("Subtask: Answer in two sentences")
    assert result.final_synthesis == result.agent_results[0].content
    check_bill(result, recorder, provider)


async def test_raising_condition_fails_the_run_with_the_reason() -> None:
    provider = BillingProvider()
    result = await make(provider).execute_workflow(TASK)  # no complexity: None > 0.7 raises
    assert result.status is TaskStatus.FAILED
    assert "condition should_deep_analyze raised TypeError" in (result.error or "")
    assert provider.call_count == 0


async def test_multiway_with_evaluator_and_default() -> None:
    provider = BillingProvider()
    recorder = Recorder()

    async def pick(context: dict[str, Any]) -> str:
        return str(context.get("route"))

    async def quick(task: str, context: dict[str, Any]) -> str:
        return f"quick answer to {task} ({context['route']})"

    orchestrator = ConditionalOrchestrator(
        OrchestratorConfig(),
        provider,
        evaluator=pick,
        default="quick",
        branches={
            "fan": FanOutOrchestrator(OrchestratorConfig(), provider, subtasks=["a", "b"]),
            "quick": quick,
        },
    )
    fanned = await orchestrator.execute_workflow(TASK, context={"route": "fan"})
    assert fanned.metadata["branch"] == "fan"
    assert len(fanned.agent_results) == 2 and provider.call_count == 3
    quickly = await orchestrator.execute_workflow(TASK, context={"route": "quick"}, stream_callback=recorder)
    assert quickly.final_synthesis == f"quick answer to {TASK} (quick)"
    assert quickly.total_cost == 0 and provider.call_count == 3
    fallback = await orchestrator.execute_workflow(
        TASK, context={"route": "nowhere"}, stream_callback=recorder
    )
    assert fallback.metadata["branch"] == "quick"
    assert any("using the default" in e.data["message"] for e in recorder.of(EventType.WARNING))


async def test_unknown_key_without_default_fails() -> None:
    orchestrator = ConditionalOrchestrator(
        OrchestratorConfig(), BillingProvider(), branches={"a": lambda t, c: "A"}, evaluator=lambda c: "b"
    )
    result = await orchestrator.execute_workflow(TASK)
    assert result.status is TaskStatus.FAILED
    assert "returned 'b', which is not one of the branches ['a']" in (result.error or "")


async def test_callable_branch_returning_garbage_fails() -> None:
    orchestrator = ConditionalOrchestrator(
        OrchestratorConfig(max_retries=0),
        BillingProvider(),
        condition=lambda c: True,
        true_branch=lambda t, c: 42,
        false_branch="x",
    )
    result = await orchestrator.execute_workflow(TASK)
    assert result.status is TaskStatus.FAILED
    assert "returned int" in (result.error or "")


async def test_failure_inside_the_branch_is_partial() -> None:
    provider = BillingProvider(failures=fail_when("tier-1", "open problems"))
    result = await make(provider).execute_workflow(TASK, context={"complexity": 1.0})
    assert result.status is TaskStatus.PARTIAL
    assert result.metadata["branch"] == "true"
    assert result.final_synthesis


async def test_cancel_inside_the_branch() -> None:
    provider = BillingProvider(latency=lambda r: 30.0 if "Subtask: slow" in r.prompt_text else 0.0)
    recorder = Recorder(lambda e: e.event_type is EventType.AGENT_COMPLETE)
    branch = FanOutOrchestrator(OrchestratorConfig(), provider, subtasks=["fast", "slow"])
    orchestrator = ConditionalOrchestrator(
        OrchestratorConfig(), provider, condition=lambda c: True, true_branch=branch, false_branch="x"
    )
    result = await cancel_once_seen(orchestrator, TASK, recorder)
    assert result.status is TaskStatus.CANCELLED
    assert result.agent_results[0].status is TaskStatus.COMPLETED


async def test_concurrent_runs_choose_independently() -> None:
    provider = BillingProvider()
    orchestrator = make(provider)
    deep, quick = await asyncio.gather(
        orchestrator.execute_workflow(TASK, context={"complexity": 0.95}),
        orchestrator.execute_workflow(TASK, context={"complexity": 0.1}),
    )
    assert (deep.metadata["branch"], quick.metadata["branch"]) == ("true", "false")
    assert len(deep.agent_results) == 3 and len(quick.agent_results) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs condition"),
        ({"condition": lambda c: True, "true_branch": "a"}, "false_branch is required"),
        ({"condition": 1, "true_branch": "a", "false_branch": "b"}, "condition must be a callable"),
        (
            {"condition": lambda c: True, "true_branch": "a", "false_branch": "b", "branches": {"x": "y"}},
            "not both",
        ),
        ({"branches": {}, "evaluator": lambda c: "x"}, "non-empty"),
        ({"branches": {"x": "y"}}, "evaluator must be"),
        ({"branches": {"x": "y"}, "evaluator": lambda c: "x", "default": "z"}, "default 'z'"),
        ({"branches": {"x": FanOutOrchestrator}, "evaluator": lambda c: "x"}, "pass an instance"),
        ({"branches": {"x": 3}, "evaluator": lambda c: "x"}, "must be an orchestrator"),
        ({"branches": {"x": []}, "evaluator": lambda c: "x"}, "steps must not be empty"),
    ],
)
def test_bad_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ConditionalOrchestrator(OrchestratorConfig(), BillingProvider(), **kwargs)


async def test_pattern_config_prompts_do_not_leak_into_other_patterns() -> None:
    provider = BillingProvider()
    config = DreamCascadeConfig(belter_count=1, prompts={"belter": "CUSTOM $subtask"})
    orchestrator = ConditionalOrchestrator(
        config,
        provider,
        condition=lambda c: True,
        true_branch=DreamCascadeOrchestrator(config, provider),
        false_branch=["step"],
    )
    result = await orchestrator.execute_workflow(TASK)
    assert result.status is TaskStatus.COMPLETED
    assert any(p.startswith("CUSTOM ") for p in provider.prompts())
