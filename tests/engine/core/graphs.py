"""Random graphs for the property tests, and a pure driver that plays the runner's part.

:func:`graphs` draws valid graphs: nodes ``n0..n{k}`` whose forward edges go from lower to
higher numbers, so only edges a SWITCH sends back to an earlier node can close a cycle
(every cycle passes through a switch).  A switch chooses its routes from a drawn table for
its first visits, then only routes that cannot lead back to it, so every loop ends.

:class:`Driver` makes the decisions a runner makes (start what the scheduler offers,
complete or fail running nodes, change the graph) with a seeded RNG, folding each one into
a :class:`GraphState` and checking, before and after every event, the rules the issue
asks for: nothing starts before its inputs, counters and sets agree with the graph,
refused changes change nothing, running nodes are never touched, and the run ends with
every node in a terminal state.  :func:`check_refold` checks the log folds again to the
same state and the same derived events.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from hypothesis import strategies as st

from orchestration.engine.core import (
    Edge,
    EdgeAdded,
    EdgeRemoved,
    GraphEvent,
    GraphState,
    Node,
    NodeAdded,
    NodeCompleted,
    NodeEdited,
    NodeFailed,
    NodeKind,
    NodeReady,
    NodeRemoved,
    NodeSkipped,
    NodeSplit,
    NodeStarted,
    NodeState,
    ReworkInserted,
    RouteChosen,
    RunFinished,
    RunStarted,
    schedule,
)
from orchestration.errors import GraphError

TASK, SWITCH, AGGREGATE, TERMINAL = NodeKind.TASK, NodeKind.SWITCH, NodeKind.AGGREGATE, NodeKind.TERMINAL
Routes = dict[str, list[list[str]]]
CAP = 4


@dataclass(frozen=True)
class GraphSpec:
    """A drawn graph and how its switches choose."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    routes: Routes = field(default_factory=dict)

    def started(self) -> RunStarted:
        return RunStarted(self.nodes, self.edges, self.nodes[0].id, {"seed": 1})


@st.composite
def graphs(
    draw: st.DrawFn, *, loops: bool = False, capped: bool = False, quorums: bool = True, max_nodes: int = 9
) -> GraphSpec:
    """A valid graph: a DAG, with back-edges out of switches when ``loops``.

    ``capped`` gives every node a ``max_visits`` (for runs whose changes may close loops
    that no switch's choice ends: a task's back-edge always fires).
    """
    count = draw(st.integers(2, max_nodes))
    kinds = draw(
        st.lists(
            st.sampled_from([TASK, TASK, TASK, SWITCH, AGGREGATE, TERMINAL]), min_size=count, max_size=count
        )
    )
    pairs: list[tuple[int, int]] = []
    for target in range(1, count):
        sources = draw(st.sets(st.integers(0, target - 1), max_size=3))
        pairs += [(source, target) for source in sorted(sources)]
    for index, kind in enumerate(kinds):
        if kind is SWITCH and not any(source == index for source, _ in pairs):
            if index == count - 1:
                kinds[index] = TASK
            else:
                pairs.append((index, draw(st.integers(index + 1, count - 1))))
    caps: dict[int, int] = {}
    if loops:
        for index, kind in enumerate(kinds):
            if kind is SWITCH and index > 0 and draw(st.booleans()):
                target = draw(st.integers(0, index - 1))
                pairs.append((index, target))
                # every loop is capped (a drawn route list may never take the exit)
                caps[target] = draw(st.integers(1, 3)) if draw(st.booleans()) else CAP
    if capped:  # every node: loops the changes close end too (past the cap: exit or fail)
        caps = {index: caps.get(index, CAP) for index in range(count)}
    nodes = []
    for index, kind in enumerate(kinds):
        quorum: Any = "all"
        if kind is AGGREGATE and quorums:
            quorum = draw(st.sampled_from(["all", "any", 1, 2, 3]))
        exhausted = draw(st.sampled_from(["exit", "fail"])) if index in caps else "exit"
        nodes.append(
            Node(
                id=f"n{index}",
                kind=kind,
                quorum=quorum,
                max_visits=caps.get(index),
                on_exhausted=exhausted,
                priority=draw(st.integers(0, 2)),
            )
        )
    edges = tuple(Edge(source=f"n{s}", target=f"n{t}") for s, t in pairs)
    routes: Routes = {}
    for index, kind in enumerate(kinds):
        if kind is SWITCH:
            targets = sorted(f"n{t}" for s, t in pairs if s == index)
            choices = st.lists(st.sampled_from(targets), min_size=1, max_size=len(targets), unique=True)
            routes[f"n{index}"] = draw(st.lists(choices, min_size=1, max_size=3))
    return GraphSpec(tuple(nodes), edges, routes)


