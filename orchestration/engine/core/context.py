"""Attributed context: what a node sees of its ancestors, one entry per contributor.

Nothing is merged: each contributing ancestor gives its own :class:`ContextEntry` with
provenance (node id, distance, the shortest path to the consumer, the contract of the
edge it left by, the visit it delivered in), in three channels:

- ``critical``: structured key/value decisions, reaching every descendant;
- ``summary``: short text, reaching two hops;
- ``artifacts``: documents, code, the plain output, reaching every descendant *by
  reference* (:class:`ArtifactRef`, resolved with :func:`resolve`), so a large output is
  stored once, in its ``NodeCompleted`` event, and never copied into other events.

Contributors are found walking inputs backwards: a node's done inputs (out of a switch,
only the routes it chose), and for a visit a loop re-entered, the node whose back-edge
fired.  Computed on demand from the fold (pure), never stored.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...errors import GraphError
from .spec import Contract, Edge
from .state import GraphState, NodeRecord

__all__ = ["ArtifactRef", "AttributedContext", "ContextEntry", "attributed_context", "resolve"]

_COMPLETED = 3
_SUMMARY_HOPS = 2


class ArtifactRef(msgspec.Struct, frozen=True, gc=False):
    """Where an artifact lives: the ``name`` delivered by ``node`` in ``visit``."""

    node: str
    visit: int
    name: str


class ContextEntry(msgspec.Struct, frozen=True, gc=False):
    """One ancestor's contribution to one channel, with its provenance."""

    node: str
    distance: int
    path: tuple[str, ...]
    contract: Contract | None
    visit: int
    value: Any

    @property
    def expectation(self) -> str:
        """What the consumer side of the edge asked for ('' without a contract)."""
        return self.contract.expectation if self.contract else ""

    @property
    def promise(self) -> str:
        """What the producer side of the edge promised ('' without a contract)."""
        return self.contract.promise if self.contract else ""


class AttributedContext(msgspec.Struct, frozen=True, gc=False):
    """The three channels a node sees (each a tuple of entries, nearest first)."""

    critical: tuple[ContextEntry, ...] = ()
    summary: tuple[ContextEntry, ...] = ()
    artifacts: tuple[ContextEntry, ...] = ()

    def upstream(self) -> list[dict[str, Any]]:
        """Cascade's view: one dict per contributing ancestor, its channels under ``delivered``."""
        merged: dict[str, dict[str, Any]] = {}
        for channel in ("critical", "summary", "artifacts"):
            for entry in getattr(self, channel):
                item = merged.setdefault(
                    entry.node,
                    {
                        "node_id": entry.node,
                        "distance": entry.distance,
                        "path": list(entry.path),
                        "visit": entry.visit,
                        "expectation": entry.expectation,
                        "promise": entry.promise,
                        "delivered": {},
                    },
                )
                item["delivered"][channel] = entry.value
        return sorted(merged.values(), key=lambda item: (item["distance"], item["node_id"]))


def _contributors(state: GraphState, rec: NodeRecord) -> list[tuple[str, Edge]]:
    """``(source id, edge)`` of each input that delivered to ``rec``'s current visit."""
    found: list[tuple[str, Edge]] = []
    for edge in rec.inn:
        source = state.nodes[edge.source]
        if source.state != _COMPLETED or not source.completions:
            continue
        if source.routes is not None and edge.target not in source.routes:
            continue
        found.append((edge.source, edge))
    if rec.trigger is not None and rec.trigger in state.nodes:
        trigger = state.nodes[rec.trigger]
        back = next((e for e in trigger.back if e.target == rec.spec.id), None)
        if back is not None and trigger.completions:
            found.append((rec.trigger, back))
    return found


def attributed_context(state: GraphState, node_id: str) -> AttributedContext:
    """The attributed context of ``node_id``'s current (or next) visit."""
    start = state.record(node_id)
    # Breadth-first, so each ancestor is met first at its shortest distance.
    paths: dict[str, tuple[tuple[str, ...], Edge]] = {}
    frontier: list[tuple[str, tuple[str, ...]]] = [(node_id, (node_id,))]
    while frontier:
        next_frontier: list[tuple[str, tuple[str, ...]]] = []
        for current, path in frontier:
            for source, edge in _contributors(state, state.nodes[current]):
                if source in paths or source == node_id:
                    continue
                route = (source, *path)
                paths[source] = (route, edge)
                next_frontier.append((source, route))
        frontier = next_frontier
    critical: list[ContextEntry] = []
    summary: list[ContextEntry] = []
    artifacts: list[ContextEntry] = []
    for source, (path, edge) in paths.items():
        done = state.nodes[source].completions[-1]
        common = (source, len(path) - 1, path, edge.contract, done.visit)
        if done.critical:
            critical.append(ContextEntry(*common, dict(done.critical)))
        if done.summary is not None and len(path) - 1 <= _SUMMARY_HOPS:
            summary.append(ContextEntry(*common, done.summary))
        names = ["output", *(done.artifacts or {})]
        refs = {name: ArtifactRef(source, done.visit, name) for name in names}
        artifacts.append(ContextEntry(*common, refs))
    del start
    return AttributedContext(tuple(critical), tuple(summary), tuple(artifacts))


def resolve(state: GraphState, ref: ArtifactRef) -> Any:
    """The value an :class:`ArtifactRef` points at (GraphError if it is gone)."""
    rec = state.nodes.get(ref.node)
    done = next((c for c in (rec.completions if rec else ()) if c.visit == ref.visit), None)
    if done is None:
        raise GraphError(f"no output of node {ref.node!r} visit {ref.visit}")
    if ref.name == "output":
        return done.output
    if not done.artifacts or ref.name not in done.artifacts:
        raise GraphError(f"node {ref.node!r} visit {ref.visit} delivered no artifact {ref.name!r}")
    return done.artifacts[ref.name]
