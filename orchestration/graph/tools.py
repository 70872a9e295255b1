"""Seed 000's twelve graph tools, for agents and planner models: ``(board, args) -> dict``.

```python
from orchestration import MemoryStore
from orchestration.graph.tools import add_node, finish_task, get_task, open_board

board = open_board(MemoryStore(), "demo")
add_node(board, {"node_id": "analyze"})
add_node(board, {"node_id": "design", "dependencies": ["analyze"]})
task = get_task(board, {"agent_id": "agent-001"})["task"]  # analyze: critical path first
finish_task(board, {"task_id": task["node_id"], "agent_id": "agent-001", "success": True})
```

Each tool takes a JSON-ready ``args`` dict, validated against the tool's JSON schema
(``tool.schema``, and all of them in :data:`TOOLS`, ready to hand a model as tool
definitions), and returns a JSON-ready dict.  A refused call returns ``{"ok": False,
"error": "..."}`` with one line saying what to fix, never raises: a model reads the
error and tries again.  Every change is an event on the board with its ``reason``.

Structure: ``add_node``, ``remove_node``, ``split_node``, ``refine_node``,
``edit_node``.  Execution: ``get_task`` (claim the best READY node under a lease; its
``upstream`` view lists each contributing ancestor separately with distance,
expectation, promise and what it delivered), ``finish_task`` (deliver; only the agent
holding the claim may).  Feedback: ``rework``.  Cancellation: ``check_task`` (should
the agent go on?).  Monitoring: ``check_timeouts`` (requeue lapsed claims).  Query:
``list_nodes``, ``history``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import msgspec

from ..engine.core import Contract, Edge, Node, NodeKind, NodeState
from ..engine.core.context import attributed_context, resolve
from ..engine.core.events import (
    EdgeAdded,
    GraphEvent,
    NodeAdded,
    NodeCompleted,
    NodeEdited,
    NodeFailed,
    NodeRemoved,
    NodeRequeued,
    NodeSplit,
    NodeStarted,
    ReworkInserted,
)
from ..engine.core.scheduler import schedule
from ..engine.core.state import GraphState
from ..errors import OrchestrationError
from ..schemas import struct_schema
from .board import Board, open_board

__all__ = [
    "TOOLS",
    "add_node",
    "check_task",
    "check_timeouts",
    "edit_node",
    "finish_task",
    "get_task",
    "history",
    "list_nodes",
    "open_board",
    "refine_node",
    "remove_node",
    "rework",
    "split_node",
]

A = TypeVar("A", bound=msgspec.Struct)
Tool = Callable[[Board, dict[str, Any]], dict[str, Any]]
DEFAULT_LEASE_SECONDS = 600.0


class _Args(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every tool's arguments."""


class Expectation(_Args):
    """The contract on the edge from ``node_id`` (a dependency) to the new node."""

    node_id: str
    expectation: str = ""
    promise: str = ""


class AddNodeArgs(_Args):
    node_id: str
    description: str = ""
    dependencies: list[str] = []
    expectations: list[Expectation] = []
    priority: int = 0
    timeout: float | None = None
    reason: str = ""


class RemoveNodeArgs(_Args):
    node_id: str
    cascade: bool = False
    reason: str = ""


class Part(_Args):
    node_id: str
    description: str = ""


class SplitNodeArgs(_Args):
    node_id: str
    parts: list[Part]
    join_id: str | None = None
    reason: str = ""


class RefineNodeArgs(_Args):
    node_id: str
    depends_on: str
    expectation: str = ""
    promise: str = ""
    reason: str = ""


class EditNodeArgs(_Args):
    node_id: str
    description: str | None = None
    priority: int | None = None
    timeout: float | None = None
    reason: str = ""


class GetTaskArgs(_Args):
    agent_id: str
    lease_seconds: float = DEFAULT_LEASE_SECONDS


class FinishTaskArgs(_Args):
    task_id: str
    agent_id: str | None = None
    success: bool = True
    output: Any = None
    summary: str | None = None
    critical: dict[str, Any] | None = None
    artifacts: dict[str, Any] | None = None
    error: str = ""


class ReworkArgs(_Args):
    source: str
    consumer: str
    node_id: str
    description: str = ""
    reason: str = ""


class CheckTaskArgs(_Args):
    task_id: str
    agent_id: str | None = None


class CheckTimeoutsArgs(_Args):
    pass


class ListNodesArgs(_Args):
    state: Literal["pending", "ready", "active", "completed", "failed", "skipped", "cancelled"] | None = None


class HistoryArgs(_Args):
    node_id: str | None = None
    limit: int = 100


