"""Changing a graph while it runs: every change validated, ACTIVE nodes protected."""

from __future__ import annotations

import asyncio
from typing import Any

from orchestration import EventType, StreamEvent
from orchestration.errors import GraphError, GraphMutationError
from orchestration.graph import Edge, Graph, Node, NodeContext, NodeKind, NodeState


async def test_cascade_remove_refuses_to_delete_an_active_grandchild() -> None:
    # Cascade's bug: removing a node with its descendants deleted a running grandchild.
    graph = Graph(
        nodes=[Node(id="root"), Node(id="child"), Node(id="grandchild"), Node(id="other")],
        edges=[Edge(source="root", target="child"), Edge(source="other", target="grandchild")],
    )
    running = asyncio.Event()
    release = asyncio.Event()
    refused: list[str] = []

    async def grandchild(ctx: NodeContext) -> str:
        running.set()
        await release.wait()
        return "finished"

    async def remover(ctx: NodeContext) -> str:
        await running.wait()
        try:
            ctx.graph.remove_node("other", cascade=True, reason="plan changed")
        except GraphMutationError as error:
            refused.append(str(error))
        release.set()
        return "r"

    result = await asyncio.wait_for(
        graph.run(
            {"root": remover, "child": lambda c: "c", "grandchild": grandchild, "other": lambda c: "o"}
        ),
        timeout=10,
    )
    assert refused and "'grandchild' is active" in refused[0] and "protected" in refused[0]
    assert result.states["grandchild"] is NodeState.COMPLETED
    assert result.output("grandchild") == "finished"


async def test_cascade_remove_of_pending_nodes_releases_nothing_else() -> None:
    graph = Graph(
        nodes=[Node(id="a"), Node(id="b"), Node(id="c"), Node(id="d")],
        edges=[Edge(source="a", target="b"), Edge(source="b", target="c")],
    )

    def a(ctx: NodeContext) -> str:
        ctx.graph.remove_node("b", cascade=True, reason="not needed")
        return "a"

    result = await graph.run({"a": a, "b": lambda c: 1, "c": lambda c: 2, "d": lambda c: 3})
    assert set(result.states) == {"a", "d"}
    assert result.status == "completed"


async def test_add_nodes_and_refine_while_running() -> None:
    graph = Graph(nodes=[Node(id="plan"), Node(id="report")], edges=[Edge(source="plan", target="report")])

    def plan(ctx: NodeContext) -> str:
        for i in range(3):
            ctx.graph.add_node(
                Node(id=f"part{i}"), [Edge(source="plan", target=f"part{i}")], reason="fan out"
            )
            ctx.graph.refine("report", f"part{i}", reason="report needs every part")
        return "planned"

    got: dict[str, Any] = {}

    def report(ctx: NodeContext) -> str:
        got.update(ctx.input)
        return "done"

    result = await graph.run({"plan": plan, NodeKind.TASK: lambda c: c.node_id, "report": report})
    assert got == {"plan": "planned", "part0": "part0", "part1": "part1", "part2": "part2"}
    assert result.status == "completed"


async def test_split_a_pending_node_into_parallel_parts_with_a_join() -> None:
    graph = Graph(
        nodes=[Node(id="a"), Node(id="big"), Node(id="z")],
        edges=[Edge(source="a", target="big"), Edge(source="big", target="z")],
    )

    def a(ctx: NodeContext) -> str:
        ctx.graph.split("big", [Node(id="big.1"), Node(id="big.2")], reason="too large")
        return "a"

    seen: dict[str, Any] = {}

    def z(ctx: NodeContext) -> str:
        seen["input"] = ctx.input
        return "z"

    result = await graph.run({"a": a, NodeKind.TASK: lambda c: c.node_id, "z": z})
    assert "big" not in result.states
    assert result.states["big.join"] is NodeState.COMPLETED
    assert seen["input"] == {"big.1": "big.1", "big.2": "big.2"}


async def test_rework_inserts_a_fix_and_the_consumer_runs_again() -> None:
    graph = Graph(
        nodes=[Node(id="draft"), Node(id="review"), Node(id="supervisor")],
        edges=[Edge(source="draft", target="review")],
    )
    reviewed = asyncio.Event()
    refused: list[str] = []

    async def supervisor(ctx: NodeContext) -> str:
        await reviewed.wait()  # review's first visit is stored as completed
        try:
            ctx.graph.add_node(Node(id="nobody-handles-me"))
        except GraphError as error:
            refused.append(str(error))
        ctx.graph.rework("draft", "review", Node(id="fix"), reason="needs work")
        return "sent back"

    run = graph.start(
        {
            "draft": lambda c: "v1",
            "review": lambda c: f"review of {c.input}",
            "fix": lambda c: c.input + "+fixed",
            "supervisor": supervisor,
        }
    )

    async def review_done(event: StreamEvent) -> None:  # async: it sets an asyncio.Event
        if event.agent_id == "review":
            reviewed.set()

    run.subscribe(EventType.GRAPH_NODE_COMPLETED, review_done)
    result = await asyncio.wait_for(run.run(), timeout=10)
    assert refused and "no handler for node 'nobody-handles-me'" in refused[0]
    assert result.outputs["review"] == {1: "review of v1", 2: "review of v1+fixed"}
    assert result.states["fix"] is NodeState.COMPLETED
    assert result.status == "completed"


async def test_refused_mutations_change_nothing() -> None:
    graph = Graph(nodes=[Node(id="a"), Node(id="b")], edges=[Edge(source="a", target="b")])
    errors: list[str] = []

    def a(ctx: NodeContext) -> str:
        for change in (
            lambda: ctx.graph.remove_node("a"),  # itself: ACTIVE
            lambda: ctx.graph.edit_node(Node(id="a", priority=3)),
            lambda: ctx.graph.split("a", [Node(id="a1")]),
            lambda: ctx.graph.add_edge("b", "a"),  # a cycle without a switch
            lambda: ctx.graph.add_edge("a", "ghost"),
            lambda: ctx.graph.rework("a", "b", Node(id="fix")),  # a is not completed
        ):
            try:
                change()
            except GraphError as error:
                errors.append(str(error))
        ctx.graph.edit_node(Node(id="b", description="edited"), reason="clarify")
        return "a"

    run = graph.start({"a": a, "b": lambda c: c.node.description})
    result = await run.run()
    assert len(errors) == 6
    assert "ACTIVE nodes are protected" in errors[0]
    assert "does not pass through a SWITCH" in errors[3]
    assert "unknown node 'ghost'" in errors[4]
    assert result.output("b") == "edited"
    assert set(result.states) == {"a", "b"} and result.status == "completed"
