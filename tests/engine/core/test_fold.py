"""The fold, case by case: the bugs the property tests found, each pinned by the smallest run.

Each test plays the runner's part by hand (tests/engine/core/graphs.py's Driver checks
the same rules on random graphs).
"""

from __future__ import annotations

import pytest

from orchestration.engine.core import (
    Edge,
    EdgeRemoved,
    GraphEvent,
    GraphState,
    Node,
    NodeCompleted,
    NodeKind,
    NodeRemoved,
    NodeSplit,
    NodeStarted,
    NodeState,
    RouteChosen,
    RunStarted,
    schedule,
)
from orchestration.errors import GraphMutationError

from .graphs import check_invariants, check_refold

SWITCH, AGGREGATE = NodeKind.SWITCH, NodeKind.AGGREGATE


class Log:
    """A state and the log a runner would store for it (decisions and derived events)."""

    def __init__(self, nodes: list[Node], edges: list[tuple[str, str]]) -> None:
        self.state = GraphState()
        self.events: list[GraphEvent] = []
        pairs = tuple(Edge(source=s, target=t) for s, t in edges)
        self.add(RunStarted(tuple(nodes), pairs, nodes[0].id))

    def add(self, *events: GraphEvent) -> Log:
        for event in events:
            self.state.apply(event)
            self.events.append(event)
            self.events.extend(self.state.take_emitted())
            check_invariants(self.state)
        return self

    def run(self, node_id: str, output: object = None) -> Log:
        visit = self.state.nodes[node_id].visits + 1
        return self.add(NodeStarted(node_id, visit), NodeCompleted(node_id, visit, output))


def test_a_split_never_makes_the_node_it_fed_ready_halfway() -> None:
    # 0.1.0 detached the split node first, so the node it fed had no inputs for a moment
    # and was logged READY; folding that log again then failed.
    log = Log(
        [Node(id="plan"), Node(id="research"), Node(id="draft")],
        [("plan", "research"), ("research", "draft")],
    )
    log.add(NodeStarted("plan", 1))
    log.add(NodeSplit("research", (Node(id="r.a"), Node(id="r.b")), Node(id="r.join", kind=AGGREGATE)))
    assert log.state.state_of("draft") is NodeState.PENDING
    assert [e for e in log.events if getattr(e, "node", None) == "draft"] == []  # no NodeReady for it
    log.add(NodeCompleted("plan", 1, "p")).run("r.a").run("r.b").run("r.join").run("draft")
    check_refold(log.events, log.state)


@pytest.mark.parametrize("quorum", ["all", "any"])
def test_a_running_node_keeps_the_inputs_it_works_from(quorum: str) -> None:
    log = Log(
        [Node(id="done"), Node(id="late"), Node(id="user", kind=AGGREGATE, quorum=quorum)],
        [("done", "user"), ("late", "user")],
    )
    log.run("done")
    if quorum == "all":
        log.run("late")
    log.add(NodeStarted("user", 1))  # with "any", it runs while "late" has not even started
    for doomed in ("done", "late"):
        with pytest.raises(GraphMutationError, match=r"'user' is active .* takes input from") as refused:
            log.add(NodeRemoved((doomed,)))
        assert "protected" in str(refused.value)
    assert [e.source for e in log.state.nodes["user"].inn] == ["done", "late"]


def test_a_loop_that_re_enters_a_running_node_waits_for_its_visit_to_end() -> None:
    # "agg" proceeds on any input, so it finishes (and loops back to "head") while "head"
    # is still running its first visit.
    log = Log(
        [
            Node(id="head"),
            Node(id="route", kind=SWITCH),
            Node(id="side"),
            Node(id="agg", kind=AGGREGATE, quorum="any"),
        ],
        [("head", "route"), ("route", "agg"), ("side", "agg"), ("agg", "head")],
    )
    assert set(schedule(log.state, 5)) == {"head", "side"}
    log.add(NodeStarted("head", 1)).run("side").run("agg")
    assert log.state.state_of("head") is NodeState.ACTIVE  # not READY a second time meanwhile
    assert "head" not in schedule(log.state, 5)
    log.add(NodeCompleted("head", 1, "first"))
    assert log.state.state_of("head") is NodeState.READY
    assert log.state.nodes["head"].trigger == "agg"
    log.run("head", "second")
    assert log.state.outputs("head") == {1: "first", 2: "second"}
    check_refold(log.events, log.state)


def test_a_switch_whose_loop_a_change_opened_still_takes_its_other_routes() -> None:
    # Removing head -> middle leaves route's back-edge to head outside any cycle: taking it
    # runs head again, and the route to "exit" must go on too (it deadlocked).
    log = Log(
        [Node(id="head"), Node(id="middle"), Node(id="route", kind=SWITCH), Node(id="exit")],
        [("head", "middle"), ("middle", "route"), ("route", "head"), ("route", "exit")],
    )
    log.add(NodeStarted("head", 1), EdgeRemoved("head", "middle"), NodeCompleted("head", 1))
    log.run("middle").add(NodeStarted("route", 1), RouteChosen("route", 1, ("head", "exit")))
    log.add(NodeCompleted("route", 1))
    assert log.state.state_of("exit") is NodeState.READY
    assert log.state.state_of("head") is NodeState.READY  # its next visit
    log.run("exit").run("head")
    assert all(state is NodeState.COMPLETED for state in log.state.states().values())
    check_refold(log.events, log.state)
