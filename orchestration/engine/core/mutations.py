"""Validating and folding graph changes: the initial graph and every mutation event.

Each function here first checks the whole change against the current state and raises
:class:`~orchestration.errors.GraphError` (bad shape) or
:class:`~orchestration.errors.GraphMutationError` (it would touch an ACTIVE node, or a
node that already ran) with one line naming the nodes; only then does it change the
state.  So a refused mutation leaves the graph exactly as it was, and a stored mutation
always folds again.

ACTIVE nodes are protected: no mutation removes, splits, edits or re-wires the inputs of
a running node (the bug in Cascade's cascade-remove deleted an ACTIVE grandchild).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter, lt
from typing import TYPE_CHECKING, Any

from ...errors import GraphError, GraphMutationError
from .events import (
    EdgeAdded,
    EdgeRemoved,
    GraphEvent,
    NodeAdded,
    NodeEdited,
    NodeRemoved,
    NodeSplit,
    ReworkInserted,
)
from .spec import Edge, Node, NodeKind, NodeState

if TYPE_CHECKING:
    from .state import GraphState, NodeRecord

__all__ = ["apply", "classify_initial"]

_SWITCH = NodeKind.SWITCH
_ID = attrgetter("id")
_KIND = attrgetter("kind")
_SOURCE = attrgetter("source")
_TARGET = attrgetter("target")
_ACTIVE = NodeState.ACTIVE
_OPEN_STATES = (NodeState.PENDING, NodeState.READY)


#: The last graph :func:`classify_initial` accepted: ``(nodes, edges, entry, back)``.  A
#: graph built with ``Graph(...)`` is validated there and again when its run folds
#: ``RunStarted`` (the same tuples): the second call returns the answer it already has.
_last: tuple[tuple[Node, ...], tuple[Edge, ...], str | None, frozenset[tuple[str, str]]] | None = None


def classify_initial(nodes: Sequence[Node], edges: Sequence[Edge], entry: str | None) -> set[tuple[str, str]]:
    """Validate a whole graph; returns its back-edges as ``(source, target)`` pairs.

    Back-edges are found by a depth-first walk from ``entry``, then from nodes without
    inputs, then from the rest, each following edges in the order given.
    """
    global _last
    last = _last
    if last is not None and last[0] is nodes and last[1] is edges and last[2] == entry:
        _last = None  # nodes, edges: tuples of frozen structs, so the same objects say the same
        return set(last[3])
    back = _classify(nodes, edges, entry)
    if type(nodes) is tuple and type(edges) is tuple:
        _last = (nodes, edges, entry, frozenset(back))
    return back


def _classify(nodes: Sequence[Node], edges: Sequence[Edge], entry: str | None) -> set[tuple[str, str]]:
    # Written with C-level loops (map, set operations) where it can: this runs over every
    # node and edge of a graph when it is built.
    if set(map(type, nodes)) - {Node}:
        bad = next(n for n in nodes if not isinstance(n, Node))
        raise GraphError(f"expected Node objects, got {type(bad).__name__}: {bad!r}"[:200])
    ids = list(map(_ID, nodes))
    kinds = dict(zip(ids, map(_KIND, nodes), strict=True))
    if len(kinds) != len(nodes):
        seen_ids: set[str] = set()
        for node_id in ids:
            if node_id in seen_ids:
                raise GraphError(f"duplicate node id {node_id!r}; ids must be unique")
            seen_ids.add(node_id)
    if entry is not None and entry not in kinds:
        raise GraphError(f"entry {entry!r} is not a node of the graph; nodes: {sorted(kinds)[:20]}")
    if set(map(type, edges)) - {Edge}:
        bad_edge = next(e for e in edges if not isinstance(e, Edge))
        raise GraphError(f"expected Edge objects, got {type(bad_edge).__name__}: {bad_edge!r}"[:200])
    sources = list(map(_SOURCE, edges))
    targets = list(map(_TARGET, edges))
    position = dict(zip(ids, range(len(ids)), strict=True))
    try:
        forward_in_order = all(
            map(lt, map(position.__getitem__, sources), map(position.__getitem__, targets))
        )
    except KeyError:
        for edge in edges:
            for end in (edge.source, edge.target):
                if end not in kinds:
                    raise GraphError(
                        f"edge {edge.source!r} -> {edge.target!r} names unknown node {end!r}"
                    ) from None
        raise
    if len(set(zip(sources, targets, strict=True))) != len(edges):
        seen: set[tuple[str, str]] = set()
        for pair in zip(sources, targets, strict=True):
            if pair in seen:
                raise GraphError(f"duplicate edge {pair[0]!r} -> {pair[1]!r}")
            seen.add(pair)
    if _SWITCH in kinds.values():
        has_output = set(sources)
        for node_id, kind in kinds.items():
            if kind is _SWITCH and node_id not in has_output:
                raise GraphError(
                    f"switch {node_id!r} has no routes; add an Edge(source={node_id!r}, target=...)"
                )
    if forward_in_order:
        return set()  # every edge points at a later node: no cycle, so no back-edge
    out: dict[str, list[str]] = {node_id: [] for node_id in kinds}
    for source, target in zip(sources, targets, strict=True):
        out[source].append(target)
    if _acyclic(kinds, out, targets):
        return set()  # no cycle, so no back-edge, whatever order a walk would take
    has_input = set(targets)
    starts = [entry] if entry is not None else []
    starts += [n for n in kinds if n not in has_input] + list(kinds)
    back = _back_edges(starts, out)
    if back:
        forward = {n: [t for t in targets if (n, t) not in back] for n, targets in out.items()}
        for source, target in back:
            _check_loop(source, target, kinds, forward)
    return back


def _acyclic(kinds: Mapping[str, NodeKind], out: Mapping[str, list[str]], targets: list[str]) -> bool:
    """True when the edges form no cycle (Kahn's algorithm: cheaper than the walk)."""
    indegree = dict.fromkeys(kinds, 0)
    for target in targets:
        indegree[target] += 1
    order = [node_id for node_id, count in indegree.items() if count == 0]
    for node_id in order:  # grows while it is walked
        for target in out[node_id]:
            count = indegree[target] - 1
            indegree[target] = count
            if count == 0:
                order.append(target)
    return len(order) == len(indegree)


def _back_edges(starts: Iterable[str], out: Mapping[str, list[str]]) -> set[tuple[str, str]]:
    on_path: set[str] = set()
    done: set[str] = set()
    back: set[tuple[str, str]] = set()
    for start in starts:
        if start in done:
            continue
        on_path.add(start)
        stack = [(start, iter(out[start]))]
        while stack:
            node, targets = stack[-1]
            for target in targets:
                if target in on_path:
                    back.add((node, target))
                elif target not in done:
                    on_path.add(target)
                    stack.append((target, iter(out[target])))
                    break
            else:
                stack.pop()
                on_path.discard(node)
                done.add(node)
    return back


def _check_loop(
    source: str, target: str, kinds: Mapping[str, NodeKind], forward: Mapping[str, Sequence[str]]
) -> None:
    """A back-edge ``source -> target`` is a loop only if every cycle it closes has a switch."""
    if kinds[source] is _SWITCH or kinds[target] is _SWITCH:
        return
    came_from: dict[str, str] = {target: target}
    stack = [target]
    while stack:
        node = stack.pop()
        for child in forward.get(node, ()):
            if child in came_from or kinds[child] is _SWITCH:
                continue
            came_from[child] = node
            if child == source:
                path = [source]
                while path[-1] != target:
                    path.append(came_from[path[-1]])
                cycle = " -> ".join([*reversed(path), target])
                raise GraphError(f"cycle {cycle} does not pass through a SWITCH; loops must go through one")
            stack.append(child)


def _reaches(state: GraphState, start: str, goal: str, extra: Mapping[str, list[str]]) -> bool:
    """True when ``goal`` is forward-reachable from ``start`` (with ``extra`` edges)."""
    seen = {start}
    stack = [start]
    nodes = state.nodes
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        rec = nodes.get(node)
        targets = [e.target for e in rec.out] if rec is not None else []
        for child in (*targets, *extra.get(node, ())):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return False


def _describe(state: GraphState, node_id: str) -> str:
    rec = state.nodes[node_id]
    return f"{node_id!r} is {NodeState(rec.state)} (visit {rec.visits})"


def _refuse_active(state: GraphState, node_ids: Iterable[str], what: str) -> None:
    for node_id in node_ids:
        if state.nodes[node_id].state == _ACTIVE:
            raise GraphMutationError(
                f"cannot {what}: node {_describe(state, node_id)}; ACTIVE nodes are protected"
            )


def _known(state: GraphState, node_id: str, what: str) -> NodeRecord:
    rec = state.nodes.get(node_id)
    if rec is None:
        raise GraphMutationError(f"cannot {what}: unknown node {node_id!r}")
    return rec


def _check_new_edges(state: GraphState, edges: Sequence[Edge], new: Mapping[str, Node]) -> list[bool]:
    """Validate edges about to be added (``new`` nodes included); which are back-edges."""
    kinds = {node_id: rec.spec.kind for node_id, rec in state.nodes.items()} | {
        n.id: n.kind for n in new.values()
    }
    extra: dict[str, list[str]] = {}
    existing = {(e.source, e.target) for rec in state.nodes.values() for e in (*rec.out, *rec.back)}
    backs: list[bool] = []
    for edge in edges:
        if not isinstance(edge, Edge):
            raise GraphError(f"expected Edge objects, got {type(edge).__name__}")
        what = f"add edge {edge.source!r} -> {edge.target!r}"
        for end in (edge.source, edge.target):
            if end not in kinds:
                raise GraphMutationError(f"cannot {what}: unknown node {end!r}")
        if (edge.source, edge.target) in existing:
            raise GraphMutationError(f"cannot {what}: the edge already exists")
        existing.add((edge.source, edge.target))
        back = _reaches(state, edge.target, edge.source, extra)
        if back:
            if kinds[edge.source] is not _SWITCH and kinds[edge.target] is not _SWITCH:
                forward = {n: [e.target for e in r.out] for n, r in state.nodes.items()}
                for source, targets in extra.items():
                    forward.setdefault(source, []).extend(targets)
                _check_loop(edge.source, edge.target, kinds, forward)
        else:
            target = state.nodes.get(edge.target)
            if target is not None and NodeState(target.state) not in _OPEN_STATES:
                raise GraphMutationError(
                    f"cannot {what}: node {_describe(state, edge.target)}; only a node that has not "
                    "started can gain an input (rework re-runs a finished one)"
                )
            extra.setdefault(edge.source, []).append(edge.target)
        backs.append(back)
    return backs


def _reopen(state: GraphState, rec: NodeRecord) -> None:
    """A READY or finished node goes back to PENDING (its inputs changed)."""
    if rec.state == NodeState.READY:
        state.ready_count -= 1
    rec.state = NodeState.PENDING
    rec.token += 1
    rec.routes = None
    rec.blocked_skip = False
    rec.reason = ""


def _relink(state: GraphState, touched: Iterable[NodeRecord]) -> None:
    """After a structural change: ranks, counters and readiness of the touched nodes."""
    state.refresh_ranks()
    records = [rec for rec in touched if rec.spec.id in state.nodes]
    for rec in records:
        if rec.state == NodeState.READY:
            _reopen(state, rec)
        if rec.state == NodeState.PENDING:
            state.recount(rec)
    state.settle(records)


def _add_node(state: GraphState, event: NodeAdded) -> None:
    if event.node.id in state.nodes:
        raise GraphMutationError(f"cannot add node {event.node.id!r}: the id is taken")
    outs = sum(1 for e in event.edges if e.source == event.node.id)
    if event.node.kind is _SWITCH and not outs:
        raise GraphError(f"switch {event.node.id!r} has no routes; add it with an edge from it")
    backs = _check_new_edges(state, event.edges, {event.node.id: event.node})
    rec = state.add_record(event.node)
    for edge, back in zip(event.edges, backs, strict=True):
        state.link(edge, back)
    _relink(state, [rec, *(state.nodes[e.target] for e in event.edges if e.target != rec.spec.id)])


def _add_edge(state: GraphState, event: EdgeAdded) -> None:
    (back,) = _check_new_edges(state, [event.edge], {})
    state.link(event.edge, back)
    if not back:
        _relink(state, [state.nodes[event.edge.target]])


def _remove_edge(state: GraphState, event: EdgeRemoved) -> None:
    what = f"remove edge {event.source!r} -> {event.target!r}"
    source = _known(state, event.source, what)
    target = _known(state, event.target, what)
    forward = [e for e in source.out if e.target == event.target]
    back = [e for e in source.back if e.target == event.target]
    if not forward and not back:
        raise GraphMutationError(f"cannot {what}: there is no such edge")
    _refuse_active(state, [event.target], what)
    if source.spec.kind is _SWITCH and len(source.out) + len(source.back) == 1:
        raise GraphMutationError(f"cannot {what}: switch {event.source!r} would have no routes left")
    if back:
        source.back = tuple(e for e in source.back if e.target != event.target)
        return
    source.out = tuple(e for e in source.out if e.target != event.target)
    target.inn = tuple(e for e in target.inn if e.source != event.source)
    if NodeState(target.state) in _OPEN_STATES:
        _relink(state, [target])


def _remove_nodes(state: GraphState, event: NodeRemoved) -> None:
    _relink(state, _detach(state, event.nodes, f"remove {sorted(set(event.nodes))}", keep_routes=True))


def _detach(state: GraphState, node_ids: Sequence[str], what: str, *, keep_routes: bool) -> list[NodeRecord]:
    """Take ``node_ids`` and their edges out of the graph; the open nodes they fed.

    Nothing is re-evaluated here: the caller relinks once the change is complete, so a
    compound change (a split) never makes a node ready halfway through.
    """
    doomed = set(node_ids)
    for node_id in node_ids:
        _known(state, node_id, what)
    _refuse_active(state, node_ids, what)
    for node_id in node_ids:  # nor may a running node lose an input it is working from
        for edge in state.nodes[node_id].out:
            if edge.target not in doomed and state.nodes[edge.target].state == _ACTIVE:
                raise GraphMutationError(
                    f"cannot {what}: node {_describe(state, edge.target)} and takes input from "
                    f"{node_id!r}; ACTIVE nodes are protected"
                )
    touched: list[NodeRecord] = []
    if keep_routes:  # every switch, not only the doomed nodes' sources: back-edges are no inputs
        for source in state.nodes.values():
            routes = (*source.out, *source.back)
            if (
                source.spec.kind is _SWITCH
                and source.spec.id not in doomed
                and routes
                and all(e.target in doomed for e in routes)
            ):
                raise GraphMutationError(
                    f"cannot {what}: switch {source.spec.id!r} would have no routes left"
                )
    for node_id in node_ids:
        rec = state.nodes.pop(node_id)
        if rec.state == NodeState.READY:
            state.ready_count -= 1
        for edge in rec.out:
            if edge.target not in doomed:
                touched.append(state.nodes[edge.target])
    for rec in state.nodes.values():
        if any(e.target in doomed for e in rec.out):
            rec.out = tuple(e for e in rec.out if e.target not in doomed)
        if any(e.target in doomed for e in rec.back):
            rec.back = tuple(e for e in rec.back if e.target not in doomed)
        if any(e.source in doomed for e in rec.inn):
            rec.inn = tuple(e for e in rec.inn if e.source not in doomed)
    return [r for r in touched if NodeState(r.state) in _OPEN_STATES]


def _edit_node(state: GraphState, event: NodeEdited) -> None:
    what = f"edit node {event.node.id!r}"
    rec = _known(state, event.node.id, what)
    _refuse_active(state, [rec.spec.id], what)
    if NodeState(rec.state) not in _OPEN_STATES:
        raise GraphMutationError(f"cannot {what}: node {_describe(state, rec.spec.id)}; only pending nodes")
    if (rec.spec.kind is _SWITCH) != (event.node.kind is _SWITCH):
        raise GraphMutationError(f"cannot {what}: a node cannot become or stop being a SWITCH")
    rec.spec = event.node
    _relink(state, [rec])


def _split_node(state: GraphState, event: NodeSplit) -> None:
    what = f"split node {event.node!r}"
    rec = _known(state, event.node, what)
    _refuse_active(state, [event.node], what)
    if NodeState(rec.state) not in _OPEN_STATES:
        raise GraphMutationError(f"cannot {what}: node {_describe(state, event.node)}; only pending nodes")
    if rec.spec.kind is _SWITCH:
        raise GraphMutationError(f"cannot {what}: a switch cannot be split")
    if not event.parts:
        raise GraphMutationError(f"cannot {what}: give at least one part")
    if any(e.target == event.node for r in state.nodes.values() for e in r.back):
        raise GraphMutationError(f"cannot {what}: a loop re-enters it")
    ids = [p.id for p in event.parts] + [event.join.id]
    for node_id in ids:
        if node_id in state.nodes or ids.count(node_id) > 1:
            raise GraphMutationError(f"cannot {what}: id {node_id!r} is taken")
    inn, out, back = rec.inn, rec.out, rec.back
    _detach(state, (event.node,), what, keep_routes=False)
    for part in event.parts:
        state.add_record(part)
        for edge in inn:
            state.link(Edge(source=edge.source, target=part.id, contract=edge.contract), False)
    join = state.add_record(event.join)
    for part in event.parts:
        state.link(Edge(source=part.id, target=join.spec.id), False)
    for edge in out:
        state.link(Edge(source=join.spec.id, target=edge.target, contract=edge.contract), False)
    for edge in back:
        state.link(Edge(source=join.spec.id, target=edge.target, contract=edge.contract), True)
    for edge in inn:
        source = state.nodes[edge.source]
        if source.routes is not None and event.node in source.routes:
            source.routes = (*source.routes, *(p.id for p in event.parts))
    _relink(state, [state.nodes[i] for i in ids] + [state.nodes[e.target] for e in out])


def _rework(state: GraphState, event: ReworkInserted) -> None:
    what = f"rework {event.source!r} -> {event.consumer!r}"
    source = _known(state, event.source, what)
    _known(state, event.consumer, what)
    if source.state != NodeState.COMPLETED:
        raise GraphMutationError(
            f"cannot {what}: node {_describe(state, event.source)}; rework needs a completed source"
        )
    edge = next((e for e in source.out if e.target == event.consumer), None)
    if edge is None:
        raise GraphMutationError(f"cannot {what}: there is no edge {event.source!r} -> {event.consumer!r}")
    if event.node.id in state.nodes:
        raise GraphMutationError(f"cannot {what}: id {event.node.id!r} is taken")
    region = state.descendants(event.consumer)
    _refuse_active(state, [r.spec.id for r in region], what)
    consumer = state.nodes[event.consumer]
    source.out = tuple(e for e in source.out if e.target != event.consumer)
    consumer.inn = tuple(e for e in consumer.inn if e.source != event.source)
    fix = state.add_record(event.node)
    state.link(Edge(source=event.source, target=fix.spec.id), False)
    state.link(Edge(source=fix.spec.id, target=event.consumer, contract=edge.contract), False)
    if source.routes is not None and event.consumer in source.routes:
        source.routes = (*source.routes, fix.spec.id)
    for rec in region:
        if rec.state != NodeState.PENDING:
            _reopen(state, rec)
    _relink(state, [fix, *region])


_MUTATIONS: dict[type[GraphEvent], Callable[[GraphState, Any], None]] = {
    NodeAdded: _add_node,
    EdgeAdded: _add_edge,
    EdgeRemoved: _remove_edge,
    NodeRemoved: _remove_nodes,
    NodeEdited: _edit_node,
    NodeSplit: _split_node,
    ReworkInserted: _rework,
}


def apply(state: GraphState, event: GraphEvent) -> None:
    """Fold a mutation event into ``state`` (validated first; raises before any change)."""
    handler = _MUTATIONS.get(type(event))
    if handler is None:
        raise GraphError(f"not a graph event the core knows: {type(event).__name__}")
    if not state.started:
        raise GraphMutationError(f"cannot apply {type(event).__name__}: the run has not started")
    if state.status is not None:
        raise GraphMutationError(f"cannot apply {type(event).__name__}: the run has {state.status}")
    handler(state, event)
    by: str = getattr(event, "by", "")
    if by:
        maker = state.nodes.get(by)
        if maker is not None and maker.state == _ACTIVE:
            maker.made = (*maker.made, event)