def choose_routes(state: GraphState, node_id: str, visit: int, table: Routes) -> tuple[str, ...]:
    """The routes a switch takes: from its table for its first visits, then only exits.

    An exit is a route from which the switch cannot be reached again, so every loop ends
    (a switch with no exit takes no route: everything behind it is skipped).
    """
    rec = state.nodes[node_id]
    known = [e.target for e in (*rec.out, *rec.back)]
    options = table.get(node_id) or [known]
    if visit <= len(options):
        chosen = tuple(r for r in options[visit - 1] if r in known)
        if chosen:
            return chosen
    return tuple(r for r in known if not _reaches(state, r, node_id))


def _reaches(state: GraphState, start: str, goal: str) -> bool:
    seen, stack = {start}, [start]
    while stack:
        node_id = stack.pop()
        if node_id == goal:
            return True
        rec = state.nodes[node_id]
        for edge in (*rec.out, *rec.back):
            if edge.target not in seen:
                seen.add(edge.target)
                stack.append(edge.target)
    return False


def output_of(node_id: str, visit: int) -> dict[str, Any]:
    return {"node": node_id, "visit": visit}


# -- the rules, checked independently of the core's own bookkeeping ----------------------------

_DONE, _OPEN, _DEAD, _BLOCKED = "done", "open", "dead", "blocked"


def input_status(state: GraphState, edge: Edge) -> str:
    source = state.nodes[edge.source]
    kind = source.spec.kind
    if source.state == NodeState.COMPLETED:
        return _DONE if kind is not SWITCH or edge.target in (source.routes or ()) else _DEAD
    if source.state == NodeState.SKIPPED:
        return _BLOCKED if source.blocked_skip else _DEAD
    if source.state in (NodeState.FAILED, NodeState.CANCELLED):
        return _BLOCKED
    return _OPEN


def inputs_allow_start(state: GraphState, node_id: str) -> bool:
    """May ``node_id`` start, judged from its inputs' states alone?"""
    rec = state.nodes[node_id]
    statuses = [input_status(state, e) for e in rec.inn]
    if not statuses:
        return True
    done = statuses.count(_DONE)
    if rec.spec.kind is AGGREGATE:
        live = len(statuses) - statuses.count(_DEAD)
        quorum = rec.spec.quorum
        need = live if quorum == "all" else 1 if quorum == "any" else min(int(quorum), live)
        return live > 0 and done >= need
    return _OPEN not in statuses and _BLOCKED not in statuses and done > 0


def fingerprint(state: GraphState) -> Any:
    """Everything a reader can see of a state (to check that a refused change changed nothing)."""
    return (
        state.status,
        state.error,
        state.ready_count,
        state.active,
        tuple(
            (
                node_id,
                rec.spec,
                rec.state,
                rec.visits,
                rec.out,
                rec.inn,
                rec.back,
                (rec.pending, rec.done, rec.dead, rec.blocked),
                rec.routes,
                rec.completions,
            )
            for node_id, rec in state.nodes.items()
        ),
    )


