"""The graph state: a fold of graph events.  Pure: no I/O, no clock, no randomness.

``GraphState().apply(e1).apply(e2)...`` (or :func:`fold`) always gives the same graph,
node states, outputs and ready set for the same events; resume is folding the stored log
and carrying on.  For speed the fold updates the state in place and returns it (a run
folds one event per transition, and copying a 100,000-node graph each time is not an
option); nothing else mutates it, so it behaves as a pure fold to every reader.

How a node moves (the rules the runner, the scheduler and the tests rely on):

- Edges are **forward** (dependencies; together always a DAG) or **back** (they close a
  cycle: a loop).  A built graph classifies them by a depth-first walk from ``entry``
  (then from the other nodes in order); an edge added later is a back-edge when it closes
  a cycle.  Every cycle must pass through a SWITCH.
- Each forward input of a node is pending, *done* (its source completed; out of a
  SWITCH only if the switch chose that route), *dead* (not taken: the source was skipped
  because no route reached it, or a switch chose another route) or *blocked* (its source
  failed, was cancelled, or was skipped because of a failure).
- TASK, SWITCH and TERMINAL nodes are READY when no input is pending and at least one is
  done (or they have none); SKIPPED when every input is dead (a branch not taken never
  deadlocks: joins waiting on it are released) or any is blocked.
- AGGREGATE nodes are READY once ``quorum`` of their live (not dead) inputs are done:
  all of them, any one, or k (at most the number live); inputs completing later are
  recorded as late inputs, not lost.  SKIPPED when the quorum can no longer be reached.
- A back-edge fires when its source completes (out of a SWITCH: when chosen).  It
  re-enters its target: the target and everything downstream of it go back to PENDING
  (a node still running, the target too, finishes its visit first) and the target starts
  its next visit.
  Past the target's ``max_visits``, ``on_exhausted="exit"`` takes the switch's forward
  routes instead and ``"fail"`` (or no exit route) fails the run with the reason.

Derived transitions (READY, SKIPPED) are emitted as :class:`NodeReady`/:class:`NodeSkipped`
events into :attr:`GraphState.emitted`; the runner stores them so the log reads
completely, and folding them again is a no-op.  Mutations are validated before anything
changes (:mod:`.mutations`), so a refused one leaves the state as it was.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec

from ...errors import GraphError
from .events import (
    GraphEvent,
    InterruptAnswered,
    NodeCancelled,
    NodeCompleted,
    NodeFailed,
    NodeInterrupted,
    NodeReady,
    NodeRequeued,
    NodeSkipped,
    NodeStarted,
    RouteChosen,
    RunFinished,
    RunResumed,
    RunStarted,
)
from .spec import Edge, Node, NodeKind, NodeState

__all__ = ["GraphState", "NodeRecord", "fold"]

_PENDING, _READY, _ACTIVE, _COMPLETED, _FAILED, _SKIPPED, _CANCELLED = range(7)
_NODE_STATES = tuple(NodeState)  # by value: cheaper than calling NodeState(n)
# What a forward input is, once its source is resolved.
_OPEN, _DONE, _DEAD, _BLOCKED = range(4)
_SWITCH = NodeKind.SWITCH
_AGGREGATE = NodeKind.AGGREGATE


class NodeRecord(msgspec.Struct, gc=False):
    """One node's folded state (internal to the core; read it through :class:`GraphState`)."""

    spec: Node
    order: int
    state: int = _PENDING
    visits: int = 0
    out: tuple[Edge, ...] = ()
    inn: tuple[Edge, ...] = ()
    back: tuple[Edge, ...] = ()
    pending: int = 0
    done: int = 0
    dead: int = 0
    blocked: int = 0
    rank: float = 1.0
    token: int = 0
    routes: tuple[str, ...] | None = None
    trigger: str | None = None
    #: One per completed visit: a tuple while there is one (most nodes, never scanned by
    #: the collector), a list once a loop re-enters the node (appending to a tuple would
    #: copy it every visit).
    completions: Sequence[NodeCompleted] = ()
    error: str | None = None
    reason: str = ""
    blocked_skip: bool = False
    rerun: bool = False
    late: tuple[tuple[str, int], ...] = ()
    duration: float | None = None
    #: Questions the current visit asked (``NodeInterrupted``) and the answers so far; a
    #: node with more questions than answers is waiting (PENDING, never made READY).
    asked: tuple[NodeInterrupted, ...] = ()
    answers: tuple[Any, ...] = ()
    #: Changes to the graph the current visit's handler made (events with ``by`` = this
    #: node).  Kept while the visit runs again (requeued after a crash, or answered), so
    #: the shell skips them the second time instead of making them twice.
    made: tuple[GraphEvent, ...] = ()

    @property
    def waiting(self) -> bool:
        """True while the node waits for the answer to a question."""
        return len(self.asked) > len(self.answers)


