"""PlannerOrchestrator as a front end: its config, hooks, guardrails, cancellation, replay,
reports and parallel nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orchestration import (
    AgentResult,
    ConfigError,
    EventType,
    MemoryStore,
    OrchestratorConfig,
    PlannerConfig,
    PlannerOrchestrator,
    RunNotFoundError,
    StreamEvent,
    SubTask,
    TaskStatus,
    ToolCall,
)
from orchestration.guardrails import Guardrails
from orchestration.registry import resolve_orchestrator
from orchestration.stores import open_store

from .script import PlannerScript
from .test_planner_run import ADD_SPLIT_REWORK


def test_the_config_names_each_bad_field() -> None:
    with pytest.raises(ConfigError) as caught:
        PlannerConfig(max_nodes=0, max_planning_turns=True, planner_model=" ", result_chars=-1)
    assert caught.value.errors == [
        "max_nodes must be >= 1, got 0",
        "max_planning_turns must be an integer, got True",
        "result_chars must be >= 1, got -1",
        "planner_model must be a non-empty model id or None, got ' '",
    ]
    with pytest.raises(ConfigError, match=r"prompts: unknown prompt 'plan'; the prompts are"):
        PlannerConfig(prompts={"plan": "x"})
    with pytest.raises(ConfigError, match=r"prompts\['worker'\] uses unknown placeholder\(s\) \['topic'\]"):
        PlannerConfig(prompts={"worker": "Do $topic"})
    with pytest.raises(ConfigError, match=r"prompts\['synthesis'\] has a bad placeholder; write \$\$"):
        PlannerConfig(prompts={"synthesis": "costs $ 5"})


def test_a_plain_config_is_lifted_and_the_registry_knows_the_planner() -> None:
    planner = PlannerOrchestrator(OrchestratorConfig(max_concurrent_agents=2), store=MemoryStore())
    assert isinstance(planner.config, PlannerConfig) and planner.config.max_concurrent_agents == 2
    assert planner.config.max_nodes == 12
    assert resolve_orchestrator("planner") is PlannerOrchestrator
    with pytest.raises(ConfigError, match="takes a PlannerConfig"):
        PlannerOrchestrator(object())  # type: ignore[arg-type]


async def test_prompts_can_be_replaced_and_the_planner_model_chosen() -> None:
    script = PlannerScript([ToolCall("finish", {})])
    config = PlannerConfig(
        planner_model="big-planner",
        prompts={"planner": "Plan with at most $max_nodes nodes in $max_turns turns."},
        max_nodes=4,
        max_planning_turns=2,
    )
    await PlannerOrchestrator(config, script.provider, store=MemoryStore()).execute_workflow("tides")
    [request] = script.planner_requests
    assert request.messages[0] == {"role": "system", "content": "Plan with at most 4 nodes in 2 turns."}
    assert request.model == "big-planner"


async def test_a_guardrail_that_refuses_the_planners_call_ends_the_run_saying_so() -> None:
    guardrails = Guardrails.load(
        "policies:\n  - name: big call\n    when: tokens_used > 1000\n    scope: execution\n    action: reject_execution\n"
    )
    script = PlannerScript(ADD_SPLIT_REWORK)
    store = MemoryStore()
    planner = PlannerOrchestrator(
        PlannerConfig(max_tokens=64), script.provider, store=store, guardrails=guardrails
    )
    result = await planner.execute_workflow("tides")

    assert result.status is TaskStatus.FAILED
    assert result.error is not None
    assert result.error.startswith(
        "a guardrail stopped the planning: guardrail 'big call' (execution: tokens_used > 1000)"
    )
    assert script.provider.calls == []  # refused before it was sent
    [decision] = [e for e in await store.events(result.run_id) if e.event_type is EventType.GUARDRAIL]
    assert decision.agent_id == "planner" and decision.data["action"] == "reject_execution"


class Waiting(PlannerOrchestrator):
    """Nodes ``left`` and ``right`` each wait until the other has started."""

    started: dict[str, asyncio.Event]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        self.started[subtask.id].set()
        other = "right" if subtask.id == "left" else "left"
        await asyncio.wait_for(self.started[other].wait(), 30)  # only if they run side by side
        return AgentResult(subtask.id, subtask.agent_type, subtask.id, f"{subtask.id} done")


async def test_independent_nodes_run_side_by_side() -> None:
    script = PlannerScript(
        [[ToolCall("add_node", {"node_id": "left"}), ToolCall("add_node", {"node_id": "right"})]]
    )
    planner = Waiting(PlannerConfig(max_concurrent_agents=2), script.provider, store=MemoryStore())
    planner.started = {"left": asyncio.Event(), "right": asyncio.Event()}
    result = await planner.execute_workflow("tides")
    assert result.status is TaskStatus.COMPLETED
    assert result.final_synthesis == "ANSWER from left, right"


async def test_cancelling_a_run_ends_it_cancelled_with_what_completed() -> None:
    script = PlannerScript(
        [[ToolCall("add_node", {"node_id": "quick"}), ToolCall("add_node", {"node_id": "slow"})]]
    )
    release = asyncio.Event()

    class Slow(PlannerOrchestrator):
        async def execute_subtask(
            self, subtask: SubTask, context: dict[str, Any] | None = None
        ) -> AgentResult:
            if subtask.id == "slow":
                await release.wait()
            return await super().execute_subtask(subtask, context)

    planner = Slow(PlannerConfig(), script.provider, store=MemoryStore())

    def watch(event: StreamEvent) -> None:
        if event.event_type is EventType.AGENT_COMPLETE and event.agent_id == "quick":
            assert planner.active_runs == ["tides"]
            assert planner.cancel("tides") and not planner.cancel("other")

    result = await planner.execute_workflow("tides", run_id="tides", stream_callback=watch)
    assert result.status is TaskStatus.CANCELLED
    assert [(r.subtask_id, str(r.status)) for r in result.agent_results] == [("quick", "completed")]
    assert planner.active_runs == []


async def test_a_replay_answers_every_call_from_the_recording() -> None:
    script = PlannerScript(ADD_SPLIT_REWORK)
    store = MemoryStore()
    planner = PlannerOrchestrator(PlannerConfig(), script.provider, store=store)
    first = await planner.execute_workflow("tides")
    calls = len(script.provider.calls)

    again = await planner.replay(first.run_id)
    assert len(script.provider.calls) == calls  # no provider call
    assert again.run_id != first.run_id
    assert again.final_synthesis == first.final_synthesis
    assert again.metadata["served_from_recording"] == calls and again.metadata["live_calls"] == 0
    assert again.metadata["planner"]["nodes"] == first.metadata["planner"]["nodes"]


async def test_reports_are_written_after_the_run_and_listed_in_its_result(tmp_path: Path) -> None:
    script = PlannerScript(ADD_SPLIT_REWORK)
    config = PlannerConfig(generate_documents=True, output_directory=str(tmp_path))
    store = MemoryStore()
    result = await PlannerOrchestrator(config, script.provider, store=store).execute_workflow("Tides report")

    [document] = result.generated_documents
    text = await asyncio.to_thread(Path(document.path).read_text)
    assert "ANSWER from review" in text and "draft.body" in text
    kinds = [e.event_type for e in await store.events(result.run_id)]
    assert kinds[-1] is EventType.DOCUMENT_GENERATION_COMPLETE


async def test_resuming_what_is_not_a_planner_run_is_one_clear_error(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "runs.db"))
    planner = PlannerOrchestrator(PlannerConfig(), PlannerScript([]).provider, store=store)
    try:
        with pytest.raises(RunNotFoundError, match="no run 'missing' in the store"):
            await planner.resume("missing")
        from orchestration import Graph, Node

        await Graph(nodes=[Node(id="only")], entry="only").run(
            {"only": lambda ctx: 1}, store=store, run_id="g"
        )
        with pytest.raises(ConfigError, match="run 'g' was not started by a PlannerOrchestrator \\(graph\\)"):
            await planner.resume("g")
        with pytest.raises(ConfigError, match="already exists in the store"):
            await planner.execute_workflow("tides", run_id="g")
    finally:
        await store.close()


async def test_hooks_that_misbehave_fail_their_node_clearly() -> None:
    class Odd(PlannerOrchestrator):
        async def execute_subtask(
            self, subtask: SubTask, context: dict[str, Any] | None = None
        ) -> AgentResult:
            return "not a result"  # type: ignore[return-value]

    script = PlannerScript([[ToolCall("add_node", {"node_id": "a"})]])
    result = await Odd(PlannerConfig(), script.provider, store=MemoryStore()).execute_workflow("tides")
    assert result.status is TaskStatus.PARTIAL
    assert result.error == (
        "1 of 1 nodes did not complete (a: AgentFailedError: execute_subtask must return an AgentResult, not str)"
    )
    with pytest.raises(ConfigError, match="it has no decompose step"):
        await PlannerOrchestrator(store=MemoryStore()).decompose_task("tides")


async def test_a_planner_without_a_provider_fails_saying_so() -> None:
    result = await PlannerOrchestrator(store=MemoryStore()).execute_workflow("tides")
    assert result.status is TaskStatus.FAILED
    assert result.error is not None
    assert result.error.startswith("the planner node failed: ConfigError: this orchestrator has no provider")
