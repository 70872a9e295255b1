"""The planner's tools as the model sees them: names, descriptions, argument schemas.

The arguments are those of seed 000's graph tools (:mod:`orchestration.graph.tools`)
where they mean the same; ``rework`` (its ``consumer`` may be left out), ``check_task``
(no agent) and ``finish`` are the planner's own.
"""

from __future__ import annotations

import msgspec

from ..graph.tools import (
    AddNodeArgs,
    EditNodeArgs,
    HistoryArgs,
    ListNodesArgs,
    RefineNodeArgs,
    RemoveNodeArgs,
    SplitNodeArgs,
)
from ..schemas import struct_schema
from ..toolcalls import ToolSpec

__all__ = ["ARGUMENTS", "TOOL_SPECS", "CheckTaskArgs", "FinishArgs", "ReworkArgs"]


class _Args(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of the planner-only tools' arguments."""


class ReworkArgs(_Args):
    source: str
    node_id: str
    description: str = ""
    consumer: str | None = None
    reason: str = ""


class CheckTaskArgs(_Args):
    task_id: str


class FinishArgs(_Args):
    reason: str = ""


#: Each tool's arguments type and description, in the order offered.
ARGUMENTS: dict[str, tuple[type[msgspec.Struct], str]] = {
    "add_node": (
        AddNodeArgs,
        "Add a task for a worker. It starts as soon as its dependencies completed, with their "
        "results as its input; `expectations` say what it needs from each dependency.",
    ),
    "split_node": (
        SplitNodeArgs,
        "Replace a node that has not started by parallel parts; a join node (join_id, default "
        "<node_id>.join) collects their results for the nodes that depended on it.",
    ),
    "rework": (
        ReworkArgs,
        "A completed result falls short: add a corrective node `node_id` that gets `source`'s "
        "result and the instructions in `description`. `consumer`, a node that used the result, "
        "then runs again on the corrected one; without a consumer the correction replaces "
        "`source`'s result in the final answer.",
    ),
    "refine_node": (
        RefineNodeArgs,
        "Make a node that has not started also wait for, and use, another's result.",
    ),
    "edit_node": (
        EditNodeArgs,
        "Change the description, priority or timeout of a node that has not started.",
    ),
    "remove_node": (
        RemoveNodeArgs,
        "Remove a node that is not running (with cascade, every node that depends on it too).",
    ),
    "list_nodes": (ListNodesArgs, "List the nodes (or those in one state) with their dependencies."),
    "check_task": (CheckTaskArgs, "One node's state and its result so far."),
    "history": (HistoryArgs, "The changes made to the plan so far, with their reasons, oldest first."),
    "finish": (
        FinishArgs,
        "Stop planning. Once the nodes still running finish, the final answer is written from the results.",
    ),
}

#: The tools offered to the planner model, in a stable order.
TOOL_SPECS: tuple[ToolSpec, ...] = tuple(
    ToolSpec(name=name, description=description, parameters=struct_schema(args))
    for name, (args, description) in ARGUMENTS.items()
)
