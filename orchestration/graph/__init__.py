"""The Graph API: build a graph of nodes and edges, run it, change it while it runs.

```python
graph = Graph(
    nodes=[Node(id="agent"), Node(id="router", kind=NodeKind.SWITCH), Node(id="end")],
    edges=[
        Edge(source="agent", target="router"),
        Edge(source="router", target="agent"),  # the loop's back-edge
        Edge(source="router", target="end"),
    ],
    entry="agent",
)
result = await graph.run({"agent": agent, "router": router, "end": finish}, payload={...})
```

A front end (L4) over the engine: :class:`Graph` only collects and validates nodes and
edges; running is :class:`~orchestration.engine.graphrun.GraphRun` over the pure core
(:mod:`orchestration.engine.core`), which also defines :class:`Node`, :class:`Edge`,
:class:`Contract` and :class:`NodeKind` (the events carry them).  Handlers receive a
:class:`NodeContext` (a mapping of their input, plus visit, attributed context,
cancellation token and a :class:`GraphHandle` for mutations) and may return a
:class:`NodeOutput` to fill the summary/critical/artifact channels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from ..engine.core import AttributedContext, ContextEntry, Contract, Edge, Node, NodeKind, NodeState
from ..engine.core.context import ArtifactRef
from ..engine.core.mutations import classify_initial
from ..engine.graphrun import (
    CancellationToken,
    GraphHandle,
    GraphResult,
    GraphRun,
    Handler,
    NodeContext,
    NodeOutput,
    answer,
)
from ..errors import GraphError

__all__ = (
    "ArtifactRef",
    "AttributedContext",
    "CancellationToken",
    "ContextEntry",
    "Contract",
    "Edge",
    "Graph",
    "GraphHandle",
    "GraphResult",
    "GraphRun",
    "Node",
    "NodeContext",
    "NodeKind",
    "NodeOutput",
    "NodeState",
    "answer",
)


class Graph:
    """Nodes and edges, validated; :meth:`run` executes them.

    Build it at once (``Graph(nodes=[...], edges=[...], entry="id")``, validated there)
    or incrementally with :meth:`add_node` and :meth:`add_edge` (validated as a whole
    when it runs, or by :meth:`validate`).
    """

    def __init__(
        self, nodes: Iterable[Node] = (), edges: Iterable[Edge] = (), entry: str | None = None
    ) -> None:
        self._nodes: dict[str, Node] = {}
        self._edges: list[Edge] = []
        self._valid = False
        #: ``(nodes, edges)`` as tuples while the graph is unchanged (validated, and handed
        #: to runs as they are: a run does not validate the same tuples again).
        self._frozen: tuple[tuple[Node, ...], tuple[Edge, ...]] | None = None
        self.entry = entry
        known = self._nodes
        for node in nodes:
            if type(node) is Node and node.id not in known:  # the common case of add_node
                known[node.id] = node
            else:
                self.add_node(node)
        for edge in edges:
            if type(edge) is Edge and edge.source in known and edge.target in known:  # of add_edge
                self._edges.append(edge)
            else:
                self.add_edge(edge)
        if self._nodes:
            self.validate()

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The nodes, in the order added."""
        return self._frozen[0] if self._frozen is not None else tuple(self._nodes.values())

    @property
    def edges(self) -> tuple[Edge, ...]:
        """The edges, in the order added."""
        return self._frozen[1] if self._frozen is not None else tuple(self._edges)

    def add_node(self, node: Node | str, kind: NodeKind = NodeKind.TASK, **options: Any) -> Graph:
        """Add a node (a :class:`Node`, or an id plus Node's keywords); returns the graph."""
        if isinstance(node, str):
            node = Node(id=node, kind=kind, **options)
        if not isinstance(node, Node):
            raise GraphError(f"expected a Node or a node id, got {type(node).__name__}")
        if node.id in self._nodes:
            raise GraphError(f"duplicate node id {node.id!r}; ids must be unique")
        self._nodes[node.id] = node
        self._valid = False
        self._frozen = None
        return self

    def add_edge(
        self, edge: Edge | str, target: str | None = None, *, contract: Contract | None = None
    ) -> Graph:
        """Add an edge (an :class:`Edge`, or ``source, target``); both nodes must exist."""
        if isinstance(edge, str):
            if target is None:
                raise GraphError(f"add_edge({edge!r}, ...) needs a target node id")
            edge = Edge(source=edge, target=target, contract=contract)
        if not isinstance(edge, Edge):
            raise GraphError(f"expected an Edge, got {type(edge).__name__}")
        for end in (edge.source, edge.target):
            if end not in self._nodes:
                raise GraphError(f"edge {edge.source!r} -> {edge.target!r} names unknown node {end!r}")
        self._edges.append(edge)
        self._valid = False
        self._frozen = None
        return self

    def validate(self) -> None:
        """Raise GraphError unless the graph can run (cycles through switches, routes, entry)."""
        if not self._nodes:
            raise GraphError("the graph has no nodes; add at least one")
        if not self._valid:
            frozen = (tuple(self._nodes.values()), tuple(self._edges))
            classify_initial(*frozen, self.entry)
            self._valid = True
            self._frozen = frozen

    def start(self, handlers: Mapping[Any, Handler], **options: Any) -> GraphRun:
        """A :class:`GraphRun` to drive yourself: ``await run.run()``, ``run.graph``, ``run.cancel()``."""
        self.validate()
        return GraphRun(self.nodes, self.edges, handlers, entry=self.entry, **options)

    async def run(
        self,
        handlers: Mapping[Any, Handler],
        *,
        payload: Any = None,
        store: Any = None,
        stream_callback: Any = None,
        **options: Any,
    ) -> GraphResult:
        """Run the graph to the end.  ``options``: run_id (resume), concurrency, capacity, headroom, title."""
        run = self.start(handlers, payload=payload, store=store, stream_callback=stream_callback, **options)
        return await run.run()

    def run_sync(self, handlers: Mapping[Any, Handler], **options: Any) -> GraphResult:
        """:meth:`run` from synchronous code (not inside a running event loop)."""
        return asyncio.run(self.run(handlers, **options))

    def __repr__(self) -> str:
        return f"Graph({len(self._nodes)} nodes, {len(self._edges)} edges, entry={self.entry!r})"
