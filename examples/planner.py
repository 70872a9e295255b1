"""Planner: a model builds the task graph with tool calls and revises it as results come in.

python examples/planner.py
python examples/planner.py --provider openai "Compare three ways to predict tides"

Offline, a scripted planner adds three nodes and splits one into two parts (turn 1),
reworks a result that falls short (turn 2), then finishes; the workers and the synthesis
get short scripted answers.  With --provider, a real model plans (and works) instead.
"""

from __future__ import annotations

import re

from _common import choose_provider, finish, parse_args, print_status, run_example

from orchestration import CompletionRequest, PlannerConfig, PlannerOrchestrator, ScriptedProvider, ToolCall

TURNS = [
    [
        ToolCall("add_node", {"node_id": "methods", "description": "List the main tide-prediction methods"}),
        ToolCall("add_node", {"node_id": "data", "description": "What data each method needs"}),
        ToolCall(
            "add_node",
            {"node_id": "compare", "description": "Compare the methods", "dependencies": ["methods", "data"]},
        ),
        ToolCall(
            "split_node",
            {
                "node_id": "compare",
                "parts": [
                    {"node_id": "compare.accuracy", "description": "Compare their accuracy"},
                    {"node_id": "compare.cost", "description": "Compare their cost"},
                ],
                "reason": "accuracy and cost can be judged in parallel",
            },
        ),
    ],
    [
        ToolCall(
            "rework",
            {
                "source": "methods",
                "consumer": "compare.accuracy",
                "node_id": "methods.sources",
                "description": "Add a source for each method",
                "reason": "the accuracy comparison needs sources",
            },
        )
    ],
    [ToolCall("finish", {"reason": "the comparison is complete"})],
]


def offline(request: CompletionRequest) -> object:
    """The scripted planner by turn; workers and the synthesis by prompt."""
    if request.tools:
        turn = sum(1 for m in request.messages if m.get("role") == "assistant")
        return TURNS[min(turn, len(TURNS) - 1)]
    part = re.search(r"Your part \(([^)]+)\): (.*)", request.prompt_text)
    if part:
        return f"{part.group(2)}: done, with three points."
    return "Harmonic analysis is the most accurate; neural models need the most data."


async def main() -> int:
    args = parse_args(__doc__, "Compare three ways to predict tides")
    provider = choose_provider(args, offline=lambda: ScriptedProvider(offline))

    config = PlannerConfig(max_nodes=8, max_planning_turns=4, primary_model=args.model)
    result = await PlannerOrchestrator(config, provider).execute_workflow(args.task)

    print_status(result)
    planner = result.metadata["planner"]
    print(f"{planner['turns']} planning turns; the plan as it ended:")
    for node_id, node in planner["nodes"].items():
        after = f" <- {', '.join(node['dependencies'])}" if node["dependencies"] else ""
        print(f"  {node_id} ({node['state']}, {node['visits']} visit(s)){after}")
    return finish(result, cost_by_agent=True)


if __name__ == "__main__":
    raise SystemExit(run_example(main))