def _tool(args_type: type[A], description: str) -> Callable[[Callable[[Board, A], dict[str, Any]]], Tool]:
    """Make ``fn(board, typed_args)`` a tool over plain dicts, with its JSON schema."""

    def wrap(fn: Callable[[Board, A], dict[str, Any]]) -> Tool:
        @functools.wraps(fn)
        def tool(board: Board, args: dict[str, Any]) -> dict[str, Any]:
            try:
                typed = msgspec.convert(args if args is not None else {}, args_type)
            except msgspec.ValidationError as error:
                return {"ok": False, "error": f"{fn.__name__}: bad arguments: {error}"}
            try:
                return {"ok": True, **fn(board, typed)}
            except (OrchestrationError, ValueError, KeyError) as error:
                message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
                return {"ok": False, "error": f"{fn.__name__}: {message}"}

        tool.schema = {  # type: ignore[attr-defined]
            "name": fn.__name__,
            "description": description,
            "parameters": struct_schema(args_type),
        }
        return tool

    return wrap


def _node(state: GraphState, node_id: str) -> Node:
    if node_id not in state.nodes:
        known = ", ".join(sorted(state.nodes)[:20]) or "none yet"
        raise KeyError(f"no node {node_id!r} on the board (nodes: {known})")
    return state.nodes[node_id].spec


def _view(state: GraphState, node_id: str) -> dict[str, Any]:
    rec = state.nodes[node_id]
    return {
        "node_id": node_id,
        "state": NodeState(rec.state).name,
        "description": rec.spec.description,
        "dependencies": [e.source for e in rec.inn],
        "visit": rec.visits,
    }


# -- structure --------------------------------------------------------------------------


@_tool(AddNodeArgs, "Add a task node, optionally depending on existing nodes with contracts on those edges.")
def add_node(board: Board, args: AddNodeArgs) -> dict[str, Any]:
    """Add a node; ``dependencies`` become edges, ``expectations`` their contracts."""
    contracts = {e.node_id: Contract(expectation=e.expectation, promise=e.promise) for e in args.expectations}
    unknown = sorted(set(contracts) - set(args.dependencies))
    if unknown:
        raise ValueError(f"expectations name {unknown}, which are not in dependencies")
    node = Node(id=args.node_id, description=args.description, priority=args.priority, timeout=args.timeout)
    edges = tuple(Edge(source=d, target=args.node_id, contract=contracts.get(d)) for d in args.dependencies)
    board.change(lambda state: NodeAdded(node, edges, args.reason))
    return _view(board.state, args.node_id)


@_tool(RemoveNodeArgs, "Remove a node that is not running (with cascade, every descendant too).")
def remove_node(board: Board, args: RemoveNodeArgs) -> dict[str, Any]:
    """Remove a node (and with ``cascade`` its descendants); never an ACTIVE one."""

    def build(state: GraphState) -> GraphEvent:
        _node(state, args.node_id)
        ids = (
            tuple(rec.spec.id for rec in state.descendants(args.node_id)) if args.cascade else (args.node_id,)
        )
        return NodeRemoved(ids, args.reason)

    event = board.change(build)
    assert isinstance(event, NodeRemoved)
    return {"removed": list(event.nodes)}


@_tool(SplitNodeArgs, "Replace a pending node by parallel parts that feed a join node.")
def split_node(board: Board, args: SplitNodeArgs) -> dict[str, Any]:
    """Split a pending node into ``parts`` joined by ``join_id`` (default ``<id>.join``)."""
    if not args.parts:
        raise ValueError("parts must list at least one part")
    parts = tuple(Node(id=p.node_id, description=p.description) for p in args.parts)
    join = Node(id=args.join_id or f"{args.node_id}.join", kind=NodeKind.AGGREGATE)
    board.change(lambda state: NodeSplit(args.node_id, parts, join, args.reason))
    return {"parts": [p.id for p in parts], "join": join.id}


@_tool(RefineNodeArgs, "Make a node that has not started also depend on another node.")
def refine_node(board: Board, args: RefineNodeArgs) -> dict[str, Any]:
    """Add the dependency ``depends_on -> node_id`` with an optional contract."""
    contract = (
        Contract(expectation=args.expectation, promise=args.promise)
        if args.expectation or args.promise
        else None
    )
    edge = Edge(source=args.depends_on, target=args.node_id, contract=contract)
    board.change(lambda state: EdgeAdded(edge, args.reason))
    return _view(board.state, args.node_id)


