"""Fan-out: plan, parallel calls, one synthesis; explicit subtasks; failures; cost."""

from __future__ import annotations

import pytest

from orchestration import ConfigError, OrchestratorConfig, SubTask, TaskStatus
from patterns import FanOutOrchestrator

from .helpers import BillingProvider, Recorder, check_bill, fail_when

TASK = "Compare three note-taking apps"


async def test_planned_fan_out() -> None:
    provider = BillingProvider()
    recorder = Recorder()
    result = await FanOutOrchestrator(OrchestratorConfig(num_agents=4), provider).execute_workflow(
        TASK, stream_callback=recorder
    )
    assert result.status is TaskStatus.COMPLETED
    assert len(result.agent_results) == 4
    assert provider.call_count == 1 + 4 + 1
    synthesis_prompt = provider.prompts()[-1]
    assert all(r.content in synthesis_prompt for r in result.agent_results)
    check_bill(result, recorder, provider)


async def test_explicit_subtasks_cost_n_plus_one_calls() -> None:
    provider = BillingProvider()
    recorder = Recorder()
    subtasks: list[str | SubTask] = ["Notion", SubTask(id="obsidian", description="Obsidian"), "Bear"]
    result = await FanOutOrchestrator(OrchestratorConfig(), provider, subtasks=subtasks).execute_workflow(
        TASK, stream_callback=recorder
    )
    assert [r.agent_id for r in result.agent_results] == [
        "agent_subtask_1",
        "agent_obsidian",
        "agent_subtask_3",
    ]
    assert provider.call_count == 4
    check_bill(result, recorder, provider)


async def test_failure_is_partial() -> None:
    provider = BillingProvider(failures=fail_when("Subtask: Bear"))
    result = await FanOutOrchestrator(
        OrchestratorConfig(max_retries=0), provider, subtasks=["Notion", "Bear"]
    ).execute_workflow(TASK)
    assert result.status is TaskStatus.PARTIAL
    assert result.final_synthesis


@pytest.mark.parametrize("subtasks", [[], [""], "Notion", [3]])
def test_bad_subtasks(subtasks: object) -> None:
    with pytest.raises(ConfigError, match="subtask"):
        FanOutOrchestrator(OrchestratorConfig(), BillingProvider(), subtasks=subtasks)  # type: ignore[arg-type]
