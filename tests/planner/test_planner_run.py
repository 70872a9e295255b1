"""A planner run driven by scripted tool calls: it adds, splits, reworks and finishes, and
the graph, its visits, the events and the result show exactly that."""

from __future__ import annotations

from typing import Any

from orchestration import (
    AgentResult,
    EventType,
    MemoryStore,
    PlannerConfig,
    PlannerOrchestrator,
    SubTask,
    TaskStatus,
    ToolCall,
)
from orchestration.engine.core import GraphState, NodeState, decode, is_graph_event

from .script import PlannerScript, tool_results

ADD_SPLIT_REWORK = [
    [
        ToolCall("add_node", {"node_id": "research", "description": "Collect facts about tides"}),
        ToolCall("add_node", {"node_id": "outline", "description": "Outline the report"}),
        ToolCall(
            "add_node",
            {
                "node_id": "draft",
                "description": "Write the report",
                "dependencies": ["research", "outline"],
                "expectations": [{"node_id": "research", "expectation": "dated facts"}],
            },
        ),
        ToolCall(
            "split_node",
            {
                "node_id": "draft",
                "parts": [
                    {"node_id": "draft.intro", "description": "Write the introduction"},
                    {"node_id": "draft.body", "description": "Write the body"},
                ],
                "reason": "two independent sections",
            },
        ),
    ],
    [
        ToolCall(
            "rework",
            {
                "source": "research",
                "consumer": "draft.body",
                "node_id": "research.fix",
                "description": "Add sources to every fact",
                "reason": "the facts have no sources",
            },
        ),
        ToolCall(
            "add_node",
            {"node_id": "review", "description": "Review the draft", "dependencies": ["draft.join"]},
        ),
    ],
    ToolCall("finish", {"reason": "the review is done"}),
]


async def graph_of(store: MemoryStore, run_id: str) -> GraphState:
    state = GraphState()
    for event in await store.events(run_id):
        if is_graph_event(event):
            state.apply(decode(event))
    return state


async def test_the_planner_adds_splits_reworks_and_finishes() -> None:
    script = PlannerScript(ADD_SPLIT_REWORK)
    store = MemoryStore()
    planner = PlannerOrchestrator(PlannerConfig(max_nodes=10), script.provider, store=store)

    result = await planner.execute_workflow("Write a short report on tides")

    assert result.status is TaskStatus.COMPLETED, result.error
    assert result.final_synthesis == "ANSWER from review"  # the one result nothing else built on
    assert result.metadata["planner"]["turns"] == 3
    assert result.metadata["planner"]["stopped_by"] == "finish"

    graph = await graph_of(store, result.run_id)
    workers = [n for n in graph.nodes if n not in ("planner", "observe", "decide", "synthesizer")]
    assert workers == [
        "research",
        "outline",
        "draft.intro",
        "draft.body",
        "draft.join",
        "research.fix",
        "review",
    ]
    inputs = {n: sorted(e.source for e in graph.nodes[n].inn) for n in workers}
    assert inputs == {
        "research": [],
        "outline": [],
        "draft.intro": ["outline", "research"],  # the parts inherit the split node's dependencies
        "draft.body": ["outline", "research.fix"],  # the correction sits between research and it
        "draft.join": ["draft.body", "draft.intro"],
        "research.fix": ["research"],
        "review": ["draft.join"],
    }
    assert all(graph.nodes[n].state == NodeState.COMPLETED for n in workers)
    visits = {n: rec.visits for n, rec in graph.nodes.items()}
    assert visits == {
        "planner": 3,
        "observe": 3,
        "decide": 3,
        "synthesizer": 1,
        "research": 1,
        "outline": 1,
        "draft.intro": 1,
        "draft.body": 2,  # ran again on the corrected facts
        "draft.join": 2,
        "research.fix": 1,
        "review": 1,
    }
    first, second = script.worker_requests("draft.body")
    assert "### research (what you need from it: dated facts)\nresult of research\n" in first.prompt_text
    # The correction took the edge's place, contract and all.
    assert (
        "### research.fix (what you need from it: dated facts)\nresult of research.fix\n"
        in second.prompt_text
    )


async def test_the_planner_sees_each_turns_results_and_its_tool_results() -> None:
    script = PlannerScript(ADD_SPLIT_REWORK)
    await PlannerOrchestrator(PlannerConfig(), script.provider, store=MemoryStore()).execute_workflow("tides")

    first, second, third = script.planner_requests
    assert first.messages[0]["role"] == "system" and "at most 12 nodes" in first.messages[0]["content"]
    assert first.messages[-1] == {"role": "user", "content": "Task: tides\n\nPlan it: add the first nodes."}
    assert [r["ok"] for r in tool_results(second)] == [True, True, True, True]
    assert tool_results(second)[3] == {
        "ok": True,
        "parts": ["draft.intro", "draft.body"],
        "join": "draft.join",
    }
    observation = second.messages[-1]["content"]
    assert observation.startswith("Turn 1 is done.")
    assert "[research] completed (visit 1):\nresult of research" in observation
    assert "[draft.join] completed (visit 1)" in observation
    assert "Turns left: 5. Nodes you may still add: 6." in observation  # draft counts, split or not
    # The third turn sees only what changed in the second: the correction and what reran.
    latest = third.messages[-1]["content"]
    assert "[research.fix] completed (visit 1)" in latest and "[draft.body] completed (visit 2)" in latest
    assert "[outline]" not in latest
    # Each turn replays the conversation so far: the second turn's request is a prefix of the third's.
    assert list(third.messages[: len(second.messages)]) == list(second.messages)


