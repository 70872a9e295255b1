"""Mermaid views of graphs: what was planned, and what ran.

``planned(graph)`` draws a graph as built.  ``ran(events)`` draws a stored run: each
node with its state and visit count, routes not taken dotted, nodes that changes added
while it ran marked and listed (kind, node, reason) in comments, and for orchestrator
runs (decompose -> subtasks -> synthesize) their plan with each subtask's status.
Paste the text into any Mermaid renderer; ``orchestrate show RUN_ID --mermaid`` prints it.

Labels are escaped (a model-written id cannot break out of its node), and node names in
the text are generated (``n0``, ``n1``...), so any id is safe to draw.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..engine.core import Edge, Node, NodeKind, NodeState
from ..engine.core.events import (
    EdgeAdded,
    GraphEvent,
    NodeAdded,
    NodeEdited,
    NodeRemoved,
    NodeSplit,
    ReworkInserted,
    RouteChosen,
    decode,
    is_graph_event,
)
from ..engine.core.state import GraphState

if TYPE_CHECKING:
    from ..events import StreamEvent
    from . import Graph

__all__ = ["planned", "ran"]

_SHAPES = {
    NodeKind.TASK: ('["', '"]'),
    NodeKind.SWITCH: ('{"', '"}'),
    NodeKind.AGGREGATE: ('[["', '"]]'),
    NodeKind.TERMINAL: ('(["', '"])'),
}
_CLASSES = (
    "classDef completed fill:#d4edda,stroke:#2e7d32",
    "classDef failed fill:#f8d7da,stroke:#c62828",
    "classDef active fill:#d0e4ff,stroke:#1565c0",
    "classDef ready fill:#fff3cd,stroke:#b8860b",
    "classDef skipped fill:#eeeeee,stroke:#9e9e9e,stroke-dasharray:4 3,color:#777",
    "classDef cancelled fill:#eeeeee,stroke:#616161",
    "classDef pending fill:#ffffff,stroke:#9e9e9e",
    "classDef added stroke-width:3px",
)
_CHANGES = (NodeAdded, NodeEdited, NodeRemoved, EdgeAdded, NodeSplit, ReworkInserted)


def _escape(text: str, limit: int = 80) -> str:
    """Text safe inside a quoted Mermaid label (entity codes for what could end it)."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return (
        text.replace("&", "#amp;")
        .replace("%", "#37;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("|", "#124;")
        .replace("`", "#96;")
    )


class _Names:
    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def __call__(self, node_id: str) -> str:
        name = self._names.get(node_id)
        if name is None:
            name = self._names[node_id] = f"n{len(self._names)}"
        return name


def _node_line(names: _Names, node: Node, label: str) -> str:
    opening, closing = _SHAPES[node.kind]
    return f"    {names(node.id)}{opening}{label}{closing}"


def _edge_line(names: _Names, edge: Edge, dotted: bool = False) -> str:
    arrow = "-.->" if dotted else "-->"
    contract = edge.contract
    text = contract.promise or contract.expectation if contract is not None else ""
    middle = f"{arrow}|{_escape(text, 40)}|" if text else arrow
    return f"    {names(edge.source)} {middle} {names(edge.target)}"


def planned(graph: Graph) -> str:
    """Mermaid flowchart text of ``graph`` as built."""
    return _draw(graph.nodes, graph.edges)


def _draw(nodes: Iterable[Node], edges: Iterable[Edge]) -> str:
    names = _Names()
    lines = ["flowchart TD"]
    lines += [_node_line(names, node, _escape(node.id)) for node in nodes]
    lines += [_edge_line(names, edge) for edge in edges]
    return "\n".join(lines) + "\n"


def ran(events: Sequence[StreamEvent]) -> str:
    """Mermaid flowchart text of a stored run (a graph run, or an orchestrator's plan)."""
    graph_events = [decode(e) for e in events if is_graph_event(e)]
    if graph_events:
        return _graph_run(graph_events)
    return _orchestrator_run(events)


