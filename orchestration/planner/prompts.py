"""What the planner, its workers and the synthesis are asked: prompts as data.

Each prompt is ``string.Template`` text (``$task``...; ``$$`` is a literal ``$``), and
:class:`~orchestration.planner.PlannerConfig` ``prompts`` may replace any of them.  The
planner's messages are rebuilt from the run's stored turns, so a resumed run asks
exactly what it asked before (and the recorded answer is used instead of a new call).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from string import Template
from typing import Any

__all__ = ["PROMPTS", "clip", "inputs_text", "render", "result_text", "results_text", "task_message"]

PROMPTS: Mapping[str, str] = {
    "planner": """\
You plan and steer a team of worker agents. With your tools you build the plan as a graph of \
nodes; each node is one worker's task. A node starts as soon as the nodes it depends on have \
completed, and gets their results as its input. After each of your turns the running nodes \
finish, and you are shown what they produced.

- Break the task into focused nodes. Nodes without dependencies run in parallel: aim for \
about $num_agents at first.
- Revise while it runs: split_node a node that has not started into parallel parts, rework a \
result that falls short, add_node what is missing, remove_node what is no longer needed.
- When the completed results together answer the task, call finish: the final answer is then \
written from them.

Limits: at most $max_nodes nodes in all, and $max_turns turns (each of your answers is one turn).""",
    "worker": """\
You are one worker of a team.

Task: $task
Your part ($node_id): $description
$inputs
Do your part and reply with its result only.""",
    "synthesis": """\
Combine the team's results into the final answer to the task.

Task: $task

Results:
$results

Write the final answer: complete, well organised, and true to the results.""",
}


def render(name: str, overrides: Mapping[str, str], **values: Any) -> str:
    """Prompt ``name`` (or its override) with ``values`` filled in."""
    text = overrides.get(name) or PROMPTS[name]
    return Template(text).substitute({k: str(v) for k, v in values.items()})


def clip(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with a note of how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


def result_text(output: Any) -> str:
    """A node's output as text (a join's ``{part: result}`` as one section per part)."""
    if isinstance(output, str):
        return output
    if isinstance(output, Mapping):
        return "\n\n".join(f"[{key}]\n{result_text(value)}" for key, value in output.items())
    return json.dumps(output, ensure_ascii=False, default=str)


def task_message(task: str, context: Mapping[str, Any]) -> str:
    """The planner's first user message: the task, and the run's context if any."""
    lines = [f"Task: {task}"]
    if context:
        lines.append("\nContext:")
        lines += [
            f"- {key}: {json.dumps(value, ensure_ascii=False, default=str)}" for key, value in context.items()
        ]
    lines.append("\nPlan it: add the first nodes.")
    return "\n".join(lines)


def inputs_text(inputs: Sequence[tuple[str, str, str]]) -> str:
    """``$inputs`` of the worker prompt from ``(node id, expectation, result)`` triples."""
    if not inputs:
        return ""
    parts = ["", "Results you build on:"]
    for node_id, expectation, result in inputs:
        need = f" (what you need from it: {expectation})" if expectation else ""
        parts.append(f"\n### {node_id}{need}\n{result}")
    return "\n".join(parts) + "\n"


def results_text(results: Sequence[tuple[str, str, str]]) -> str:
    """``$results`` of the synthesis prompt from ``(node id, description, result)`` triples."""
    if not results:
        return "(no node produced a result)"
    return "\n\n".join(
        f"## {node_id}{': ' + description if description else ''}\n{result}"
        for node_id, description, result in results
    )
