"""Sequential: strict order, chaining, handlers, failures, cancellation, cost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestration import (
    CompletionRequest,
    ConfigError,
    EventType,
    OrchestratorConfig,
    TaskStatus,
)
from patterns import SequentialOrchestrator, Step

from .helpers import BillingProvider, Recorder, cancel_once_seen, check_bill, fail_when

TASK = "Write a short report on solar power"


def numbered() -> Any:
    count = 0

    def reply(request: CompletionRequest) -> str:
        nonlocal count
        count += 1
        return f"OUTPUT-{count}"

    return reply


async def test_steps_run_in_order_and_chain_even_when_parallel() -> None:
    provider = BillingProvider(numbered())
    recorder = Recorder()
    config = OrchestratorConfig(parallel_execution=True, max_concurrent_agents=5)
    orchestrator = SequentialOrchestrator(config, provider, steps=["Collect facts", "Analyse", "Write it up"])
    result = await orchestrator.execute_workflow(TASK, stream_callback=recorder)
    assert result.status is TaskStatus.COMPLETED, result.error
    prompts = provider.prompts()
    assert [p.splitlines()[0] for p in prompts] == [
        "Subtask: Collect facts",
        "Subtask: Analyse",
        "Subtask: Write it up",
    ]
    assert "first step" in prompts[0]
    assert "OUTPUT-1" in prompts[1] and "OUTPUT-2" in prompts[2]
    assert [r.content for r in result.agent_results] == ["OUTPUT-1", "OUTPUT-2", "OUTPUT-3"]
    assert [s.dependencies for s in result.subtasks] == [(), ("step_1",), ("step_2",)]
    starts = [e.agent_id for e in recorder.of(EventType.AGENT_START)]
    assert starts == ["agent_step_1", "agent_step_2", "agent_step_3"]
    assert result.final_synthesis == "OUTPUT-3"
    assert provider.call_count == 3  # no extra synthesis call
    check_bill(result, recorder, provider)


async def test_llm_planned_steps_readme_config() -> None:
    provider = BillingProvider()
    recorder = Recorder()
    config = OrchestratorConfig(num_agents=3, parallel_execution=False)
    result = await SequentialOrchestrator(config, provider).execute_workflow(TASK, stream_callback=recorder)
    assert result.status is TaskStatus.COMPLETED
    assert len(result.agent_results) == 3
    assert provider.call_count == 1 + 3
    assert [s.metadata["step"] for s in result.subtasks] == [1, 2, 3]
    for earlier, later in zip(result.agent_results, provider.prompts()[2:], strict=False):
        assert earlier.content in later
    check_bill(result, recorder, provider)


async def test_handlers_sync_async_and_callables() -> None:
    provider = BillingProvider(lambda r: "model says hi")
    seen: list[tuple[str, int, int]] = []

    def upper(text: str, context: dict[str, Any]) -> str:
        seen.append((text, context["step"], context["total"]))
        return text.upper()

    async def exclaim(text: str, context: dict[str, Any]) -> str:
        """Add emphasis."""
        seen.append((text, context["step"], context["total"]))
        await asyncio.sleep(0)
        return text + "!"

    orchestrator = SequentialOrchestrator(
        OrchestratorConfig(),
        provider,
        steps=[Step("Shout the task", handler=upper), exclaim, "Comment on it"],
    )
    result = await orchestrator.execute_workflow(TASK, context={"tone": "loud"})
    assert result.status is TaskStatus.COMPLETED, result.error
    assert seen == [(TASK, 1, 3), (TASK.upper(), 2, 3)]
    assert result.subtasks[1].description == "Add emphasis."
    assert provider.call_count == 1
    assert TASK.upper() + "!" in provider.prompts()[0]
    assert result.final_synthesis == "model says hi"


async def test_handler_may_call_the_model_and_is_billed() -> None:
    provider = BillingProvider(lambda r: "drafted")
    recorder = Recorder()
    orchestrator: SequentialOrchestrator

    async def draft(text: str, context: dict[str, Any]) -> str:
        return (await orchestrator.call_llm(f"Draft from: {text}")).content

    orchestrator = SequentialOrchestrator(OrchestratorConfig(), provider, steps=[draft, "Polish"])
    result = await orchestrator.execute_workflow(TASK, stream_callback=recorder)
    assert result.status is TaskStatus.COMPLETED
    assert result.cost_by_agent["agent_step_1"].calls == 1
    check_bill(result, recorder, provider)


async def test_failed_step_stops_the_pipeline() -> None:
    provider = BillingProvider(numbered(), failures=fail_when("Subtask: Analyse"))
    recorder = Recorder()
    config = OrchestratorConfig(max_retries=0)
    orchestrator = SequentialOrchestrator(config, provider, steps=["Collect", "Analyse", "Write"])
    result = await orchestrator.execute_workflow(TASK, stream_callback=recorder)
    assert result.status is TaskStatus.PARTIAL
    assert [r.status for r in result.agent_results] == [
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.SKIPPED,
    ]
    assert result.final_synthesis == "OUTPUT-1"
    assert provider.call_count == 2
    check_bill(result, recorder, provider)


async def test_first_step_failure_fails_the_run() -> None:
    provider = BillingProvider(failures=fail_when("Subtask: Collect"))
    result = await SequentialOrchestrator(
        OrchestratorConfig(max_retries=0), provider, steps=["Collect", "Write"]
    ).execute_workflow(TASK)
    assert result.status is TaskStatus.FAILED
    assert result.final_synthesis is None


async def test_handler_returning_nothing_fails_that_step() -> None:
    provider = BillingProvider()
    orchestrator = SequentialOrchestrator(
        OrchestratorConfig(max_retries=0),
        provider,
        steps=["First", Step("Broken", handler=lambda t, c: None)],
    )
    result = await orchestrator.execute_workflow(TASK)
    assert result.status is TaskStatus.PARTIAL
    assert "returned NoneType" in (result.agent_results[1].error or "")


async def test_cancel_mid_pipeline_keeps_finished_steps() -> None:
    provider = BillingProvider(numbered(), latency=lambda r: 30.0 if "Subtask: Two" in r.prompt_text else 0.0)
    recorder = Recorder(lambda e: e.event_type is EventType.AGENT_START and e.agent_id == "agent_step_2")
    orchestrator = SequentialOrchestrator(OrchestratorConfig(), provider, steps=["One", "Two", "Three"])
    result = await cancel_once_seen(orchestrator, TASK, recorder)
    assert result.status is TaskStatus.CANCELLED
    assert result.agent_results[0].status is TaskStatus.COMPLETED
    assert result.agent_results[0].content == "OUTPUT-1"


async def test_unparseable_plan_falls_back_to_pipeline_stages() -> None:
    provider = BillingProvider(lambda r: "sorry" if "JSON" in r.prompt_text else "done")
    recorder = Recorder()
    result = await SequentialOrchestrator(OrchestratorConfig(num_agents=4), provider).execute_workflow(
        TASK, stream_callback=recorder
    )
    assert result.status is TaskStatus.COMPLETED
    assert [s.description.split(" of: ")[0] for s in result.subtasks] == [
        "Gather the facts and requirements",
        "Analyse what was gathered",
        "Draft the answer",
        "Review the draft and correct it",
    ]
    assert any("pipeline stage" in e.data["message"] for e in recorder.of(EventType.WARNING))


@pytest.mark.parametrize("steps", [[], "one step", [42], [Step("")], [Step("x", handler=3)]])  # type: ignore[arg-type]
def test_bad_steps(steps: Any) -> None:
    with pytest.raises(ConfigError, match="step"):
        SequentialOrchestrator(OrchestratorConfig(), BillingProvider(), steps=steps)
