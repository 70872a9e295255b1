"""The scheduler: critical path first, then priority, then graph order; caps, lanes, budget."""

from __future__ import annotations

from orchestration.engine.core import (
    Edge,
    GraphState,
    Node,
    NodeCompleted,
    NodeStarted,
    RunStarted,
    schedule,
)
from orchestration.engine.core.scheduler import take


def started(nodes: list[Node], edges: list[Edge]) -> GraphState:
    return GraphState().apply(RunStarted(tuple(nodes), tuple(edges)))


def test_longest_chain_of_dependents_goes_first() -> None:
    # a has a chain of two behind it, b none, c one: a, c, b.
    state = started(
        [Node(id="b"), Node(id="c"), Node(id="a"), Node(id="a1"), Node(id="a2"), Node(id="c1")],
        [Edge(source="a", target="a1"), Edge(source="a1", target="a2"), Edge(source="c", target="c1")],
    )
    assert schedule(state, 10) == ["a", "c", "b"]


def test_priority_breaks_critical_path_ties_then_graph_order() -> None:
    state = started([Node(id="x"), Node(id="y", priority=5), Node(id="z")], [])
    assert schedule(state, 10) == ["y", "x", "z"]


def test_slots_cap_and_schedule_changes_nothing() -> None:
    state = started([Node(id=f"n{i}") for i in range(5)], [])
    assert schedule(state, 2) == ["n0", "n1"]
    assert schedule(state, 2) == ["n0", "n1"]  # pure: asking again gives the same answer
    assert schedule(state, 0) == []
    assert take(state, 2) == ["n0", "n1"]


def test_started_nodes_leave_the_ready_set() -> None:
    state = started([Node(id="a"), Node(id="b")], [])
    state.apply(NodeStarted("a", 1))
    assert schedule(state, 10) == ["b"]


def test_observed_durations_weight_the_critical_path() -> None:
    # Two independent loops' worth of work is simulated by re-ranking after observations:
    # p -> slow (observed 10s) outranks q -> q1 -> q2 (unobserved, mean weight) once known.
    state = started(
        [Node(id="q"), Node(id="q1"), Node(id="q2"), Node(id="p"), Node(id="slow")],
        [Edge(source="q", target="q1"), Edge(source="q1", target="q2"), Edge(source="p", target="slow")],
    )
    assert schedule(state, 10) == ["q", "p"]
    state.nodes["slow"].duration = 10.0
    state.nodes["q"].duration = state.nodes["q1"].duration = state.nodes["q2"].duration = 0.1
    state.refresh_ranks()
    # ranks are taken when a node becomes ready; a fresh state with the same events agrees
    assert state.nodes["p"].rank > state.nodes["q"].rank


def test_a_model_without_capacity_does_not_hold_a_slot() -> None:
    state = started(
        [
            Node(id="busy1", model="m1", priority=9),
            Node(id="busy2", model="m1", priority=9),
            Node(id="free", model="m2"),
        ],
        [],
    )
    assert schedule(state, 2) == ["busy1", "busy2"]
    assert schedule(state, 2, capacity={"m1": 0}) == ["free"]
    assert schedule(state, 2, capacity={"m1": 1}) == ["busy1", "free"]


def test_budget_headroom_holds_back_what_does_not_fit() -> None:
    state = started([Node(id="big", cost=5.0, priority=9), Node(id="small", cost=1.0)], [])
    assert schedule(state, 2, headroom=2.0) == ["small"]
    assert schedule(state, 2, headroom=6.0) == ["big", "small"]
    assert schedule(state, 2) == ["big", "small"]


def test_nothing_is_scheduled_once_the_fold_failed_the_run() -> None:
    state = started([Node(id="a")], [])
    state.error = "loop exhausted"
    assert schedule(state, 5) == []


def test_completion_releases_dependents_in_order() -> None:
    state = started(
        [Node(id="a"), Node(id="b"), Node(id="c", priority=1)],
        [Edge(source="a", target="b"), Edge(source="a", target="c")],
    )
    state.apply(NodeStarted("a", 1)).apply(NodeCompleted("a", 1, "x"))
    assert schedule(state, 5) == ["c", "b"]