def _graph_run(events: Sequence[GraphEvent]) -> str:
    state = GraphState()
    for event in events:
        state.apply(event)
    names = _Names()
    lines = ["flowchart TD"]
    added: set[str] = set()
    for event in events:
        if isinstance(event, NodeAdded | ReworkInserted):
            added.add(event.node.id)
        elif isinstance(event, NodeSplit):
            added.update(part.id for part in event.parts)
            added.add(event.join.id)
        if isinstance(event, _CHANGES):
            lines.append(f"    %% change: {_describe(event)}")
    classes: dict[str, list[str]] = {}
    for node_id, rec in state.nodes.items():
        node_state = NodeState(rec.state)
        label = _escape(node_id)
        if rec.visits > 1:
            label += f" x{rec.visits}"
        label += f"<br/><small>{node_state.name.lower()}</small>"
        lines.append(_node_line(names, rec.spec, label))
        classes.setdefault(node_state.name.lower(), []).append(names(node_id))
        if node_id in added:
            classes.setdefault("added", []).append(names(node_id))
    taken = {(e.node, route) for e in events if isinstance(e, RouteChosen) for route in e.routes}
    for rec in state.nodes.values():
        switch = rec.spec.kind is NodeKind.SWITCH
        for edge in (*rec.out, *rec.back):
            lines.append(_edge_line(names, edge, dotted=switch and (edge.source, edge.target) not in taken))
    lines += [f"    {line}" for line in _CLASSES]
    lines += [f"    class {','.join(members)} {name}" for name, members in classes.items()]
    return "\n".join(lines) + "\n"


def _describe(event: GraphEvent) -> str:
    fields: dict[str, Any] = {}
    if isinstance(event, NodeAdded | NodeEdited | ReworkInserted):
        fields["node"] = event.node.id
    elif isinstance(event, NodeRemoved):
        fields["nodes"] = ",".join(event.nodes)
    elif isinstance(event, EdgeAdded):
        fields["edge"] = f"{event.edge.source}->{event.edge.target}"
    elif isinstance(event, NodeSplit):
        fields["node"] = event.node
        fields["parts"] = ",".join(p.id for p in event.parts)
    reason = getattr(event, "reason", "")
    detail = " ".join(f"{k}={v}" for k, v in fields.items())
    text = f"{event.__struct_config__.tag} {detail}" + (f" ({reason})" if reason else "")
    return " ".join(text.split())[:200]


def _orchestrator_run(events: Sequence[StreamEvent]) -> str:
    from ..engine.state import RunState

    run = RunState.from_events(events[0].run_id if events else "", events)
    names = _Names()
    lines = ["flowchart TD", _node_line(names, Node(id="decompose"), "decompose")]
    classes: dict[str, list[str]] = {"completed": [names("decompose")] if run.subtasks else []}
    ids = list(run.subtasks)
    for subtask_id in ids:
        result = run.results.get(subtask_id)
        status = str(result.get("status", "completed")) if result else "pending"
        label = f"{_escape(subtask_id)}<br/><small>{_escape(status)}</small>"
        lines.append(_node_line(names, Node(id=subtask_id), label))
        css = "completed" if status == "completed" else "failed" if status == "failed" else "pending"
        classes.setdefault(css, []).append(names(subtask_id))
    synth = "synthesize"
    done = run.final_synthesis is not None
    lines.append(f'    {names(synth)}(["{synth}<br/><small>{"completed" if done else "pending"}</small>"])')
    classes.setdefault("completed" if done else "pending", []).append(names(synth))
    dependents: set[str] = set()
    for subtask_id, subtask in run.subtasks.items():
        deps = [d for d in subtask.get("dependencies") or () if d in run.subtasks]
        for dep in deps:
            lines.append(f"    {names(dep)} --> {names(subtask_id)}")
            dependents.add(dep)
        if not deps:
            lines.append(f"    {names('decompose')} --> {names(subtask_id)}")
    for subtask_id in ids:
        if subtask_id not in dependents:
            lines.append(f"    {names(subtask_id)} --> {names(synth)}")
    lines += [f"    {line}" for line in _CLASSES]
    lines += [f"    class {','.join(members)} {name}" for name, members in classes.items() if members]
    return "\n".join(lines) + "\n"
