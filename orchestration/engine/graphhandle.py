"""Changing a running graph: :class:`GraphHandle`, for handlers (``ctx.graph``) and from
outside the run (``GraphRun.graph``).

A visit that runs again (after a crash, or once its question is answered) replays the
changes it made the first time instead of making them twice; :func:`_check_replayed`
refuses a handler that changes the graph differently the second time.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import GraphError, GraphMutationError
from .core import (
    Edge,
    EdgeAdded,
    EdgeRemoved,
    GraphEvent,
    Node,
    NodeAdded,
    NodeEdited,
    NodeKind,
    NodeRemoved,
    NodeSplit,
    NodeState,
    ReworkInserted,
)
from .core.spec import Contract

if TYPE_CHECKING:
    from .graphrun import GraphRun

__all__ = ["GraphHandle"]


class GraphHandle:
    """Change a running graph.  Each change is validated, then recorded as one event.

    Refused changes raise :class:`~orchestration.errors.GraphMutationError` (or
    GraphError) and change nothing.  Usable from handlers (``ctx.graph``, whose changes
    are recorded ``by`` their node) and from outside the run (``GraphRun.graph``).
    """

    __slots__ = ("_calls", "_made", "_origin", "_run")

    def __init__(self, run: GraphRun, origin: str | None = None) -> None:
        self._run = run
        self._origin = origin
        self._calls = 0
        #: What the origin's visit changed before it ran again (see NodeContext.graph).
        self._made = run.state.nodes[origin].made if origin is not None else ()

    def _change(self, event: GraphEvent) -> None:
        # ``_calls`` counts the changes this visit made, not the calls: a refused change
        # is not in ``made``, so counting it would shift every later change's replay.
        if self._origin is not None:
            event = msgspec.structs.replace(event, by=self._origin)
            index = self._calls
            if index < len(self._made):
                before = self._made[index]
                if _subject(before) != _subject(event):
                    _refuse_again(self._run, event)  # refused the first time: refused again
                    _check_replayed(self._origin, before, event)
                self._calls += 1
                return  # made before this visit ran again: already in the graph
        new: list[Node] = []
        if isinstance(event, NodeAdded | ReworkInserted):
            new.append(event.node)
        elif isinstance(event, NodeSplit):
            new.extend((*event.parts, event.join))
        for node in new:
            if self._run._handler(node) is None:
                raise GraphError(
                    f"no handler for node {node.id!r} ({node.kind.name}); add one to the run's handlers"
                )
        self._run.record(event)
        if self._origin is not None:
            self._calls += 1
        self._run.dispatch()

    def state(self, node_id: str) -> NodeState:
        """A node's state now."""
        return self._run.state.state_of(node_id)

    def add_node(self, node: Node, edges: Iterable[Edge] = (), *, reason: str = "") -> None:
        """Add ``node`` with edges to or from it."""
        self._change(NodeAdded(node, tuple(edges), reason))

    def add_edge(
        self, source: str, target: str, *, contract: Contract | None = None, reason: str = ""
    ) -> None:
        """Add the edge ``source -> target`` (a dependency, or a loop's back-edge)."""
        self._change(EdgeAdded(Edge(source=source, target=target, contract=contract), reason))

    def refine(
        self, node_id: str, depends_on: str, *, contract: Contract | None = None, reason: str = ""
    ) -> None:
        """Make a node that has not started wait for ``depends_on`` too."""
        self.add_edge(depends_on, node_id, contract=contract, reason=reason)

    def remove_edge(self, source: str, target: str, *, reason: str = "") -> None:
        """Remove the edge ``source -> target``."""
        self._change(EdgeRemoved(source, target, reason))

    def remove_node(self, node_id: str, *, cascade: bool = False, reason: str = "") -> None:
        """Remove a node (with every descendant when ``cascade``); never an ACTIVE one."""
        if cascade and node_id in self._run.state.nodes:
            ids = tuple(rec.spec.id for rec in self._run.state.descendants(node_id))
        else:
            ids = (node_id,)
        self._change(NodeRemoved(ids, reason))

    def edit_node(self, node: Node, *, reason: str = "") -> None:
        """Replace the definition of a node that has not started (same id)."""
        self._change(NodeEdited(node, reason))

    def split(
        self, node_id: str, parts: Sequence[Node], join: Node | None = None, *, reason: str = ""
    ) -> None:
        """Replace a pending node by parallel ``parts`` feeding ``join`` (default: an AGGREGATE)."""
        join = join or Node(id=f"{node_id}.join", kind=NodeKind.AGGREGATE)
        self._change(NodeSplit(node_id, tuple(parts), join, reason))

    def rework(self, source: str, consumer: str, node: Node, *, reason: str = "") -> None:
        """Insert ``node`` between completed ``source`` and ``consumer``; the consumer runs again."""
        self._change(ReworkInserted(source, consumer, node, reason))


def _subject(event: GraphEvent) -> tuple[Any, ...]:
    """What a change is about: a re-run visit's change must match the one it replays."""
    if isinstance(event, NodeAdded | NodeEdited):
        return (type(event), event.node.id)
    if isinstance(event, NodeRemoved):
        return (type(event), event.nodes[0])  # a cascade's descendants are found anew
    if isinstance(event, EdgeAdded):
        return (type(event), event.edge.source, event.edge.target)
    if isinstance(event, EdgeRemoved):
        return (type(event), event.source, event.target)
    if isinstance(event, NodeSplit):
        return (type(event), event.node)
    if isinstance(event, ReworkInserted):
        return (type(event), event.source, event.consumer, event.node.id)
    return (type(event),)


def _refuse_again(run: GraphRun, event: GraphEvent) -> None:
    """Raise what the run's graph now says against ``event``, if it refuses it (tried on a
    copy, so nothing changes); a re-run visit repeating a change that was refused the first
    time gets the same refusal, where its handler expects one."""
    copy.deepcopy(run.state).apply(event)  # raises the refusal, if any


def _check_replayed(node_id: str, before: GraphEvent, now: GraphEvent) -> None:
    if _subject(before) != _subject(now):
        raise GraphMutationError(
            f"node {node_id!r} ran its visit again and changed the graph differently: "
            f"{_describe_change(now)} where it first made {_describe_change(before)}; "
            "a handler must make the same changes each time it runs"
        )


def _describe_change(event: GraphEvent) -> str:
    subject = _subject(event)
    return f"{type(event).__name__}({', '.join(repr(part) for part in subject[1:])})"