@_tool(EditNodeArgs, "Change the description, priority or timeout of a node that has not started.")
def edit_node(board: Board, args: EditNodeArgs) -> dict[str, Any]:
    """Edit a pending node's fields (the others stay)."""

    def build(state: GraphState) -> GraphEvent:
        old = _node(state, args.node_id)
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("description", args.description),
                ("priority", args.priority),
                ("timeout", args.timeout),
            )
            if value is not None
        }
        return NodeEdited(msgspec.structs.replace(old, **changes), args.reason)

    board.change(build)
    return _view(board.state, args.node_id)


# -- execution --------------------------------------------------------------------------


@_tool(
    GetTaskArgs, "Claim the most urgent ready task (critical path first) and see what its upstream delivered."
)
def get_task(board: Board, args: GetTaskArgs) -> dict[str, Any]:
    """Claim the best READY node for ``agent_id`` under a lease; ``task`` is None if none is ready."""
    if not args.lease_seconds > 0:
        raise ValueError("lease_seconds must be > 0")

    def build(state: GraphState) -> GraphEvent:
        ready = schedule(state, 1)
        if not ready:
            raise _NothingReady(state)
        rec = state.nodes[ready[0]]
        return NodeStarted(ready[0], rec.visits + 1, args.agent_id, board.clock() + args.lease_seconds)

    try:
        event = board.change(build)
    except _NothingReady as nothing:
        return {"task": None, "reason": nothing.reason()}
    assert isinstance(event, NodeStarted)
    state = board.state
    task = _view(state, event.node)
    task["lease_until"] = event.lease_until
    task["upstream"] = _upstream(state, event.node)
    return {"task": task}


class _NothingReady(Exception):
    def __init__(self, state: GraphState) -> None:
        super().__init__("nothing is ready")
        self.counts = {s.name.lower(): n for s, n in _counts(state).items() if n}

    def reason(self) -> str:
        waiting = self.counts.get("pending", 0) + self.counts.get("active", 0)
        if not self.counts:
            return "the board is empty: add nodes first"
        if waiting:
            return f"no task is ready yet ({self.counts}); try again after running tasks finish"
        return f"every task is finished ({self.counts})"


def _counts(state: GraphState) -> dict[NodeState, int]:
    counts = dict.fromkeys(NodeState, 0)
    for rec in state.nodes.values():
        counts[NodeState(rec.state)] += 1
    return counts


def _upstream(state: GraphState, node_id: str) -> list[dict[str, Any]]:
    """Seed 000's upstream view: one entry per contributing ancestor, never merged."""
    entries = attributed_context(state, node_id).upstream()
    for entry in entries:
        entry["state"] = NodeState(state.nodes[entry["node_id"]].state).name
        delivered = entry["delivered"]
        refs = delivered.pop("artifacts", {}) or {}
        output = resolve(state, refs["output"]) if "output" in refs else None
        named = {name: resolve(state, ref) for name, ref in refs.items() if name != "output"}
        if output is not None:
            delivered["output"] = output
        if named:
            delivered["artifacts"] = named
    return entries


@_tool(
    FinishTaskArgs,
    "Deliver a claimed task: its output, a summary, critical facts and artifacts, or a failure.",
)
def finish_task(board: Board, args: FinishTaskArgs) -> dict[str, Any]:
    """Complete (or with ``success=False`` fail) a claimed node; only its claimant may."""

    def build(state: GraphState) -> GraphEvent:
        _node(state, args.task_id)
        if state.state_of(args.task_id) != NodeState.ACTIVE:
            raise ValueError(
                f"task {args.task_id!r} is {state.state_of(args.task_id).name}, not claimed; claim it with get_task"
            )
        claim = board.claims.get(args.task_id)
        # An agent that names itself must be the claimant; a call without agent_id is
        # trusted, as in seed 000's quick start (a planner closing a task for its worker).
        if claim is not None and args.agent_id is not None and claim.agent and claim.agent != args.agent_id:
            raise ValueError(f"task {args.task_id!r} is claimed by {claim.agent!r}, not {args.agent_id!r}")
        visit = state.nodes[args.task_id].visits
        if not args.success:
            return NodeFailed(args.task_id, visit, args.error or "the agent reported failure", "AgentFailure")
        return NodeCompleted(args.task_id, visit, args.output, args.summary, args.critical, args.artifacts)

    board.change(build)
    return _view(board.state, args.task_id)


@_tool(
    ReworkArgs, "Insert a corrective node between a completed node and its consumer, which then runs again."
)
def rework(board: Board, args: ReworkArgs) -> dict[str, Any]:
    """Insert ``node_id`` between ``source`` (completed) and ``consumer``."""
    node = Node(id=args.node_id, description=args.description)
    board.change(lambda state: ReworkInserted(args.source, args.consumer, node, args.reason))
    return _view(board.state, args.node_id)


