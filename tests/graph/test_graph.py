"""The Graph API: building and validating, running, loops, switches, quorum, context."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestration import EventType, MemoryStore, StreamEvent
from orchestration.errors import GraphError
from orchestration.graph import (
    Contract,
    Edge,
    Graph,
    Node,
    NodeContext,
    NodeKind,
    NodeOutput,
    NodeState,
)

TASK, SWITCH, AGGREGATE = NodeKind.TASK, NodeKind.SWITCH, NodeKind.AGGREGATE


def loop_graph(max_visits: int | None = None, on_exhausted: str = "exit") -> Graph:
    return Graph(
        nodes=[
            Node(id="agent", kind=TASK, max_visits=max_visits, on_exhausted=on_exhausted),  # type: ignore[arg-type]
            Node(id="router", kind=SWITCH),
            Node(id="end", kind=TASK),
        ],
        edges=[
            Edge(source="agent", target="router"),
            Edge(source="router", target="agent"),
            Edge(source="router", target="end"),
        ],
        entry="agent",
    )


# -- seed 003's quick start, with only imports and registry/scheduler lines changed -------


async def test_seed_003_quick_start_runs() -> None:
    from orchestration.graph import Edge, Graph, Node, NodeKind

    async def my_agent(payload):  # type: ignore[no-untyped-def]
        # your agent logic here
        return {"result": "done", "loop_again": False}

    async def router(payload):  # type: ignore[no-untyped-def]
        # return the next node id
        return "end" if not payload.get("loop_again") else "agent"

    graph = Graph(
        nodes=[
            Node(id="agent", kind=NodeKind.TASK),
            Node(id="router", kind=NodeKind.SWITCH),
            Node(id="end", kind=NodeKind.TASK),
        ],
        edges=[
            Edge(source="agent", target="router"),
            Edge(source="router", target="agent"),  # the loop back-edge
            Edge(source="router", target="end"),
        ],
        entry="agent",
    )

    registry: dict[str, Any] = {}
    registry["agent"] = my_agent
    registry["router"] = router
    registry["end"] = lambda p: p

    result = await graph.run(registry, payload={"input": "hello"})
    assert result.status == "completed"
    assert result.output("end") == {"result": "done", "loop_again": False}
    assert set(result.states.values()) == {NodeState.COMPLETED}


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "edges", "entry", "message"),
    [
        ([Node(id="a")], [Edge(source="a", target="ghost")], None, "unknown node 'ghost'"),
        ([Node(id="a"), Node(id="a")], [], None, "duplicate node id 'a'"),
        ([Node(id="a")], [], "nope", "entry 'nope' is not a node"),
        ([Node(id="s", kind=SWITCH)], [], None, "switch 's' has no routes"),
        (
            [Node(id="a"), Node(id="b")],
            [Edge(source="a", target="b"), Edge(source="b", target="a")],
            "a",
            "cycle a -> b -> a does not pass through a SWITCH",
        ),
    ],
)
def test_bad_graphs_give_one_line_errors_naming_the_nodes(
    nodes: list[Node], edges: list[Edge], entry: str | None, message: str
) -> None:
    with pytest.raises(GraphError, match=message) as caught:
        Graph(nodes=nodes, edges=edges, entry=entry)
    assert "\n" not in str(caught.value)


def test_bad_node_fields_are_refused_where_written() -> None:
    with pytest.raises(GraphError, match="max_visits must be a positive int"):
        Node(id="a", max_visits=0)
    with pytest.raises(GraphError, match="quorum must be"):
        Node(id="a", kind=AGGREGATE, quorum=0)
    with pytest.raises(GraphError, match="non-empty string id"):
        Node(id="")


def test_incremental_build_and_missing_handler() -> None:
    graph = Graph().add_node("a").add_node("b").add_edge("a", "b")
    with pytest.raises(GraphError, match="unknown node 'zz'"):
        graph.add_edge("a", "zz")
    with pytest.raises(GraphError, match="no handler for node"):
        asyncio.run(graph.run({"a": lambda ctx: 1}))


# -- loops ----------------------------------------------------------------------------------


async def test_loop_visits_are_numbered_until_the_switch_exits() -> None:
    seen: list[int] = []

    def agent(ctx: NodeContext) -> dict[str, Any]:
        seen.append(ctx.visit)
        return {"n": ctx.visit}

    def router(ctx: NodeContext) -> str:
        return "agent" if ctx["n"] < 3 else "end"

    result = await loop_graph().run({"agent": agent, "router": router, "end": lambda ctx: ctx["n"]})
    assert seen == [1, 2, 3]
    assert result.outputs["agent"] == {1: {"n": 1}, 2: {"n": 2}, 3: {"n": 3}}
    assert result.outputs["router"] == {1: "agent", 2: "agent", 3: "end"}
    assert result.output("end") == 3 and result.status == "completed"


async def test_max_visits_takes_the_exit_route() -> None:
    result = await loop_graph(max_visits=2).run(
        {"agent": lambda c: c.visit, "router": lambda c: "agent", "end": lambda c: "out"}
    )
    assert result.visits["agent"] == 2
    assert result.states["end"] is NodeState.COMPLETED
    assert result.status == "completed"


async def test_max_visits_can_fail_the_run_with_the_reason() -> None:
    result = await loop_graph(max_visits=2, on_exhausted="fail").run(
        {"agent": lambda c: c.visit, "router": lambda c: "agent", "end": lambda c: None}
    )
    assert result.status == "failed"
    assert result.error is not None and "max_visits=2" in result.error and "'agent'" in result.error
    assert all(state.is_terminal for state in result.states.values())


# -- switches never deadlock joins (loopgraph's bug) -------------------------------------------


async def test_a_branch_not_taken_is_skipped_and_the_join_gets_every_upstream() -> None:
    graph = Graph(
        nodes=[
            Node(id="start"),
            Node(id="pick", kind=SWITCH),
            Node(id="left"),
            Node(id="right"),
            Node(id="side"),
            Node(id="join"),
        ],
        edges=[
            Edge(source="start", target="pick"),
            Edge(source="start", target="side"),
            Edge(source="pick", target="left"),
            Edge(source="pick", target="right"),
            Edge(source="left", target="join"),
            Edge(source="right", target="join"),
            Edge(source="side", target="join"),
        ],
    )
    got: dict[str, Any] = {}

    def join(ctx: NodeContext) -> str:
        got.update(ctx.input)
        return "joined"

    result = await asyncio.wait_for(
        graph.run(
            {
                "start": lambda c: "s",
                "pick": lambda c: "left",
                "left": lambda c: "L",
                "right": lambda c: "R",
                "side": lambda c: "S",
                "join": join,
            }
        ),
        timeout=10,
    )
    assert result.states["right"] is NodeState.SKIPPED
    assert result.states["join"] is NodeState.COMPLETED
    assert got == {"left": "L", "side": "S"}  # every upstream that ran, not only the first


async def test_aggregate_quorum_any_proceeds_and_records_late_inputs() -> None:
    graph = Graph(
        nodes=[Node(id="fast"), Node(id="slow"), Node(id="agg", kind=AGGREGATE, quorum="any")],
        edges=[Edge(source="fast", target="agg"), Edge(source="slow", target="agg")],
    )
    release = asyncio.Event()
    agg_ran = asyncio.Event()

    async def slow(ctx: NodeContext) -> str:
        await release.wait()
        return "late"

    def agg(ctx: NodeContext) -> Any:
        agg_ran.set()
        release.set()
        return ctx.input

    run = graph.start({"fast": lambda c: "early", "slow": slow, "agg": agg})
    result = await asyncio.wait_for(run.run(), timeout=10)
    assert result.output("agg") == "early"
    assert result.output("slow") == "late"
    assert run.state.nodes["agg"].late == (("slow", 1),)


async def test_aggregate_k_of_n_waits_for_k() -> None:
    graph = Graph(
        nodes=[Node(id=f"p{i}") for i in range(3)] + [Node(id="agg", kind=AGGREGATE, quorum=2)],
        edges=[Edge(source=f"p{i}", target="agg") for i in range(3)],
    )

    def failing(ctx: NodeContext) -> None:
        raise ValueError("boom")

    result = await graph.run({"p0": lambda c: 0, "p1": failing, "p2": lambda c: 2})
    assert result.states["agg"] is NodeState.COMPLETED
    assert result.output("agg") == {"p0": 0, "p2": 2}
    assert result.states["p1"] is NodeState.FAILED and "boom" in result.errors["p1"]


async def test_a_failed_input_skips_its_dependents_and_fails_the_run() -> None:
    graph = Graph(nodes=[Node(id="a"), Node(id="b"), Node(id="c")], edges=[Edge(source="a", target="b")])

    def boom(ctx: NodeContext) -> None:
        raise RuntimeError("bad input")

    result = await graph.run({"a": boom, "b": lambda c: 1, "c": lambda c: 2})
    assert result.states == {"a": NodeState.FAILED, "b": NodeState.SKIPPED, "c": NodeState.COMPLETED}
    assert result.status == "failed"


# -- attributed context -------------------------------------------------------------------------


async def test_attributed_context_keeps_each_ancestor_apart_with_provenance() -> None:
    contract = Contract(expectation="requirements", promise="a prioritized list")
    graph = Graph(
        nodes=[Node(id="analyze"), Node(id="research"), Node(id="design"), Node(id="build")],
        edges=[
            Edge(source="analyze", target="design", contract=contract),
            Edge(source="research", target="design"),
            Edge(source="design", target="build"),
        ],
    )
    seen: dict[str, Any] = {}

    def build(ctx: NodeContext) -> str:
        seen["context"] = ctx.context
        paper = next(e for e in ctx.context.artifacts if e.node == "research").value["paper"]
        seen["paper"] = ctx.artifact(paper)
        return "built"

    result = await graph.run(
        {
            "analyze": lambda c: NodeOutput("reqs", summary="JWT auth", critical={"auth": "JWT"}),
            "research": lambda c: NodeOutput("notes", summary="prior art", artifacts={"paper": "x" * 1000}),
            "design": lambda c: NodeOutput("design", summary="REST API"),
            "build": build,
        }
    )
    assert result.status == "completed"
    context = seen["context"]
    critical = {e.node: e for e in context.critical}
    assert critical["analyze"].value == {"auth": "JWT"}
    assert critical["analyze"].distance == 2
    assert critical["analyze"].path == ("analyze", "design", "build")
    assert critical["analyze"].contract == contract and critical["analyze"].visit == 1
    summaries = {e.node: e.value for e in context.summary}
    assert summaries == {"design": "REST API", "analyze": "JWT auth", "research": "prior art"}
    refs = {e.node: e.value for e in context.artifacts}
    assert set(refs) == {"design", "analyze", "research"}
    assert seen["paper"] == "x" * 1000
    upstream = context.upstream()
    assert upstream[0]["node_id"] == "design"


async def test_summary_reaches_two_hops_only() -> None:
    graph = Graph(
        nodes=[Node(id=n) for n in "abcd"],
        edges=[Edge(source="a", target="b"), Edge(source="b", target="c"), Edge(source="c", target="d")],
    )
    seen: dict[str, Any] = {}

    def last(ctx: NodeContext) -> None:
        seen["summary"] = {e.node for e in ctx.context.summary}
        seen["artifact"] = ctx.artifact(
            next(e for e in ctx.context.artifacts if e.node == "a").value["output"]
        )

    await graph.run(
        {
            "a": lambda c: NodeOutput("A", summary="sa"),
            "b": lambda c: NodeOutput("B", summary="sb"),
            "c": lambda c: NodeOutput("C", summary="sc"),
            "d": last,
        }
    )
    assert seen["summary"] == {"b", "c"}
    assert seen["artifact"] == "A"  # resolved by reference, not copied


# -- events, subscriptions, cancellation -------------------------------------------------------


async def test_events_are_typed_and_subscriptions_by_type() -> None:
    everything: list[StreamEvent] = []
    completed: list[str] = []
    run = loop_graph().start(
        {"agent": lambda c: {}, "router": lambda c: "end", "end": lambda c: None},
        stream_callback=everything.append,
    )
    run.subscribe(EventType.GRAPH_NODE_COMPLETED, lambda e: completed.append(e.agent_id))
    await run.run()
    assert completed == ["agent", "router", "end"]
    assert everything[0].event_type is EventType.WORKFLOW_START
    assert everything[-1].event_type is EventType.WORKFLOW_COMPLETE
    assert [e.seq for e in everything] == list(range(1, len(everything) + 1))


async def test_handlers_can_check_and_await_cancellation() -> None:
    graph = Graph(
        nodes=[Node(id="waiter"), Node(id="checker"), Node(id="after")],
        edges=[Edge(source="waiter", target="after")],
    )
    waiting = asyncio.Event()
    reasons: list[str] = []

    async def waiter(ctx: NodeContext) -> str:
        waiting.set()
        reasons.append(await ctx.cancel.wait())
        return "saw it"

    async def checker(ctx: NodeContext) -> None:
        await waiting.wait()
        assert not ctx.cancel.cancelled
        run.cancel("user stop")
        assert ctx.cancel.cancelled

    run = graph.start({"waiter": waiter, "checker": checker, "after": lambda c: None})
    result = await asyncio.wait_for(run.run(), timeout=10)
    assert result.status == "cancelled"
    assert all(state.is_terminal for state in result.states.values())
    assert result.states["after"] is NodeState.CANCELLED


async def test_cancellation_through_the_store_reaches_the_run() -> None:
    store = MemoryStore()
    graph = Graph(nodes=[Node(id="long")])
    started = asyncio.Event()

    async def long(ctx: NodeContext) -> None:
        started.set()
        await asyncio.sleep(3600)

    run = graph.start({"long": long}, store=store)

    async def cancel_from_outside() -> None:
        await started.wait()
        assert await store.request_cancel(run.run_id)

    async with asyncio.TaskGroup() as group:
        group.create_task(cancel_from_outside())
        result = await asyncio.wait_for(run.run(), timeout=10)
    assert result.status == "cancelled"
    assert result.states["long"] is NodeState.CANCELLED
    summary = await store.get_run(run.run_id)
    assert summary is not None and str(summary.status) == "cancelled"


async def test_node_timeout_fails_the_node() -> None:
    async def slow(ctx: NodeContext) -> None:
        await asyncio.sleep(3600)

    result = await Graph(nodes=[Node(id="slow", timeout=0.01)]).run({"slow": slow})
    assert result.states["slow"] is NodeState.FAILED and "timed out" in result.errors["slow"]


async def test_a_loop_visit_gets_what_the_previous_visit_produced() -> None:
    from orchestration import MemoryStore

    seen: list[object] = []
    graph = Graph(
        nodes=[
            Node(id="draft"),
            Node(id="review", kind=NodeKind.SWITCH, max_visits=5),
            Node(id="end", kind=NodeKind.TERMINAL),
        ],
        edges=[
            Edge(source="draft", target="review"),
            Edge(source="review", target="draft"),
            Edge(source="review", target="end"),
        ],
        entry="draft",
    )

    def draft(ctx: object) -> dict[str, int]:
        value = ctx.input  # type: ignore[attr-defined]
        seen.append(value)
        return {"n": value["n"] + 1}

    result = await graph.run(
        {"draft": draft, "review": lambda ctx: "end" if ctx.input["n"] >= 3 else "draft"},
        payload={"n": 0},
        store=MemoryStore(),
    )
    assert seen == [{"n": 0}, {"n": 1}, {"n": 2}]  # seed 003's loop: each visit builds on the last
    assert result.output("end") == {"n": 3}