class GraphState:
    """The folded state of one graph run (see the module docstring for the rules)."""

    __slots__ = (
        "_duration_n",
        "_duration_sum",
        "_next_order",
        "_order",
        "active",
        "emitted",
        "entry",
        "error",
        "lanes",
        "nodes",
        "payload",
        "ready_count",
        "started",
        "status",
    )

    def __init__(self) -> None:
        self.nodes: dict[str, NodeRecord] = {}
        self.entry: str | None = None
        self.payload: Any = None
        self.started = False
        #: None while running; "completed", "failed" or "cancelled" once finished.
        self.status: str | None = None
        #: Why the run must fail (a loop past its cap), set by the fold; None otherwise.
        self.error: str | None = None
        #: Ready-queue heaps, one per model lane (None: no model).  Entries are
        #: ``(-rank, -priority, order, token, node id)``; stale ones (token changed) are dropped.
        self.lanes: dict[str | None, list[tuple[float, int, int, int, str]]] = {}
        self.ready_count = 0
        self.active = 0
        #: Derived events (NodeReady, NodeSkipped) produced by the last applies.
        self.emitted: list[GraphEvent] = []
        self._next_order = 0
        #: The nodes sources-first (:meth:`topological`), kept until the graph's shape changes.
        self._order: list[NodeRecord] | None = None
        self._duration_sum = 0.0
        self._duration_n = 0

    # -- reading ---------------------------------------------------------------------------

    def state_of(self, node_id: str) -> NodeState:
        """The node's state (raises GraphError for an unknown id)."""
        return NodeState(self.record(node_id).state)

    def record(self, node_id: str) -> NodeRecord:
        """The node's record, or a GraphError naming the unknown id."""
        try:
            return self.nodes[node_id]
        except KeyError:
            raise GraphError(f"unknown node {node_id!r}") from None

    def states(self) -> dict[str, NodeState]:
        """Every node's state, in graph order."""
        return {node_id: _NODE_STATES[rec.state] for node_id, rec in self.nodes.items()}

    def outputs(self, node_id: str) -> dict[int, Any]:
        """The node's output per completed visit."""
        return {c.visit: c.output for c in self.record(node_id).completions}

    @property
    def finished(self) -> bool:
        """True when nothing is ready or running (or the run has ended)."""
        return self.status is not None or (self.ready_count == 0 and self.active == 0)

    def ready(self) -> list[str]:
        """Ids of READY nodes, in graph order (the scheduler orders them)."""
        return [node_id for node_id, rec in self.nodes.items() if rec.state == _READY]

    def take_emitted(self) -> list[GraphEvent]:
        """The derived events since the last call (the runner stores them)."""
        emitted, self.emitted = self.emitted, []
        return emitted

    # -- folding ---------------------------------------------------------------------------

    def apply(self, event: GraphEvent) -> GraphState:
        """The state after ``event`` (updated in place; returns ``self``).

        Raises GraphError, changing nothing, when the event does not fit the state.
        """
        handler = _APPLY.get(type(event))
        if handler is None:
            from . import mutations

            self._order = None  # a mutation may change the graph's shape
            mutations.apply(self, event)
        else:
            handler(self, event)
        return self

    def _start_run(self, event: RunStarted) -> None:
        if self.started:
            raise GraphError("the run has already started")
        from .mutations import classify_initial

        back = classify_initial(event.nodes, event.edges, event.entry)  # validates, raises first
        self.started = True
        self._order = None
        self.entry = event.entry
        self.payload = event.payload
        nodes = self.nodes
        order = self._next_order
        for node in event.nodes:  # ids are unique: classify_initial checked
            nodes[node.id] = NodeRecord(node, order)
            order += 1
        self._next_order = order
        # Grouped first, then frozen into tuples: appending to tuples one by one is quadratic.
        out: dict[str, list[Edge]] = {}
        inn: dict[str, list[Edge]] = {}
        loops: dict[str, list[Edge]] = {}
        for edge in event.edges:
            if back and (edge.source, edge.target) in back:
                loops.setdefault(edge.source, []).append(edge)
            else:
                out.setdefault(edge.source, []).append(edge)
                inn.setdefault(edge.target, []).append(edge)
        for groups, attribute in ((out, "out"), (inn, "inn"), (loops, "back")):
            for node_id, edges in groups.items():
                setattr(nodes[node_id], attribute, tuple(edges))
        self.refresh_ranks()
        for node_id, edges in inn.items():  # every node is PENDING: each input is pending
            nodes[node_id].pending = len(edges)
        # Only nodes without inputs can be ready (or skipped) before anything ran.
        self.settle([rec for rec in nodes.values() if not rec.inn])

    def _node_started(self, event: NodeStarted) -> None:
        rec = self.nodes.get(event.node) or self.record(event.node)
        if rec.state != _READY or event.visit != rec.visits + 1:
            raise GraphError(
                f"node {event.node!r} cannot start visit {event.visit}: it is {NodeState(rec.state)} "
                f"after {rec.visits} visit(s)"
            )
        rec.state = _ACTIVE
        rec.visits = event.visit
        rec.token += 1
        self.ready_count -= 1
        self.active += 1

    def _route_chosen(self, event: RouteChosen) -> None:
        rec = self._active(event.node, event.visit)
        if rec.spec.kind is not _SWITCH:
            raise GraphError(f"node {event.node!r} is a {rec.spec.kind.name}, not a SWITCH; it has no routes")
        for route in event.routes:
            if not _routes_to(rec, route):
                known = {e.target for e in rec.out} | {e.target for e in rec.back}
                unknown = [r for r in event.routes if r not in known]
                raise GraphError(
                    f"switch {event.node!r} chose unknown route(s) {unknown}; its routes are {sorted(known)}"
                )
        rec.routes = tuple(event.routes)

    def _node_completed(self, event: NodeCompleted) -> None:
        rec = self.nodes.get(event.node)
        if rec is None or rec.state != _ACTIVE or rec.visits != event.visit:
            rec = self._active(event.node, event.visit)  # raises
        if rec.spec.kind is _SWITCH and rec.routes is None:
            raise GraphError(f"switch {event.node!r} completed without a RouteChosen event")
        completions = rec.completions
        if type(completions) is list:
            completions.append(event)
        else:
            rec.completions = [*completions, event] if completions else (event,)
        rec.asked = rec.answers = ()
        if rec.made:
            rec.made = ()
        if event.duration is not None:
            rec.duration = event.duration
            self._duration_sum += event.duration
            self._duration_n += 1
        self.active -= 1
        if rec.rerun:  # a loop re-entered upstream while this visit ran: wait for new inputs
            rec.rerun = False
            rec.state = _PENDING
            rec.routes = None
            self.recount(rec)
            self.settle((rec,))
            return
        rec.state = _COMPLETED
        if rec.back:
            reset = self._fire_back_edges(rec)
            if rec.spec.id in reset:
                return  # the loop runs this node again: its routes are chosen anew
            if reset:  # a back-edge whose loop a change opened: the other routes go on too
                self.propagate(rec, skip=reset)
                return
        self.propagate(rec)

    def _node_failed(self, event: NodeFailed) -> None:
        rec = self._active(event.node, event.visit)
        self.active -= 1
        rec.state = _FAILED
        rec.rerun = False
        rec.asked = rec.answers = rec.made = ()
        rec.error = f"{event.error_type}: {event.error}" if event.error_type else event.error
        self.propagate(rec)

    def _node_cancelled(self, event: NodeCancelled) -> None:
        rec = self.record(event.node)
        if rec.state >= _COMPLETED:
            return  # already resolved: nothing to cancel
        if rec.state == _ACTIVE:
            self.active -= 1
        elif rec.state == _READY:
            self.ready_count -= 1
        rec.state = _CANCELLED
        rec.token += 1
        rec.reason = event.reason

    def _node_requeued(self, event: NodeRequeued) -> None:
        rec = self._active(event.node, event.visit)
        self.active -= 1
        rec.visits -= 1
        rec.rerun = False
        self.make_ready(rec)

    def _node_interrupted(self, event: NodeInterrupted) -> None:
        rec = self._active(event.node, event.visit)
        if event.index != len(rec.asked) or len(rec.asked) != len(rec.answers):
            raise GraphError(
                f"node {event.node!r} asked question {event.index} out of turn "
                f"({len(rec.asked)} asked, {len(rec.answers)} answered)"
            )
        self.active -= 1
        rec.visits -= 1  # the visit runs again, from the start, once answered
        rec.asked = (*rec.asked, event)
        rec.state = _PENDING
        rec.token += 1

    def _interrupt_answered(self, event: InterruptAnswered) -> None:
        rec = self.record(event.node)
        if not rec.waiting:
            raise GraphError(f"node {event.node!r} is not waiting for an answer")
        if event.index != len(rec.answers):
            raise GraphError(
                f"node {event.node!r} waits for the answer to question {len(rec.answers)}, not {event.index}"
            )
        rec.answers = (*rec.answers, event.answer)
        if rec.state == _PENDING:
            self.make_ready(rec)

    def _run_resumed(self, event: RunResumed) -> None:
        if self.status != "paused":
            raise GraphError(f"only a paused run can resume; this one is {self.status or 'running'}")
        self.status = None
        self.error = None

    def waiting(self) -> dict[str, NodeInterrupted]:
        """Nodes waiting for an answer, with the question each waits on."""
        return {
            node_id: rec.asked[-1]
            for node_id, rec in self.nodes.items()
            if rec.asked and rec.waiting and rec.state == _PENDING
        }

    def verdict(self) -> tuple[str, str]:
        """How a run that ran to its end finished, ``(status, reason)``: failed (the graph's
        error, or failed nodes), paused (nodes wait for answers) or completed."""
        if self.error is not None:
            return "failed", self.error
        failed = [node_id for node_id, rec in self.nodes.items() if rec.state == _FAILED]
        if failed:
            return "failed", f"node(s) {failed[:10]} failed"
        waiting = self.waiting()
        if waiting:
            return "paused", f"waiting for answers: {', '.join(sorted(waiting)[:10])}"
        return "completed", ""

    def _run_finished(self, event: RunFinished) -> None:
        self.status = event.status
        if event.status == "paused":  # nodes keep their states: the run continues later
            return
        for rec in self.nodes.values():  # every node ends in a terminal state
            if rec.state < _COMPLETED:
                rec.state = _CANCELLED
                rec.token += 1
                rec.reason = rec.reason or f"the run {event.status} before it finished"
        self.ready_count = self.active = 0
        if event.reason and self.error is None and event.status != "completed":
            self.error = event.reason

    def _confirm(self, event: NodeReady | NodeSkipped) -> None:
        """A stored derived event: the fold derives its own, so this one changes nothing.

        One that disagrees with the fold was written by an earlier core (0.1.0's split
        logged ``NodeReady`` for the node it fed, then re-opened it); such a run still
        loads, and the decisions in its log are checked as always.
        """
        self.record(event.node)  # a derived event about an unknown node: the log is malformed

    def _active(self, node_id: str, visit: int) -> NodeRecord:
        rec = self.record(node_id)
        if rec.state != _ACTIVE or rec.visits != visit:
            raise GraphError(
                f"node {node_id!r} visit {visit} is not running (it is {NodeState(rec.state)}, "
                f"visit {rec.visits})"
            )
        return rec

    # -- transitions (also used by .mutations) ------------------------------------------

    def add_record(self, node: Node) -> NodeRecord:
        """A new PENDING node (not yet linked or counted)."""
        if node.id in self.nodes:
            raise GraphError(f"duplicate node id {node.id!r}; ids must be unique")
        rec = NodeRecord(spec=node, order=self._next_order)
        self._next_order += 1
        self.nodes[node.id] = rec
        return rec

    def link(self, edge: Edge, back: bool) -> None:
        """Attach ``edge`` (forward or back) to its endpoints' records."""
        source = self.nodes[edge.source]
        if back:
            source.back = (*source.back, edge)
            return
        target = self.nodes[edge.target]
        source.out = (*source.out, edge)
        target.inn = (*target.inn, edge)

    def input_status(self, edge: Edge) -> int:
        """What the forward input ``edge`` is for its target right now."""
        source = self.nodes[edge.source]
        state = source.state
        if state == _COMPLETED:
            if source.spec.kind is _SWITCH:
                return _DONE if source.routes is not None and edge.target in source.routes else _DEAD
            return _DONE
        if state == _SKIPPED:
            return _BLOCKED if source.blocked_skip else _DEAD
        if state in (_FAILED, _CANCELLED):
            return _BLOCKED
        return _OPEN

    def recount(self, rec: NodeRecord) -> None:
        """Recompute ``rec``'s input counters from its sources' states."""
        counts = [0, 0, 0, 0]
        for edge in rec.inn:
            counts[self.input_status(edge)] += 1
        rec.pending, rec.done, rec.dead, rec.blocked = counts

    def settle(self, records: Iterable[NodeRecord]) -> None:
        """Evaluate PENDING records (in the order given) and everything that follows."""
        work = [rec for rec in records if rec.state == _PENDING]
        work.reverse()
        while work:
            rec = work.pop()
            if rec.state == _PENDING:
                self._evaluate(rec, work)

    def propagate(self, rec: NodeRecord, skip: set[str] | None = None) -> None:
        """``rec`` just resolved: update its forward targets (but those in ``skip``, which a
        loop reset and recounted already), and theirs in turn."""
        work: list[NodeRecord] = []
        self._push_out(rec, work, skip)
        while work:
            child = work.pop()
            if child.state == _PENDING:
                self._evaluate(child, work)

    def _push_out(self, rec: NodeRecord, work: list[NodeRecord], skip: set[str] | None = None) -> None:
        # What ``input_status`` says of each out-edge, worked out once for the source.
        state = rec.state
        routes: tuple[str, ...] | None = None
        if state == _COMPLETED:
            status = _DONE
            if rec.spec.kind is _SWITCH:
                routes = rec.routes or ()
        elif state == _SKIPPED and not rec.blocked_skip:
            status = _DEAD
        else:
            status = _BLOCKED
        nodes = self.nodes
        edges = rec.out if skip is None else [e for e in rec.out if e.target not in skip]
        for edge in reversed(edges):
            child = nodes[edge.target]
            if routes is not None:
                status = _DONE if edge.target in routes else _DEAD
            child.pending -= 1
            if status == _DONE:
                child.done += 1
                if child.state != _PENDING and child.spec.kind is _AGGREGATE:
                    child.late = (*child.late, (rec.spec.id, rec.visits))
            elif status == _DEAD:
                child.dead += 1
            else:
                child.blocked += 1
            if child.state == _PENDING:
                work.append(child)

    def _evaluate(self, rec: NodeRecord, work: list[NodeRecord]) -> None:
        inputs = len(rec.inn)
        if rec.spec.kind is _AGGREGATE and inputs:
            live = inputs - rec.dead
            if live == 0:
                self._skip(rec, False, "no route reached any of its inputs", work)
                return
            quorum = rec.spec.quorum
            need = live if quorum == "all" else 1 if quorum == "any" else min(int(quorum), live)
            if rec.done >= need:
                self.make_ready(rec)
            elif rec.done + rec.pending < need:
                failed = [e.source for e in rec.inn if self.input_status(e) == _BLOCKED]
                self._skip(rec, True, f"quorum {need} of {live} unreachable: {failed} failed", work)
            return
        if rec.blocked:
            failed = [e.source for e in rec.inn if self.input_status(e) == _BLOCKED]
            self._skip(rec, True, f"input(s) {failed} failed or were cancelled", work)
        elif rec.pending:
            return
        elif rec.done or not inputs:
            self.make_ready(rec)
        else:
            self._skip(rec, False, "no route reached it", work)

    def make_ready(self, rec: NodeRecord) -> None:
        """``rec`` may start its next visit (unless it waits for an answer: it stays PENDING)."""
        if rec.asked and rec.waiting:
            rec.state = _PENDING
            return
        rec.state = _READY
        rec.token += 1
        self.ready_count += 1
        entry = (-rec.rank, -rec.spec.priority, rec.order, rec.token, rec.spec.id)
        lane = self.lanes.get(rec.spec.model)
        if lane is None:
            lane = self.lanes[rec.spec.model] = []
        heapq.heappush(lane, entry)
        self.emitted.append(NodeReady(rec.spec.id, rec.visits + 1))

    def _skip(self, rec: NodeRecord, blocked: bool, reason: str, work: list[NodeRecord]) -> None:
        rec.state = _SKIPPED
        rec.blocked_skip = blocked
        rec.reason = reason
        self.emitted.append(NodeSkipped(rec.spec.id, reason))
        self._push_out(rec, work)

    def _fire_back_edges(self, rec: NodeRecord) -> set[str]:
        """Fire ``rec``'s back-edges; the ids of the nodes the loops reset (none: no loop ran)."""
        fired = [
            e for e in rec.back if rec.spec.kind is not _SWITCH or (rec.routes and e.target in rec.routes)
        ]
        reset: set[str] = set()
        for edge in fired:
            target = self.nodes[edge.target]
            spent = self._exhausted(target)
            if spent is not None:
                cap = spent.spec.max_visits
                exits = tuple(e.target for e in rec.out)
                if spent.spec.on_exhausted == "fail" or rec.spec.kind is not _SWITCH or not exits:
                    why = "" if spent.spec.on_exhausted == "fail" else f"; {rec.spec.id!r} has no exit route"
                    self.error = self.error or (
                        f"loop from {rec.spec.id!r} would enter {spent.spec.id!r} a "
                        f"{spent.visits + 1}th time, past its max_visits={cap}{why}"
                    )
                    continue
                if rec.routes is not None:
                    rec.routes = tuple(r for r in rec.routes if r != edge.target) + tuple(
                        x for x in exits if x not in rec.routes
                    )
                continue
            reset.update(self.reenter(target, rec.spec.id))
        return reset

    def _exhausted(self, target: NodeRecord) -> NodeRecord | None:
        """The node a loop into ``target`` would enter past its ``max_visits``: the target, or
        a capped node downstream of it that the loop would run again (a nested loop's head)."""
        cap = target.spec.max_visits
        if cap is not None and target.visits >= cap:
            return target
        for rec in self.descendants(target.spec.id)[1:]:
            cap = rec.spec.max_visits
            if cap is not None and rec.visits >= cap:
                return rec
        return None

    def reenter(self, target: NodeRecord, trigger: str) -> list[str]:
        """Reset ``target`` and its descendants to PENDING; ``target`` starts its next visit.

        Returns the ids of the nodes reset.
        """
        region = self.descendants(target.spec.id)
        for rec in region:
            if rec.state == _ACTIVE:
                rec.rerun = True
                continue
            if rec.state == _READY:
                self.ready_count -= 1
            rec.state = _PENDING
            rec.token += 1
            rec.routes = None
            rec.trigger = None
            rec.blocked_skip = False
            rec.reason = ""
        for rec in region:
            if rec.state == _PENDING:
                self.recount(rec)
        self.refresh_ranks()
        target.trigger = trigger
        if target.state != _ACTIVE:
            self.make_ready(target)
        # else: the target is still running its visit (it started from another input):
        # it finishes that visit, then starts the next one (``rerun``).
        self.settle(region[1:])
        return [rec.spec.id for rec in region]

    def descendants(self, node_id: str) -> list[NodeRecord]:
        """The node and everything forward-reachable from it, the node first."""
        nodes = self.nodes
        start = nodes[node_id]
        seen = {node_id}
        found = [start]
        stack = [start]
        while stack:
            for edge in stack.pop().out:
                if edge.target not in seen:
                    seen.add(edge.target)
                    child = nodes[edge.target]
                    found.append(child)
                    stack.append(child)
        return found

    def topological(self) -> list[NodeRecord]:
        """Every node, sources before their targets (ties in graph order)."""
        if self._order is not None:
            return list(self._order)
        indegree = {node_id: len(rec.inn) for node_id, rec in self.nodes.items()}
        order = [rec for rec in self.nodes.values() if not rec.inn]
        nodes = self.nodes
        i = 0
        while i < len(order):
            for edge in order[i].out:
                indegree[edge.target] -= 1
                if indegree[edge.target] == 0:
                    order.append(nodes[edge.target])
            i += 1
        self._order = order
        return list(order)

    def refresh_ranks(self) -> None:
        """Critical-path ranks: a node's weight plus its heaviest chain of dependents.

        A node's weight is its last observed duration; unobserved nodes weigh the mean
        observed duration (1.0 before anything was observed), so ranks share one unit.
        """
        default = self._duration_sum / self._duration_n if self._duration_n else 1.0
        nodes = self.nodes
        self.topological()
        assert self._order is not None
        for rec in reversed(self._order):
            below = 0.0
            for edge in rec.out:
                rank = nodes[edge.target].rank
                if rank > below:
                    below = rank
            rank = (rec.duration if rec.duration is not None else default) + below
            if rank != rec.rank:
                rec.rank = rank
                if rec.state == _READY:  # its queue entry carries the old rank: queue it anew
                    rec.token += 1
                    entry = (-rank, -rec.spec.priority, rec.order, rec.token, rec.spec.id)
                    heapq.heappush(self.lanes.setdefault(rec.spec.model, []), entry)