# -- cancellation and monitoring -----------------------------------------------------------


@_tool(
    CheckTaskArgs,
    "Should the agent working on a task go on? (false once it was requeued, removed or cancelled)",
)
def check_task(board: Board, args: CheckTaskArgs) -> dict[str, Any]:
    """Whether ``agent_id`` still holds ``task_id`` (pull-style cancellation)."""
    state = board.refresh()
    if args.task_id not in state.nodes:
        return {
            "task_id": args.task_id,
            "state": "REMOVED",
            "proceed": False,
            "reason": "the task was removed",
        }
    node_state = state.state_of(args.task_id)
    claim = board.claims.get(args.task_id)
    proceed = node_state == NodeState.ACTIVE and (
        args.agent_id is None or claim is None or claim.agent in ("", args.agent_id)
    )
    reason = (
        ""
        if proceed
        else f"the task is {node_state.name}" + (f", claimed by {claim.agent!r}" if claim else "")
    )
    return {"task_id": args.task_id, "state": node_state.name, "proceed": proceed, "reason": reason}


@_tool(CheckTimeoutsArgs, "Requeue tasks whose claim lapsed so other agents can take them.")
def check_timeouts(board: Board, args: CheckTimeoutsArgs) -> dict[str, Any]:
    """Requeue every ACTIVE node whose lease ended (returns their ids)."""
    requeued: list[str] = []
    while True:
        now = board.clock()
        state = board.refresh()
        lapsed = sorted(
            node
            for node, claim in board.claims.items()
            if claim.lease_until is not None
            and claim.lease_until <= now
            and state.state_of(node) == NodeState.ACTIVE
        )
        if not lapsed:
            return {"requeued": requeued}
        node = lapsed[0]

        def build(state: GraphState, node: str = node) -> GraphEvent:
            claim = board.claims.get(node)
            if claim is None or claim.lease_until is None or claim.lease_until > board.clock():
                raise _AlreadyHandled
            return NodeRequeued(node, claim.visit, f"lease of {claim.agent!r} lapsed")

        try:
            board.change(build)
            requeued.append(node)
        except _AlreadyHandled:
            continue


class _AlreadyHandled(Exception):
    """Another process requeued (or the agent finished) first."""


@_tool(ListNodesArgs, "List the board's nodes with their states and dependencies.")
def list_nodes(board: Board, args: ListNodesArgs) -> dict[str, Any]:
    """Every node (or those in ``state``), in the order added."""
    state = board.refresh()
    nodes = [_view(state, node_id) for node_id in state.nodes]
    if args.state is not None:
        nodes = [n for n in nodes if n["state"] == args.state.upper()]
    for item in nodes:
        claim = board.claims.get(item["node_id"])
        if claim is not None:
            item["agent_id"] = claim.agent
    return {"nodes": nodes}


@_tool(HistoryArgs, "The board's change log (who changed what and why), newest last.")
def history(board: Board, args: HistoryArgs) -> dict[str, Any]:
    """The events (optionally of one node), at most ``limit``, newest last."""
    if args.limit < 1:
        raise ValueError("limit must be at least 1")
    board.refresh()
    items = []
    for seq, timestamp, event in board.log:
        if args.node_id is not None and args.node_id not in _touches(event):
            continue
        fields = msgspec.to_builtins(event)
        fields.pop("output", None)  # outputs are read with get_task's upstream view
        items.append({"seq": seq, "timestamp": timestamp, **fields})
    return {"events": items[-args.limit :]}


def _touches(event: GraphEvent) -> set[str]:
    """The ids of the nodes an event is about."""
    ids: set[str] = set()
    for name in ("node", "source", "target", "consumer", "join"):
        value = getattr(event, name, None)
        if isinstance(value, str):
            ids.add(value)
        elif isinstance(value, Node):
            ids.add(value.id)
    ids.update(getattr(event, "nodes", ()) or ())
    ids.update(part.id for part in getattr(event, "parts", ()) or ())
    edge = getattr(event, "edge", None)
    if isinstance(edge, Edge):
        ids.update((edge.source, edge.target))
    for edge in getattr(event, "edges", ()) or ():
        ids.update((edge.source, edge.target))
    return ids


TOOLS: tuple[Tool, ...] = (
    add_node,
    remove_node,
    split_node,
    refine_node,
    edit_node,
    get_task,
    finish_task,
    rework,
    check_task,
    check_timeouts,
    list_nodes,
    history,
)
