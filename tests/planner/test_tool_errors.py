"""What the model gets wrong comes back to it as the tool call's error result, one line
saying what to fix; the run goes on and completes."""

from __future__ import annotations

import json

from orchestration import MemoryStore, PlannerConfig, PlannerOrchestrator, TaskStatus, ToolCall

from .script import PlannerScript, tool_results

TOOLS = "add_node, split_node, rework, refine_node, edit_node, remove_node, list_nodes, check_task, history, finish"

#: (call, the result the planner is sent), in the order of one turn.
CASES = [
    (ToolCall("add_node", {"node_id": "a"}), {"ok": True, "node_id": "a", "dependencies": []}),
    (
        ToolCall("add_node", '{"node_id": "b",'),
        "add_node: the arguments are not valid JSON (Expecting property name enclosed in double quotes "
        'at character 16): \'{"node_id": "b",\'; call it again with a JSON object',
    ),
    (
        ToolCall("add_node", '["b"]'),
        "add_node: the arguments are a JSON list, not an object: '[\"b\"]'; call it again with a JSON object",
    ),
    (
        ToolCall("add_node", {"node_id": 5}),
        "add_node: bad arguments: Expected `str`, got `int` - at `$.node_id`",
    ),
    (
        ToolCall("add_node", {"node_id": "b", "colour": "red"}),
        "add_node: bad arguments: Object contains unknown field `colour`",
    ),
    (
        ToolCall("add_node", {"description": "?"}),
        "add_node: bad arguments: Object missing required field `node_id`",
    ),
    (
        ToolCall("get_task", {"agent_id": "agent-1"}),
        f"there is no tool 'get_task' (workers are run for you: add nodes instead); the tools are: {TOOLS}",
    ),
    (ToolCall("launch", {}), f"there is no tool 'launch'; the tools are: {TOOLS}"),
    (
        ToolCall("split_node", {"node_id": "ghost", "parts": [{"node_id": "g1"}]}),
        "split_node: there is no node 'ghost' (nodes: a)",
    ),
    # "a" started the moment it was added: a running node cannot be split, removed or reworked.
    (
        ToolCall("split_node", {"node_id": "a", "parts": [{"node_id": "a1"}]}),
        "split_node: cannot split node 'a': node 'a' is active (visit 1); ACTIVE nodes are protected",
    ),
    (
        ToolCall("remove_node", {"node_id": "a"}),
        "remove_node: cannot remove ['a']: node 'a' is active (visit 1); ACTIVE nodes are protected",
    ),
    (
        ToolCall("rework", {"source": "a", "node_id": "a.fix"}),
        "rework: the source 'a' is ACTIVE; rework takes a COMPLETED result",
    ),
    (
        ToolCall("edit_node", {"node_id": "planner", "description": "plan less"}),
        "edit_node: 'planner' is the planner's own node; name one of the worker nodes",
    ),
    (
        ToolCall("add_node", {"node_id": "synthesizer"}),
        "add_node: 'synthesizer' is the planner's own node; choose another id",
    ),
    (ToolCall("add_node", {"node_id": "a"}), "add_node: there is already a node 'a'; choose another id"),
    (
        ToolCall("add_node", {"node_id": "has space"}),
        "add_node: node id 'has space' is not allowed: use 1-64 letters, digits, '.', '_' or '-'",
    ),
    (
        ToolCall("add_node", {"node_id": "c", "dependencies": ["zzz"]}),
        "add_node: there is no dependency 'zzz' (nodes: a)",
    ),
    (
        ToolCall("add_node", {"node_id": "c", "dependencies": ["a"]}),
        {"ok": True, "node_id": "c", "dependencies": ["a"]},
    ),
    (
        ToolCall("refine_node", {"node_id": "a", "depends_on": "c"}),
        "refine_node: cycle a -> c -> a does not pass through a SWITCH; loops must go through one",
    ),
    (
        ToolCall("edit_node", {"node_id": "c"}),
        "edit_node: say what to change: description, priority or timeout",
    ),
    (
        ToolCall("list_nodes", {"state": "bogus"}),
        "list_nodes: bad arguments: Invalid enum value 'bogus' - at `$.state`",
    ),
]


async def test_each_mistake_is_answered_with_its_error_and_the_run_completes() -> None:
    script = PlannerScript([[call for call, _ in CASES]])
    result = await PlannerOrchestrator(
        PlannerConfig(), script.provider, store=MemoryStore()
    ).execute_workflow("tides")

    assert result.status is TaskStatus.COMPLETED, result.error
    sent = tool_results(script.planner_requests[1])
    expected = [want if isinstance(want, dict) else {"ok": False, "error": want} for _, want in CASES]
    assert sent == expected
    errors = [m for m in script.planner_requests[1].messages if m.get("role") == "tool" and m.get("is_error")]
    assert len(errors) == len(CASES) - 2  # error results are marked as such for the vendor
    assert result.final_synthesis == "ANSWER from c"


async def test_changes_to_finished_nodes_are_refused_and_reads_still_answer() -> None:
    script = PlannerScript(
        [
            [ToolCall("add_node", {"node_id": "a", "description": "first"})],
            [
                ToolCall("edit_node", {"node_id": "a", "description": "late"}),
                ToolCall("check_task", {"task_id": "a"}),
                ToolCall("list_nodes", {"state": "completed"}),
                ToolCall("history", {"node_id": "a"}),
            ],
        ]
    )
    await PlannerOrchestrator(PlannerConfig(), script.provider, store=MemoryStore()).execute_workflow("tides")

    edited, checked, listed, history = tool_results(script.planner_requests[2])[-4:]
    assert edited == {
        "ok": False,
        "error": "edit_node: cannot edit node 'a': node 'a' is completed (visit 1); only pending nodes",
    }
    assert checked == {
        "ok": True,
        "node_id": "a",
        "state": "COMPLETED",
        "description": "first",
        "dependencies": [],
        "visits": 1,
        "result": "result of a",
    }
    assert [n["node_id"] for n in listed["nodes"]] == ["a"]
    assert history == {
        "ok": True,
        "changes": [
            {
                "turn": 1,
                "tool": "add_node",
                "arguments": {"node_id": "a", "description": "first"},
                "reason": "",
            }
        ],
    }


async def test_an_answer_without_tool_calls_ends_the_planning_with_that_answer() -> None:
    script = PlannerScript(["Tides are caused by the moon; nothing to plan."])
    result = await PlannerOrchestrator(
        PlannerConfig(), script.provider, store=MemoryStore()
    ).execute_workflow("tides")

    assert result.status is TaskStatus.COMPLETED
    assert result.final_synthesis == "Tides are caused by the moon; nothing to plan."
    assert result.metadata["planner"] == {"turns": 1, "stopped_by": "answered", "reason": "", "nodes": {}}
    assert json.loads(json.dumps(result.to_dict()))["status"] == "completed"