def check_invariants(state: GraphState, reworked: set[str] | frozenset[str] = frozenset()) -> None:
    """The rules every state must keep (``reworked``: nodes a rework ran again, past any cap)."""
    nodes = state.nodes
    loop_heads = {e.target for rec in nodes.values() for e in rec.back}
    for node_id, rec in nodes.items():
        for edge in rec.out:
            assert edge.source == node_id and edge in nodes[edge.target].inn, edge
        for edge in rec.inn:
            assert edge.target == node_id and edge in nodes[edge.source].out, edge
        for edge in rec.back:
            assert edge.source == node_id and edge.target in nodes, edge
        if rec.spec.kind is SWITCH:
            assert rec.out or rec.back, f"switch {node_id} lost its routes"
        if rec.state == NodeState.PENDING:
            counts = [input_status(state, e) for e in rec.inn]
            expected = (counts.count(_OPEN), counts.count(_DONE), counts.count(_DEAD), counts.count(_BLOCKED))
            assert (rec.pending, rec.done, rec.dead, rec.blocked) == expected, node_id
        if rec.state == NodeState.READY and rec.trigger is None:
            assert inputs_allow_start(state, node_id), f"{node_id} is READY before its inputs"
        if rec.spec.max_visits is not None and node_id in loop_heads and node_id not in reworked:
            assert rec.visits <= rec.spec.max_visits, f"a loop entered {node_id} past its max_visits"
    assert len(state.topological()) == len(nodes), "the forward edges have a cycle"
    if state.status is None:
        assert state.ready_count == sum(r.state == NodeState.READY for r in nodes.values())
        assert state.active == sum(r.state == NodeState.ACTIVE for r in nodes.values())


# -- the driver ------------------------------------------------------------------------------


