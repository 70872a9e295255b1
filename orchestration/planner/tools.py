"""The planner model's tools: seed 000's graph tools, as changes to the running graph.

:class:`PlannerTools` answers the tool calls of one planning turn.  Each call is checked
(its arguments against the tool's schema, the nodes it names, the node cap) and, when it
is a change, made through the planner node's
:class:`~orchestration.graph.GraphHandle`, so it is validated by the graph core and
recorded as an event with its ``reason``.  Whatever is wrong comes back to the model as
an error result of that call (``{"ok": false, "error": "..."}``, one line saying what to
fix), never as an exception: the run goes on and the model corrects itself next turn.

The tools: ``add_node``, ``split_node``, ``rework``, ``refine_node``, ``edit_node``,
``remove_node`` (changes), ``list_nodes``, ``check_task``, ``history`` (reading) and
``finish`` (stop planning).  Seed 000's agent-side tools (``get_task``,
``finish_task``, ``check_timeouts``) are not offered: workers here are run for the
planner, each node by its own worker.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..engine.core import Contract, Edge, GraphState, Node, NodeKind, NodeState
from ..errors import GraphError, ToolArgumentsError
from ..graph import GraphHandle
from ..graph.tools import (
    AddNodeArgs,
    EditNodeArgs,
    HistoryArgs,
    ListNodesArgs,
    RefineNodeArgs,
    RemoveNodeArgs,
    SplitNodeArgs,
)
from ..toolcalls import ToolCall
from .specs import ARGUMENTS, CheckTaskArgs, FinishArgs, ReworkArgs

__all__ = ["FIXED_NODES", "JOIN_HANDLER", "WORKER_HANDLER", "Outcome", "PlannerTools"]

#: The planner loop's own nodes: the model can neither name nor change them.
FIXED_NODES = ("planner", "observe", "decide", "synthesizer")
#: Handler keys of the nodes the planner adds.
WORKER_HANDLER = "worker"
JOIN_HANDLER = "join"

_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


_CHANGES = frozenset({"add_node", "split_node", "rework", "refine_node", "edit_node", "remove_node"})


@dataclass
class Outcome:
    """The answer to one tool call: what the model is sent, and what it did to the plan."""

    call: ToolCall
    content: dict[str, Any]
    added: tuple[str, ...] = ()
    change: dict[str, Any] | None = None
    stop: str | None = None

    @property
    def ok(self) -> bool:
        """True when the call did what it asked."""
        return bool(self.content.get("ok"))

    def message(self) -> dict[str, Any]:
        """The tool message that answers the call."""
        return self.call.result(self.content, error=not self.ok)


class _Refused(Exception):
    """A call the planner must correct (its message goes back to the model)."""


@dataclass
class PlannerTools:
    """Answers one turn's tool calls against the running graph (see the module docstring).

    Args:
        state: the run's graph state now.
        graph: the planner node's handle (changes are recorded as the planner's).
        max_nodes: the node cap over the whole run; ``added`` nodes were added before.
        timeout: each new node's time limit when the planner gives none.
        history: the changes of earlier turns (``history`` lists them, then this turn's).
        summarize: a node's result as the planner is shown it.
    """

    state: Callable[[], GraphState]
    graph: GraphHandle
    max_nodes: int
    added: int
    timeout: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    summarize: Callable[[Any], str] = str
    turn: int = 1
    stopped: str | None = None

    def apply(self, calls: Sequence[ToolCall]) -> list[Outcome]:
        """Answer ``calls`` in order (no await: the turn's changes are stored together)."""
        return [self._one(call) for call in calls]

    def _one(self, call: ToolCall) -> Outcome:
        name = call.name
        entry = ARGUMENTS.get(name)
        if entry is None:
            offered = ", ".join(ARGUMENTS)
            hint = (
                " (workers are run for you: add nodes instead)" if name in ("get_task", "finish_task") else ""
            )
            return self._error(call, f"there is no tool {name!r}{hint}; the tools are: {offered}")
        args_type = entry[0]
        try:
            raw = call.arguments
        except ToolArgumentsError as error:
            return self._error(call, f"{name}: {'; '.join(error.errors)}; call it again with a JSON object")
        try:
            args = msgspec.convert(raw, args_type)
        except msgspec.ValidationError as error:
            return self._error(call, f"{name}: bad arguments: {error}")
        if name in _CHANGES and self.stopped is not None:
            return self._error(call, f"{name}: not applied: planning has stopped ({self.stopped})")
        try:
            outcome: Outcome = getattr(self, f"_{name}")(call, args)
        except (_Refused, GraphError) as error:
            return self._error(call, f"{name}: {error}")
        return outcome

    def _error(self, call: ToolCall, message: str) -> Outcome:
        return Outcome(call, {"ok": False, "error": message})

    # -- checks -----------------------------------------------------------------------

    def _worker(self, node_id: str, what: str = "node") -> Any:
        if node_id in FIXED_NODES:
            raise _Refused(f"{node_id!r} is the planner's own node; name one of the worker nodes")
        rec = self.state().nodes.get(node_id)
        if rec is None:
            known = ", ".join(self._workers()[:20]) or "none yet: add one"
            raise _Refused(f"there is no {what} {node_id!r} (nodes: {known})")
        return rec

    def _workers(self) -> list[str]:
        return [node_id for node_id in self.state().nodes if node_id not in FIXED_NODES]

    def _new_ids(self, ids: Sequence[str]) -> None:
        for node_id in ids:
            if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
                raise _Refused(
                    f"node id {node_id!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-'"
                )
            if node_id in FIXED_NODES:
                raise _Refused(f"{node_id!r} is the planner's own node; choose another id")
            if node_id in self.state().nodes:
                raise _Refused(f"there is already a node {node_id!r}; choose another id")
        if len(set(ids)) != len(ids):
            raise _Refused(f"the ids {list(ids)} repeat; give each node its own id")

    def _room(self, count: int, call: ToolCall) -> Outcome | None:
        """None when ``count`` more nodes fit the cap; else the call's refusal, which stops planning."""
        if self.added + count <= self.max_nodes:
            return None
        self.stopped = (
            f"the node cap max_nodes={self.max_nodes} was reached: {self.added} nodes were added "
            f"and {call.name} asked for {count} more"
        )
        return Outcome(
            call, {"ok": False, "error": f"{call.name}: not applied: {self.stopped}"}, stop="max_nodes"
        )

    def _made(self, call: ToolCall, content: dict[str, Any], added: Sequence[str], reason: str) -> Outcome:
        self.added += len(added)
        change = {"turn": self.turn, "tool": call.name, "arguments": call.arguments, "reason": reason}
        self.history.append(change)
        return Outcome(call, {"ok": True, **content}, tuple(added), change)

    def _node(self, node_id: str, description: str, timeout: float | None = None, priority: int = 0) -> Node:
        return Node(
            id=node_id,
            description=description,
            handler=WORKER_HANDLER,
            timeout=timeout if timeout is not None else self.timeout,
            priority=priority,
        )

    # -- changes ----------------------------------------------------------------------

    def _add_node(self, call: ToolCall, args: AddNodeArgs) -> Outcome:
        self._new_ids([args.node_id])
        for dependency in args.dependencies:
            self._worker(dependency, "dependency")
        contracts = {
            e.node_id: Contract(expectation=e.expectation, promise=e.promise) for e in args.expectations
        }
        stray = sorted(set(contracts) - set(args.dependencies))
        if stray:
            raise _Refused(f"expectations name {stray}, which are not among the dependencies")
        if args.timeout is not None and not args.timeout > 0:
            raise _Refused("timeout must be a number of seconds > 0")
        full = self._room(1, call)
        if full is not None:
            return full
        node = self._node(args.node_id, args.description, args.timeout, args.priority)
        edges = [Edge(source=d, target=node.id, contract=contracts.get(d)) for d in args.dependencies]
        self.graph.add_node(node, edges, reason=args.reason)
        content = {"node_id": node.id, "dependencies": list(args.dependencies)}
        return self._made(call, content, [node.id], args.reason)

    def _split_node(self, call: ToolCall, args: SplitNodeArgs) -> Outcome:
        rec = self._worker(args.node_id)
        if not args.parts:
            raise _Refused("parts must list at least one part")
        join_id = args.join_id or f"{args.node_id}.join"
        self._new_ids([*(p.node_id for p in args.parts), join_id])
        full = self._room(len(args.parts) + 1, call)
        if full is not None:
            return full
        parts = [self._node(p.node_id, p.description) for p in args.parts]
        join = Node(
            id=join_id, kind=NodeKind.AGGREGATE, handler=JOIN_HANDLER, description=rec.spec.description
        )
        self.graph.split(args.node_id, parts, join, reason=args.reason)
        content = {"parts": [p.id for p in parts], "join": join_id}
        return self._made(call, content, [*content["parts"], join_id], args.reason)

    def _rework(self, call: ToolCall, args: ReworkArgs) -> Outcome:
        source = self._worker(args.source, "source")
        if args.consumer is not None:
            self._worker(args.consumer, "consumer")
        self._new_ids([args.node_id])
        if source.state != NodeState.COMPLETED:
            raise _Refused(
                f"the source {args.source!r} is {NodeState(source.state).name}; rework takes a COMPLETED result"
            )
        full = self._room(1, call)
        if full is not None:
            return full
        node = self._node(args.node_id, args.description)
        if args.consumer is None:
            self.graph.add_node(node, [Edge(source=args.source, target=node.id)], reason=args.reason)
        else:
            self.graph.rework(args.source, args.consumer, node, reason=args.reason)
        content = {"node_id": node.id, "source": args.source, "consumer": args.consumer}
        return self._made(call, content, [node.id], args.reason)

    def _refine_node(self, call: ToolCall, args: RefineNodeArgs) -> Outcome:
        self._worker(args.node_id)
        self._worker(args.depends_on, "dependency")
        contract = (
            Contract(expectation=args.expectation, promise=args.promise)
            if args.expectation or args.promise
            else None
        )
        self.graph.refine(args.node_id, args.depends_on, contract=contract, reason=args.reason)
        return self._made(call, {"node_id": args.node_id, "depends_on": args.depends_on}, [], args.reason)

    def _edit_node(self, call: ToolCall, args: EditNodeArgs) -> Outcome:
        rec = self._worker(args.node_id)
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("description", args.description),
                ("priority", args.priority),
                ("timeout", args.timeout),
            )
            if value is not None
        }
        if not changes:
            raise _Refused("say what to change: description, priority or timeout")
        if "timeout" in changes and not changes["timeout"] > 0:
            raise _Refused("timeout must be a number of seconds > 0")
        self.graph.edit_node(msgspec.structs.replace(rec.spec, **changes), reason=args.reason)
        return self._made(call, {"node_id": args.node_id, "changed": sorted(changes)}, [], args.reason)

    def _remove_node(self, call: ToolCall, args: RemoveNodeArgs) -> Outcome:
        self._worker(args.node_id)
        before = list(self.state().nodes)
        self.graph.remove_node(args.node_id, cascade=args.cascade, reason=args.reason)
        now = self.state().nodes
        removed = [node_id for node_id in before if node_id not in now]
        return self._made(call, {"removed": removed}, [], args.reason)

    # -- reading and finishing --------------------------------------------------------

    def view(self, node_id: str) -> dict[str, Any]:
        """What the planner is told of one node."""
        rec = self.state().nodes[node_id]
        item: dict[str, Any] = {
            "node_id": node_id,
            "state": NodeState(rec.state).name,
            "description": rec.spec.description,
            "dependencies": [e.source for e in rec.inn],
            "visits": rec.visits,
        }
        if rec.error:
            item["error"] = rec.error
        return item

    def _list_nodes(self, call: ToolCall, args: ListNodesArgs) -> Outcome:
        nodes = [self.view(node_id) for node_id in self._workers()]
        if args.state is not None:
            nodes = [n for n in nodes if n["state"] == args.state.upper()]
        return Outcome(call, {"ok": True, "nodes": nodes})

    def _check_task(self, call: ToolCall, args: CheckTaskArgs) -> Outcome:
        rec = self._worker(args.task_id)
        item = self.view(args.task_id)
        if rec.completions:
            item["result"] = self.summarize(rec.completions[-1].output)
        return Outcome(call, {"ok": True, **item})

    def _history(self, call: ToolCall, args: HistoryArgs) -> Outcome:
        if args.limit < 1:
            raise _Refused("limit must be at least 1")
        changes = self.history
        if args.node_id is not None:
            changes = [c for c in changes if _mentions(c.get("arguments"), args.node_id)]
        return Outcome(call, {"ok": True, "changes": changes[-args.limit :]})

    def _finish(self, call: ToolCall, args: FinishArgs) -> Outcome:
        if self.stopped is None:
            self.stopped = f"the planner finished{': ' + args.reason if args.reason else ''}"
        note = "planning stops; the final answer is written once the running nodes finish"
        return Outcome(call, {"ok": True, "finished": True, "note": note}, stop="finish")


def _mentions(value: Any, node_id: str) -> bool:
    if isinstance(value, str):
        return value == node_id
    if isinstance(value, Mapping):
        return any(_mentions(v, node_id) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, node_id) for v in value)
    return False
