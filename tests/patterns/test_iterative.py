"""Iterative: convergence, the cap, scorers, failures, cancellation, no leaks, cost."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from orchestration import (
    CompletionRequest,
    ConfigError,
    EventType,
    OrchestratorConfig,
    TaskStatus,
)
from patterns import IterationResult, IterativeOrchestrator

from .helpers import BillingProvider, Recorder, cancel_once_seen, check_bill, fail_when

TASK = "Write a haiku about autumn"


def judged(*scores: float) -> Callable[[CompletionRequest], str]:
    """Answers ANSWER-n to writing prompts and the next score to judge prompts."""
    answers = 0
    judgements = iter(scores)

    def reply(request: CompletionRequest) -> str:
        nonlocal answers
        if "Rate how well" in request.prompt_text:
            return f'Here you go: {{"score": {next(judgements)}, "feedback": "be more vivid"}}'
        answers += 1
        return f"ANSWER-{answers}"

    return reply


def iterative(provider: BillingProvider, **kwargs: Any) -> IterativeOrchestrator:
    return IterativeOrchestrator(OrchestratorConfig(max_retries=0), provider, **kwargs)


async def test_converges_and_feeds_back() -> None:
    provider = BillingProvider(judged(0.5, 0.7, 0.95))
    recorder = Recorder()
    orchestrator = iterative(provider, max_iterations=5, convergence_fn=lambda r: r.score > 0.9)
    result = await orchestrator.execute_workflow(TASK, stream_callback=recorder)
    assert result.status is TaskStatus.COMPLETED, result.error
    starts = [(e.data["iteration"], e.data["max_iterations"]) for e in recorder.of(EventType.ITERATION_START)]
    assert starts == [(1, 5), (2, 5), (3, 5)]
    completes = recorder.of(EventType.ITERATION_COMPLETE)
    assert [e.data["score"] for e in completes] == [0.5, 0.7, 0.95]
    assert [e.data["converged"] for e in completes] == [False, False, True]
    prompts = provider.prompts()
    assert "ANSWER-1" in prompts[2] and "be more vivid" in prompts[2]  # iteration 2 revises iteration 1
    assert "ANSWER-2" in prompts[4]
    assert result.final_synthesis == "ANSWER-3"
    assert result.metadata["converged"] is True and result.metadata["iterations"] == 3
    assert provider.call_count == 6
    check_bill(result, recorder, provider)


async def test_cap_reports_not_converged_and_keeps_the_best() -> None:
    provider = BillingProvider(judged(0.5, 0.8, 0.6))
    recorder = Recorder()
    result = await iterative(
        provider, max_iterations=3, convergence_fn=lambda r: r.score > 0.9
    ).execute_workflow(TASK, stream_callback=recorder)
    assert result.status is TaskStatus.PARTIAL
    assert "did not converge" in (result.error or "") and "iteration 2" in (result.error or "")
    assert result.final_synthesis == "ANSWER-2"
    assert result.metadata == {"converged": False, "iterations": 3, "best_iteration": 2, "best_score": 0.8}
    assert len(recorder.of(EventType.ITERATION_COMPLETE)) == 3
    check_bill(result, recorder, provider)


async def test_default_convergence_uses_the_threshold() -> None:
    provider = BillingProvider()  # the demo judge says 0.95
    result = await iterative(provider).execute_workflow(TASK)
    assert result.status is TaskStatus.COMPLETED
    assert result.metadata["iterations"] == 1
    provider = BillingProvider(judged(0.5, 0.6))
    result = await iterative(provider, max_iterations=2, score_threshold=0.55).execute_workflow(TASK)
    assert result.status is TaskStatus.COMPLETED and result.metadata["iterations"] == 2


async def test_raising_convergence_fn_fails_clearly() -> None:
    provider = BillingProvider(judged(0.5))
    result = await iterative(provider, convergence_fn=lambda r: 1 / 0).execute_workflow(TASK)
    assert result.status is TaskStatus.FAILED
    assert "convergence_fn raised ZeroDivisionError" in (result.error or "")
    assert provider.call_count == 2  # not retried


async def test_custom_scorer_and_refiner_make_no_model_calls() -> None:
    provider = BillingProvider()
    seen: list[IterationResult | None] = []

    def refine(task: str, previous: IterationResult | None) -> str:
        seen.append(previous)
        return "x" * (len(previous.output) + 1 if previous else 1)

    async def scorer(output: str, task: str) -> tuple[float, str]:
        return len(output) / 4, f"length {len(output)}"

    result = await iterative(
        provider, max_iterations=10, scorer=scorer, refine_fn=refine, convergence_fn=lambda r: r.score >= 0.75
    ).execute_workflow(TASK)
    assert result.status is TaskStatus.COMPLETED
    assert result.final_synthesis == "xxx"
    assert seen[0] is None and seen[2] == IterationResult(2, "xx", 0.5, "length 2")
    assert provider.call_count == 0 and result.total_cost == 0


@pytest.mark.parametrize(
    ("scorer", "message"),
    [
        (lambda o, t: 1.5, "between 0 and 1"),
        (lambda o, t: "high", "between 0 and 1"),
        (lambda o, t: [][0], "scorer raised IndexError"),
    ],
)
async def test_bad_scorer_fails_clearly(scorer: Any, message: str) -> None:
    result = await iterative(BillingProvider(), scorer=scorer).execute_workflow(TASK)
    assert result.status is TaskStatus.FAILED
    assert message in (result.error or "")


async def test_unparseable_judgement_counts_as_zero() -> None:
    provider = BillingProvider(lambda r: "meh" if "Rate how well" in r.prompt_text else "answer")
    recorder = Recorder()
    result = await iterative(provider, max_iterations=2).execute_workflow(TASK, stream_callback=recorder)
    assert result.status is TaskStatus.PARTIAL
    assert [e.data["score"] for e in recorder.of(EventType.ITERATION_COMPLETE)] == [0.0, 0.0]
    assert any("no score" in e.data["message"] for e in recorder.of(EventType.WARNING))


async def test_model_failure_after_first_iteration_keeps_the_best() -> None:
    provider = BillingProvider(judged(0.4, 0.9), failures=fail_when("Your previous answer (iteration 1)"))
    recorder = Recorder()
    result = await iterative(provider, max_iterations=4).execute_workflow(TASK, stream_callback=recorder)
    assert result.status is TaskStatus.PARTIAL
    assert "iteration 2 failed (BadRequestError" in (result.error or "")
    assert result.final_synthesis == "ANSWER-1"
    check_bill(result, recorder, provider)


async def test_model_failure_in_first_iteration_fails() -> None:
    provider = BillingProvider(failures=fail_when("Write the best answer"))
    result = await iterative(provider).execute_workflow(TASK)
    assert result.status is TaskStatus.FAILED
    assert result.final_synthesis is None


async def test_cancel_mid_loop() -> None:
    provider = BillingProvider(
        judged(0.1, 0.2, 0.3), latency=lambda r: 30.0 if "(iteration 1)" in r.prompt_text else 0.0
    )
    recorder = Recorder(lambda e: e.event_type is EventType.ITERATION_COMPLETE)
    orchestrator = iterative(provider, max_iterations=3)
    result = await cancel_once_seen(orchestrator, TASK, recorder)
    assert result.status is TaskStatus.CANCELLED
    [done] = recorder.of(EventType.ITERATION_COMPLETE)
    assert done.data["output"] == "ANSWER-1"
    assert result.total_cost == pytest.approx(provider.expected_cost())


async def test_no_state_leaks_between_runs() -> None:
    provider = BillingProvider(judged(0.5, 0.95, 0.5, 0.95))
    orchestrator = iterative(provider, max_iterations=3)
    first = await orchestrator.execute_workflow(TASK)
    second = await orchestrator.execute_workflow(TASK)
    assert first.metadata["iterations"] == second.metadata["iterations"] == 2
    assert first.status is second.status is TaskStatus.COMPLETED


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_iterations": 0}, "max_iterations"),
        ({"max_iterations": -3}, "max_iterations"),
        ({"max_iterations": 2.5}, "max_iterations"),
        ({"max_iterations": True}, "max_iterations"),
        ({"convergence_fn": 0.9}, "convergence_fn"),
        ({"scorer": "llm"}, "scorer"),
        ({"score_threshold": 2}, "score_threshold"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        IterativeOrchestrator(OrchestratorConfig(), BillingProvider(), **kwargs)


async def test_an_async_convergence_fn_is_awaited() -> None:
    seen: list[float] = []

    async def converged(result: IterationResult) -> bool:
        seen.append(result.score)
        return result.score > 0.9

    provider = BillingProvider(judged(0.5, 0.95))
    result = await iterative(provider, max_iterations=5, convergence_fn=converged).execute_workflow(TASK)
    assert result.status is TaskStatus.COMPLETED
    assert seen == [0.5, 0.95] and result.metadata["iterations"] == 2
