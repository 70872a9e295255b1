"""Each bound ends the planning with a clear reason and keeps what was obtained: the node
cap, the planning turns, the budget; a synthesis that fails still leaves an answer."""

from __future__ import annotations

from orchestration import (
    EventType,
    MemoryStore,
    PlannerConfig,
    PlannerOrchestrator,
    ScriptedProvider,
    ServiceUnavailableError,
    TaskStatus,
    ToolCall,
)
from orchestration.engine.core import GraphState, decode, is_graph_event

from .script import PlannerScript


async def planner_turns(store: MemoryStore, run_id: str) -> list[dict[str, object]]:
    state = GraphState()
    for event in await store.events(run_id):
        if is_graph_event(event):
            state.apply(decode(event))
    return list(state.outputs("planner").values())


def add(node_id: str, *dependencies: str) -> ToolCall:
    return ToolCall("add_node", {"node_id": node_id, "dependencies": list(dependencies)})


async def test_the_node_cap_refuses_the_change_past_it_and_ends_the_planning() -> None:
    script = PlannerScript([[add("a"), add("b")], [add("c"), add("d"), add("e")], [add("never")]])
    store = MemoryStore()
    planner = PlannerOrchestrator(PlannerConfig(max_nodes=3), script.provider, store=store)

    result = await planner.execute_workflow("tides")

    assert result.status is TaskStatus.PARTIAL
    reason = "the node cap max_nodes=3 was reached: 3 nodes were added and add_node asked for 1 more"
    assert result.error == reason
    assert result.metadata["planner"]["stopped_by"] == "max_nodes"
    assert len(script.planner_requests) == 2  # no third turn
    assert set(result.metadata["planner"]["nodes"]) == {"a", "b", "c"}
    assert result.final_synthesis == "ANSWER from a, b, c"  # everything that completed
    turn = (await planner_turns(store, result.run_id))[1]
    contents = [m["content"] for m in turn["results"]]
    assert contents[0].startswith('{"ok": true')
    assert contents[1] == f'{{"ok": false, "error": "add_node: not applied: {reason}"}}'
    assert (
        contents[2] == f'{{"ok": false, "error": "add_node: not applied: planning has stopped ({reason})"}}'
    )
    summary = await store.get_run(result.run_id)
    assert summary is not None and str(summary.status) == "partial"


async def test_running_out_of_turns_ends_the_run_with_what_completed() -> None:
    script = PlannerScript([[add("first")], [add("second", "first")], [add("third")]])
    planner = PlannerOrchestrator(PlannerConfig(max_planning_turns=2), script.provider, store=MemoryStore())

    result = await planner.execute_workflow("tides")

    assert result.status is TaskStatus.PARTIAL
    assert result.error == "the planner used its 2 turns (max_planning_turns) without finishing"
    assert len(script.planner_requests) == 2
    assert result.final_synthesis == "ANSWER from second"
    assert [r.subtask_id for r in result.agent_results] == ["first", "second"]
    assert "Turns left: 1." in script.planner_requests[1].messages[-1]["content"]


async def test_the_budget_ends_the_planning_and_keeps_the_results_so_far() -> None:
    turns = [[add("a"), add("b")], [add("c")], [add("d")]]
    clean = PlannerScript(turns)
    store = MemoryStore()
    config = PlannerConfig(max_tokens=64)
    first = await PlannerOrchestrator(config, clean.provider, store=store).execute_workflow("tides")
    planner_cost = first.cost_by_agent["planner"].cost_usd / 4  # four turns: three, then finish
    # The first turn and its two small nodes fit; the second turn's call (longer) does not.
    cap = planner_cost * 1.5
    script = PlannerScript(turns)
    budgeted = PlannerOrchestrator(
        PlannerConfig(max_tokens=64, max_total_cost=cap), script.provider, store=store
    )

    result = await budgeted.execute_workflow("tides")

    assert result.status is TaskStatus.BUDGET_EXCEEDED
    assert result.error is not None and result.error.startswith("the budget ran out: ")
    assert result.metadata["planner"]["stopped_by"] == "budget"
    assert len(script.planner_requests) == 1  # the second turn was refused before it was sent
    assert [r.subtask_id for r in result.agent_results] == ["a", "b"]
    assert (
        result.final_synthesis is not None and "a" in result.final_synthesis and "b" in result.final_synthesis
    )
    assert result.total_cost <= cap


async def test_a_synthesis_that_fails_leaves_the_results_as_the_answer() -> None:
    script = PlannerScript([[add("a"), add("b")]])
    provider = ScriptedProvider(
        script.reply,
        failures=lambda number, request: (
            ServiceUnavailableError("the vendor is down")
            if "Combine the team" in request.prompt_text
            else None
        ),
    )
    store = MemoryStore()
    config = PlannerConfig(max_retries=0)
    result = await PlannerOrchestrator(config, provider, store=store).execute_workflow("tides")

    assert result.status is TaskStatus.PARTIAL
    assert result.error is not None and "synthesis failed: ServiceUnavailableError" in result.error
    assert result.final_synthesis == "## a\n\nresult of a\n\n## b\n\nresult of b"
    [synthesis] = [
        e for e in await store.events(result.run_id) if e.event_type is EventType.SYNTHESIS_COMPLETE
    ]
    assert synthesis.data["synthesis"]["metadata"]["planner"]["synthesized_by"] == "fallback"
