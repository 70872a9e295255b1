"""The graph validation's fast paths give the answers of the full walk.

``classify_initial`` skips the depth-first walk when no edge can close a cycle (every
edge points at a later node, or Kahn's algorithm orders every node), and a run started
from a ``Graph`` reuses the validation the graph already did.  These tests hold both to
the walk: same back-edges, same errors, and a changed graph is validated again.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.engine.core import mutations
from orchestration.engine.core.mutations import _back_edges, classify_initial
from orchestration.errors import GraphError
from orchestration.graph import Edge, Graph, Node, NodeKind
from orchestration.stores import MemoryStore


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[Node], list[Edge], str]:
    count = draw(st.integers(min_value=1, max_value=9))
    kinds = draw(st.lists(st.sampled_from([NodeKind.TASK, NodeKind.SWITCH]), min_size=count, max_size=count))
    nodes = [Node(id=f"n{i}", kind=kind) for i, kind in enumerate(kinds)]
    pairs = draw(
        st.lists(
            st.tuples(st.integers(0, count - 1), st.integers(0, count - 1)).filter(lambda p: p[0] != p[1]),
            unique=True,
            max_size=count * 3,
        )
    )
    edges = [Edge(source=f"n{a}", target=f"n{b}") for a, b in pairs]
    for node in nodes:  # every switch gets a route
        if node.kind is NodeKind.SWITCH and not any(e.source == node.id for e in edges):
            other = next((n.id for n in nodes if n.id != node.id), None)
            if other is None:
                nodes = [Node(id=node.id)]
            else:
                edges.append(Edge(source=node.id, target=other))
    order = draw(st.permutations(nodes))
    entry = draw(st.sampled_from([n.id for n in nodes]))
    return list(order), edges, entry


def _walked(nodes: list[Node], edges: list[Edge], entry: str) -> set[tuple[str, str]]:
    """The back-edges the depth-first walk finds (what classify_initial always did)."""
    out: dict[str, list[str]] = {n.id: [] for n in nodes}
    for edge in edges:
        out[edge.source].append(edge.target)
    has_input = {e.target for e in edges}
    starts = [entry, *(n.id for n in nodes if n.id not in has_input), *out]
    return _back_edges(starts, out)


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_back_edges_are_those_of_the_walk(graph: tuple[list[Node], list[Edge], str]) -> None:
    nodes, edges, entry = graph
    mutations._last = None
    try:
        back = classify_initial(tuple(nodes), tuple(edges), entry)
    except GraphError as error:
        assert "does not pass through a SWITCH" in str(error)  # a cycle the walk found too
        assert _walked(nodes, edges, entry)
        return
    assert back == _walked(nodes, edges, entry)


def test_a_graph_changed_after_validation_is_validated_again_when_it_runs() -> None:
    graph = Graph(nodes=[Node(id="a"), Node(id="b")], edges=[Edge(source="a", target="b")], entry="a")
    graph.add_edge("b", "a")  # a cycle without a switch
    with pytest.raises(GraphError, match="does not pass through a SWITCH"):
        asyncio.run(graph.run({NodeKind.TASK: lambda ctx: 1}, store=MemoryStore()))


def test_a_graph_runs_twice_and_each_run_folds_the_same_graph() -> None:
    nodes = [Node(id="body"), Node(id="switch", kind=NodeKind.SWITCH), Node(id="end")]
    edges = [
        Edge(source="body", target="switch"),
        Edge(source="switch", target="body"),
        Edge(source="switch", target="end"),
    ]
    graph = Graph(nodes=nodes, edges=edges, entry="body")

    def route(ctx: object) -> str:
        return "end" if getattr(ctx, "visit", 0) >= 3 else "body"

    handlers = {NodeKind.TASK: lambda ctx: ctx.visit, "switch": route}
    first = asyncio.run(graph.run(handlers, store=MemoryStore()))
    second = asyncio.run(graph.run(handlers, store=MemoryStore()))
    assert first.status == second.status == "completed"
    assert first.outputs["body"] == second.outputs["body"] == {1: 1, 2: 2, 3: 3}
