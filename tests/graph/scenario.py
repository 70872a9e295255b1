"""One graph run that uses what resume has to rebuild, shared by the resume tests and their worker.

The graph has a loop through a switch (``draft`` <-> ``review``, three visits), a switch
whose other branch is not taken (``pick`` -> ``left``, ``right`` skipped), and handlers
that change the graph while it runs: ``plan`` splits ``research`` into two parts with a
join and adds ``extra``; ``audit`` reworks ``left -> merge`` through ``left.fix`` (so
``merge`` waits for it).  Every handler's output is a function of its node, visit and
input only, so any run of this graph, interrupted or not, must end in the same
:func:`snapshot`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from orchestration.engine.core import GraphEvent, GraphState, NodeCompleted, decode, is_graph_event
from orchestration.engine.core.events import to_builtins
from orchestration.events import StreamEvent
from orchestration.graph import Edge, Graph, Node, NodeContext, NodeKind, NodeState

Log = Callable[[str, int], None]
SWITCH = NodeKind.SWITCH


def graph() -> Graph:
    """The scenario's graph as built (before its handlers change it)."""
    nodes = [
        Node(id="plan"),
        Node(id="research"),
        Node(id="draft", max_visits=4),
        Node(id="review", kind=SWITCH),
        Node(id="publish"),
        Node(id="pick", kind=SWITCH),
        Node(id="left"),
        Node(id="right"),
        Node(id="audit"),
        Node(id="merge", kind=NodeKind.TERMINAL),
    ]
    pairs = [
        ("plan", "research"),
        ("research", "draft"),
        ("draft", "review"),
        ("review", "draft"),  # the loop's back-edge
        ("review", "publish"),
        ("plan", "pick"),
        ("pick", "left"),
        ("pick", "right"),
        ("left", "audit"),
        ("left", "merge"),
        ("right", "merge"),
        ("audit", "merge"),
        ("publish", "merge"),
    ]
    return Graph(nodes=nodes, edges=[Edge(source=s, target=t) for s, t in pairs], entry="plan")


def digest(value: Any) -> str:
    """A short fingerprint of a JSON-ready value (the same in every process)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def output(ctx: NodeContext) -> dict[str, Any]:
    """What every node returns: who ran, which visit, and a fingerprint of what it saw."""
    return {"node": ctx.node_id, "visit": ctx.visit, "saw": digest(to_builtins(ctx.input))}


def handlers(log: Log, before_return: Log | None = None) -> dict[Any, Any]:
    """The scenario's handlers; ``log(node, visit)`` is called as each one starts.

    ``before_return(node, visit)`` runs after a handler's changes to the graph and before
    it returns (a crash test kills the process there).
    """

    def finish(ctx: NodeContext) -> None:
        if before_return is not None:
            before_return(ctx.node_id, ctx.visit)

    def work(ctx: NodeContext) -> dict[str, Any]:
        log(ctx.node_id, ctx.visit)
        finish(ctx)
        return output(ctx)

    def plan(ctx: NodeContext) -> dict[str, Any]:
        log(ctx.node_id, ctx.visit)
        ctx.graph.split("research", [Node(id="research.a"), Node(id="research.b")], reason="two questions")
        ctx.graph.add_node(
            Node(id="extra"),
            [Edge(source="plan", target="extra"), Edge(source="extra", target="merge")],
            reason="one more source",
        )
        finish(ctx)
        return output(ctx)

    def review(ctx: NodeContext) -> str:
        log(ctx.node_id, ctx.visit)
        finish(ctx)
        return "draft" if ctx.input["visit"] < 3 else "publish"

    def pick(ctx: NodeContext) -> str:
        log(ctx.node_id, ctx.visit)
        finish(ctx)
        return "left"

    def audit(ctx: NodeContext) -> dict[str, Any]:
        log(ctx.node_id, ctx.visit)
        ctx.graph.rework("left", "merge", Node(id="left.fix"), reason="the audit found a gap")
        finish(ctx)
        return output(ctx)

    return {
        NodeKind.TASK: work,
        NodeKind.TERMINAL: work,
        "plan": plan,
        "review": review,
        "pick": pick,
        "audit": audit,
    }


def graph_events(events: Iterable[StreamEvent]) -> list[GraphEvent]:
    """The typed graph events of a stored log."""
    return [decode(e) for e in events if is_graph_event(e)]


def folded(events: Iterable[StreamEvent]) -> GraphState:
    """A fresh fold of a stored log."""
    state = GraphState()
    for event in graph_events(events):
        state.apply(event)
    state.emitted.clear()
    return state


def completed_visits(events: Iterable[StreamEvent]) -> set[tuple[str, int]]:
    """``(node, visit)`` of every visit whose completion is in the log."""
    return {(e.node, e.visit) for e in graph_events(events) if isinstance(e, NodeCompleted)}


def snapshot(state: GraphState) -> dict[str, Any]:
    """The graph, every node's state and outputs per visit, and the run's status, as JSON.

    Two runs of the scenario are the same run when their snapshots are equal.
    """
    nodes = {}
    for node_id, rec in state.nodes.items():
        nodes[node_id] = {
            "spec": to_builtins(rec.spec),
            "state": str(NodeState(rec.state)),
            "inputs": sorted(e.source for e in rec.inn),
            "loops_to": sorted(e.target for e in rec.back),
            "outputs": {str(c.visit): to_builtins(c.output) for c in rec.completions},
            "routes": list(rec.routes) if rec.routes is not None else None,
        }
    return json.loads(json.dumps({"status": state.status, "error": state.error, "nodes": nodes}))
