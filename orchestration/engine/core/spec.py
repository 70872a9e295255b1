"""What a graph is made of: node kinds and states, nodes, edges and their contracts.

These are the values the graph core folds and the events carry, so they are
``msgspec.Struct(frozen=True, gc=False)``: immutable, cheap to build, and never scanned
by the garbage collector (a 100,000-node graph must not make every collection slower).
They validate their own fields on construction, so a bad value fails where it is
written, with a one-line :class:`~orchestration.errors.GraphError` saying what to fix.

``orchestration.graph`` re-exports :class:`Node`, :class:`Edge`, :class:`NodeKind` and
:class:`Contract` as the public Graph API.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Literal

import msgspec

from ...errors import GraphError

__all__ = ["Contract", "Edge", "Node", "NodeKind", "NodeState", "Quorum"]


class NodeKind(StrEnum):
    """What a node does when it runs."""

    #: Runs its handler once all its inputs are resolved (at least one completed).
    TASK = "task"
    #: Its handler returns the route(s) to take: target node ids of its outgoing edges.
    SWITCH = "switch"
    #: Proceeds once a quorum of its inputs completed (all, any, or k of n).
    AGGREGATE = "aggregate"
    #: An end of the graph; without a handler it returns its input.
    TERMINAL = "terminal"


class NodeState(IntEnum):
    """Where a node stands (ints: the fold keeps them in untracked records)."""

    PENDING = 0
    READY = 1
    ACTIVE = 2
    COMPLETED = 3
    FAILED = 4
    SKIPPED = 5
    CANCELLED = 6

    @property
    def is_terminal(self) -> bool:
        """True for COMPLETED, FAILED, SKIPPED and CANCELLED."""
        return self >= NodeState.COMPLETED

    def __str__(self) -> str:
        return self.name.lower()


#: ``"all"`` of the live inputs, ``"any"`` one of them, or an int k (k of n).
Quorum = Literal["all", "any"] | int


class Contract(msgspec.Struct, frozen=True, gc=False):
    """What an edge's consumer needs (``expectation``) and its producer delivers (``promise``).

    Shown to the consuming node with the producer's contribution in its attributed context.
    """

    expectation: str = ""
    promise: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.expectation, str) or not isinstance(self.promise, str):
            raise GraphError("Contract(expectation=..., promise=...) takes two strings")


class Node(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One node of a graph.

    Args:
        id: unique, non-empty.
        kind: a :class:`NodeKind` (default TASK).
        max_visits: how often a loop may enter the node (None: no cap).
        on_exhausted: when a back-edge would enter the node past ``max_visits``:
            ``"exit"`` takes the loop's exit route (the switch's forward routes), or fails
            the run when there is none; ``"fail"`` fails the run.
        priority: higher runs first among nodes on equally long critical paths.
        quorum: for AGGREGATE nodes, ``"all"``, ``"any"`` or k (at least 1).
        model: the model the node calls (the scheduler's per-model capacity lane).
        cost: estimated cost in USD, held against the budget headroom when scheduling.
        timeout: seconds the handler may take (None: no limit).
        handler: the key in ``handlers`` to run (default: the node id, then its kind).
        description: free text, shown to handlers and on the live page.
        approve_before: a yes/no question a person must answer yes to before each
            visit runs (the run pauses until answered; no fails the node).
    """

    id: str
    kind: NodeKind = NodeKind.TASK
    max_visits: int | None = None
    on_exhausted: Literal["exit", "fail"] = "exit"
    priority: int = 0
    quorum: Quorum = "all"
    model: str | None = None
    cost: float = 0.0
    timeout: float | None = None
    handler: str | None = None
    description: str = ""
    approve_before: str | None = None

    def __post_init__(self) -> None:
        if (
            type(self.id) is str
            and self.id
            and type(self.kind) is NodeKind
            and self.max_visits is None
            and self.on_exhausted == "exit"
            and self.quorum == "all"
            and self.timeout is None
            and self.cost == 0.0
            and self.approve_before is None
        ):
            return  # the common node: nothing more to check
        if not isinstance(self.id, str) or not self.id:
            raise GraphError(f"every node needs a non-empty string id, got {self.id!r}")
        if not isinstance(self.kind, NodeKind):
            try:
                msgspec.structs.force_setattr(self, "kind", NodeKind(self.kind))
            except ValueError:
                kinds = ", ".join(k.name for k in NodeKind)
                raise GraphError(
                    f"node {self.id!r}: kind must be one of {kinds}, not {self.kind!r}"
                ) from None
        if self.max_visits is not None and (
            not isinstance(self.max_visits, int) or isinstance(self.max_visits, bool) or self.max_visits < 1
        ):
            raise GraphError(f"node {self.id!r}: max_visits must be a positive int or None")
        if self.on_exhausted not in ("exit", "fail"):
            raise GraphError(f"node {self.id!r}: on_exhausted must be 'exit' or 'fail'")
        if self.quorum not in ("all", "any") and (
            not isinstance(self.quorum, int) or isinstance(self.quorum, bool) or self.quorum < 1
        ):
            raise GraphError(f"node {self.id!r}: quorum must be 'all', 'any' or an int >= 1")
        if self.timeout is not None and not self.timeout > 0:
            raise GraphError(f"node {self.id!r}: timeout must be > 0 seconds or None")
        if not self.cost >= 0:
            raise GraphError(f"node {self.id!r}: cost must be >= 0")
        if self.approve_before is not None and (
            not isinstance(self.approve_before, str) or not self.approve_before
        ):
            raise GraphError(f"node {self.id!r}: approve_before must be a non-empty question or None")


class Edge(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """``source`` feeds ``target``, optionally under a :class:`Contract`.

    Out of a SWITCH an edge is a route, named by its target.  An edge that closes a cycle
    is a back-edge (a loop); every cycle must pass through a SWITCH.
    """

    source: str
    target: str
    contract: Contract | None = None

    def __post_init__(self) -> None:
        source, target = self.source, self.target
        if type(source) is str and type(target) is str and source and target and source != target:
            return  # the common edge: nothing more to check
        if not isinstance(source, str) or not source:
            raise GraphError(f"an edge needs a non-empty source node id, got {source!r}")
        if not isinstance(target, str) or not target:
            raise GraphError(f"edge from {source!r} needs a non-empty target node id")
        raise GraphError(f"edge {source!r} -> {target!r} points at its own source")