async def test_changes_are_graph_events_made_by_the_planner_with_their_reasons() -> None:
    script = PlannerScript(ADD_SPLIT_REWORK)
    store = MemoryStore()
    result = await PlannerOrchestrator(PlannerConfig(), script.provider, store=store).execute_workflow(
        "tides"
    )

    events = await store.events(result.run_id)
    changes = [
        (e.event_type, e.data["by"], e.data["reason"])
        for e in events
        if e.event_type in (EventType.GRAPH_NODE_SPLIT, EventType.GRAPH_REWORK_INSERTED)
    ]
    assert changes == [
        (EventType.GRAPH_NODE_SPLIT, "planner", "two independent sections"),
        (EventType.GRAPH_REWORK_INSERTED, "planner", "the facts have no sources"),
    ]
    start = events[0]
    assert start.event_type is EventType.WORKFLOW_START
    assert start.data["orchestrator"] == "planner" and start.data["task"] == "tides"
    summary = await store.get_run(result.run_id)
    assert summary is not None and summary.orchestrator == "planner" and str(summary.status) == "completed"


async def test_the_bill_names_the_planner_every_node_and_the_synthesizer() -> None:
    script = PlannerScript(ADD_SPLIT_REWORK)
    result = await PlannerOrchestrator(
        PlannerConfig(), script.provider, store=MemoryStore()
    ).execute_workflow("tides")

    calls = {agent: usage.calls for agent, usage in result.cost_by_agent.items()}
    assert calls == {
        "planner": 3,
        "research": 1,
        "outline": 1,
        "draft.intro": 1,
        "draft.body": 2,
        "research.fix": 1,
        "review": 1,
        "synthesizer": 1,
    }  # the join combines its parts without a model call
    assert result.usage.calls == len(script.provider.calls) == 11
    assert abs(sum(u.cost_usd for u in result.cost_by_agent.values()) - result.total_cost) < 1e-12
    assert result.total_cost > 0
    # Every node a worker ran, in plan order (a join is no agent's work).
    assert [r.subtask_id for r in result.agent_results] == [
        "research",
        "outline",
        "draft.intro",
        "draft.body",
        "research.fix",
        "review",
    ]
    assert all(r.status is TaskStatus.COMPLETED and r.content for r in result.agent_results)
    assert [s.id for s in result.subtasks][-1] == "review"  # the plan as it ended


class FailingWorker(PlannerOrchestrator):
    """``fetch`` reports a failure; every other node is the default worker."""

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        if subtask.id == "fetch":
            return AgentResult(
                "fetch", subtask.agent_type, "fetch", "", TaskStatus.FAILED, error="the site is down"
            )
        return await super().execute_subtask(subtask, context)


FETCH_THEN_PARSE = [
    ToolCall("add_node", {"node_id": "fetch", "description": "Fetch the tide tables"}),
    ToolCall("add_node", {"node_id": "parse", "description": "Parse them", "dependencies": ["fetch"]}),
]


async def test_a_failed_node_fails_only_its_part_and_the_planner_replans() -> None:
    script = PlannerScript(
        [
            FETCH_THEN_PARSE,
            [
                ToolCall("remove_node", {"node_id": "fetch", "cascade": True, "reason": "the site is down"}),
                ToolCall(
                    "add_node", {"node_id": "estimate", "description": "Estimate from the moon's phase"}
                ),
            ],
        ]
    )
    store = MemoryStore()
    result = await FailingWorker(PlannerConfig(), script.provider, store=store).execute_workflow("tides")

    observation = script.planner_requests[1].messages[-1]["content"]
    assert "[fetch] FAILED: AgentFailedError: the site is down" in observation
    assert "[parse] SKIPPED: input(s) ['fetch'] failed or were cancelled" in observation
    removed, added = tool_results(script.planner_requests[2])[-2:]
    assert removed == {"ok": True, "removed": ["fetch", "parse"]}
    assert added == {"ok": True, "node_id": "estimate", "dependencies": []}
    assert result.status is TaskStatus.COMPLETED  # the failure was replanned away
    assert result.final_synthesis == "ANSWER from estimate"
    assert set(result.metadata["planner"]["nodes"]) == {"estimate"}
    errors = [e for e in await store.events(result.run_id) if e.event_type is EventType.AGENT_ERROR]
    assert [e.data["result"]["error"] for e in errors] == ["AgentFailedError: the site is down"]


async def test_a_failure_left_in_the_plan_makes_the_run_partial_with_what_completed() -> None:
    script = PlannerScript([[*FETCH_THEN_PARSE, ToolCall("add_node", {"node_id": "moon"})]])
    result = await FailingWorker(PlannerConfig(), script.provider, store=MemoryStore()).execute_workflow(
        "tides"
    )

    assert result.status is TaskStatus.PARTIAL
    assert result.error == (
        "2 of 3 nodes did not complete (fetch: AgentFailedError: the site is down; parse: skipped)"
    )
    assert result.final_synthesis == "ANSWER from moon"