def _routes_to(rec: NodeRecord, target: str) -> bool:
    """True when ``rec`` has an edge (forward or back) to ``target``."""
    for edge in rec.out:
        if edge.target == target:
            return True
    return any(edge.target == target for edge in rec.back)


_APPLY: dict[type[GraphEvent], Any] = {
    RunStarted: GraphState._start_run,
    NodeStarted: GraphState._node_started,
    RouteChosen: GraphState._route_chosen,
    NodeCompleted: GraphState._node_completed,
    NodeFailed: GraphState._node_failed,
    NodeCancelled: GraphState._node_cancelled,
    NodeRequeued: GraphState._node_requeued,
    RunFinished: GraphState._run_finished,
    NodeInterrupted: GraphState._node_interrupted,
    InterruptAnswered: GraphState._interrupt_answered,
    RunResumed: GraphState._run_resumed,
    NodeReady: GraphState._confirm,
    NodeSkipped: GraphState._confirm,
}


def fold(events: Iterable[GraphEvent], state: GraphState | None = None) -> GraphState:
    """The state after ``events`` (from a fresh state unless one is given)."""
    state = GraphState() if state is None else state
    for event in events:
        state.apply(event)
    state.emitted.clear()
    return state


def iter_records(state: GraphState) -> Iterator[tuple[str, NodeRecord]]:
    """``(node id, record)`` pairs in graph order."""
    return iter(state.nodes.items())