class Driver:
    """Plays a runner over the pure core: every decision folded, every rule checked."""

    def __init__(
        self, spec: GraphSpec, rng: random.Random, *, concurrency: int = 3, fail_rate: float = 0.0
    ) -> None:
        self.spec = spec
        self.rng = rng
        self.concurrency = concurrency
        self.fail_rate = fail_rate
        self.state = GraphState()
        self.log: list[GraphEvent] = []
        self.refused = 0
        self.accepted = 0
        self.reworked: set[str] = set()
        self._added = 0

    def record(self, event: GraphEvent) -> None:
        self.state.apply(event)
        self.log.append(event)
        self.log.extend(self.state.take_emitted())
        check_invariants(self.state, self.reworked)

    def run(self, mutate: Callable[[Driver], None] | None = None, max_steps: int = 2000) -> GraphState:
        self.record(self.spec.started())
        state = self.state
        for _ in range(max_steps):
            if mutate is not None and self.rng.random() < 0.3:
                mutate(self)
            offered = [] if state.error else schedule(state, self.concurrency - state.active)
            active = [n for n, r in state.nodes.items() if r.state == NodeState.ACTIVE]
            if not offered and not active:
                break
            if offered and (not active or self.rng.random() < 0.5):
                self.start(offered[0] if self.rng.random() < 0.7 else self.rng.choice(offered))
            else:
                self.finish(self.rng.choice(active))
        else:
            raise AssertionError("the run did not end")
        if state.error is None:  # nothing ready or running: nothing may be left waiting
            waiting = [n for n, r in state.nodes.items() if r.state == NodeState.PENDING]
            assert not waiting, f"deadlock: {waiting} pending with nothing ready or running"
        failed = state.error or any(r.state == NodeState.FAILED for r in state.nodes.values())
        self.record(RunFinished("failed" if failed else "completed", state.error or ""))
        assert all(NodeState(r.state).is_terminal for r in state.nodes.values())
        return state

    def start(self, node_id: str) -> None:
        assert inputs_allow_start(self.state, node_id) or self.state.nodes[node_id].trigger is not None
        self.record(NodeStarted(node_id, self.state.nodes[node_id].visits + 1))

    def finish(self, node_id: str) -> None:
        rec = self.state.nodes[node_id]
        visit = rec.visits
        if self.rng.random() < self.fail_rate:
            self.record(NodeFailed(node_id, visit, "drawn to fail", "ValueError"))
            return
        if rec.spec.kind is SWITCH:
            self.record(
                RouteChosen(node_id, visit, choose_routes(self.state, node_id, visit, self.spec.routes))
            )
        self.record(NodeCompleted(node_id, visit, output_of(node_id, visit)))

    # -- random changes ------------------------------------------------------------------

    def try_change(self, event: GraphEvent) -> bool:
        """Apply a change if the core accepts it; a refused one must change nothing."""
        state = self.state
        before = fingerprint(state)
        active = {n: (r.spec, r.inn) for n, r in state.nodes.items() if r.state == NodeState.ACTIVE}
        try:
            self.record(event)
        except GraphError as error:
            assert "\n" not in str(error)
            assert fingerprint(state) == before, f"refused {event!r} changed the state"
            assert not state.emitted
            self.refused += 1
            return False
        for node_id, (spec, inn) in active.items():  # ACTIVE nodes are protected
            rec = state.nodes.get(node_id)
            assert rec is not None and rec.state == NodeState.ACTIVE, f"{event!r} touched ACTIVE {node_id}"
            assert (rec.spec, rec.inn) == (spec, inn), f"{event!r} changed ACTIVE {node_id}"
        self.accepted += 1
        return True

    def random_change(self) -> None:
        rng, nodes = self.rng, list(self.state.nodes)
        if not nodes:
            return
        pick = rng.choice
        op = rng.randrange(8)
        if op == 0:
            self._added += 1
            new = Node(id=f"m{self._added}", kind=pick([TASK, TASK, AGGREGATE, SWITCH]), max_visits=CAP)
            edges = [
                Edge(source=s, target=new.id)
                for s in rng.sample(nodes, min(2, len(nodes)))[: rng.randrange(3)]
            ]
            edges += [
                Edge(source=new.id, target=t)
                for t in rng.sample(nodes, min(2, len(nodes)))[: rng.randrange(3)]
            ]
            self.try_change(NodeAdded(new, tuple(edges), "drawn"))
        elif op == 1:
            source, target = pick(nodes), pick([*nodes, "ghost"])
            if source != target:
                self.try_change(EdgeAdded(Edge(source=source, target=target)))
        elif op == 2:
            edges = [e for r in self.state.nodes.values() for e in (*r.out, *r.back)]
            if edges:
                edge = pick(edges)
                self.try_change(EdgeRemoved(edge.source, edge.target))
        elif op == 3:
            node_id = pick(nodes)
            ids = (node_id,)
            if rng.random() < 0.5:
                ids = tuple(r.spec.id for r in self.state.descendants(node_id))
            self.try_change(NodeRemoved(ids, "cascade" if len(ids) > 1 else ""))
        elif op == 4:
            rec = self.state.nodes[pick(nodes)]
            self.try_change(NodeEdited(msgspec.structs.replace(rec.spec, priority=rng.randrange(5))))
        elif op == 5:
            node_id = pick(nodes)
            self._added += 1
            parts = (
                Node(id=f"m{self._added}.a", max_visits=CAP),
                Node(id=f"m{self._added}.b", max_visits=CAP),
            )
            join = Node(id=f"m{self._added}.join", kind=AGGREGATE, max_visits=CAP)
            self.try_change(NodeSplit(node_id, parts, join))
        elif op == 6:
            done = [r for r in self.state.nodes.values() if r.state == NodeState.COMPLETED and r.out]
            if done:
                source = pick(done)
                self._added += 1
                consumer = pick(source.out).target
                fix = Node(id=f"m{self._added}.fix", max_visits=CAP)
                region = {r.spec.id for r in self.state.descendants(consumer)}
                if self.try_change(ReworkInserted(source.spec.id, consumer, fix)):
                    self.reworked |= region  # they run again, by request, whatever their caps
        else:
            self.try_change(NodeRemoved(("ghost",)))  # unknown: refused


def check_refold(log: list[GraphEvent], live: GraphState) -> None:
    """The fold is deterministic: the same events give the same state and ready set.

    Folding the log's decisions again derives exactly the stored derived events; folding
    the whole log agrees with that at every decision, and both end where the live run did.
    """
    again, folded = GraphState(), GraphState()
    rebuilt: list[GraphEvent] = []
    for index, event in enumerate(log):
        folded.apply(event)
        if not isinstance(event, NodeReady | NodeSkipped):
            again.apply(event)
            rebuilt.append(event)
            rebuilt.extend(again.take_emitted())
        if len(rebuilt) == index + 1:  # both folded the same events
            assert fingerprint(folded) == fingerprint(again)
            assert folded.ready() == again.ready()
            assert schedule(folded, 5) == schedule(again, 5)
    assert rebuilt == log, "the fold derived different events from the same decisions"
    folded.emitted.clear()
    assert fingerprint(folded) == fingerprint(live)
    assert schedule(folded, 100) == schedule(live, 100)
