"""The appends of a Temporal run: several writers, one gapless log, the workflow's batches once."""

from __future__ import annotations

import pytest

from orchestration.backends.temporal.appender import Appender
from orchestration.engine.core import Node, NodeStarted, RunStarted, wrap
from orchestration.errors import StoreError
from orchestration.events import EventType, StreamEvent
from orchestration.stores import MemoryStore

RUN = "run-1"


def _graph_events(count: int) -> list[StreamEvent]:
    nodes = tuple(Node(id=f"n{i}") for i in range(count))
    events = [RunStarted(nodes, ()), *(NodeStarted(f"n{i}", 1) for i in range(count - 1))]
    return [wrap(event, RUN, 0, 1.0) for event in events]


def _cost(cost: float) -> StreamEvent:
    usage = {"input_tokens": 1, "output_tokens": 1, "calls": 1, "cost_usd": cost}
    data = {"model": "m", "usage": usage, "cost": cost, "total_cost": cost}
    return StreamEvent(EventType.COST_UPDATE, RUN, 0, 1.0, data, "n0")


async def test_batches_interleave_gaplessly_and_a_retried_batch_is_stored_once() -> None:
    store = MemoryStore()
    workflow, node = Appender(store), Appender(store)  # two processes writing one run
    events = _graph_events(5)
    await workflow.append(RUN, events[:2], owner="o", lease_seconds=30, first=0)
    await node.append(RUN, [_cost(0.25)], owner="o", lease_seconds=30)
    await node.append(RUN, [_cost(0.5)], owner="o", lease_seconds=30)
    # A try that stored events[2:3] died before saying so; its retry carries more.
    await Appender(store).append(RUN, events[2:3], owner="o", lease_seconds=30, first=2)
    await workflow.append(RUN, events[2:5], owner="o", lease_seconds=30, first=2)
    await workflow.append(RUN, events[2:5], owner="o", lease_seconds=30, first=2)  # once more: nothing

    stored = await store.events(RUN)
    assert [e.seq for e in stored] == list(range(1, 8))
    kinds = [e.data.get("kind") if e.event_type is not EventType.COST_UPDATE else "cost" for e in stored]
    assert kinds == [
        "run_started",
        "node_started",
        "cost",
        "cost",
        "node_started",
        "node_started",
        "node_started",
    ]
    assert [e.data["total_cost"] for e in stored if e.event_type is EventType.COST_UPDATE] == [0.25, 0.75]
    summary = await store.get_run(RUN)
    assert summary is not None and summary.total_cost == 0.75


async def test_a_batch_past_the_end_of_the_log_is_refused() -> None:
    store = MemoryStore()
    await Appender(store).append(RUN, _graph_events(2), owner="o", lease_seconds=30, first=0)
    with pytest.raises(StoreError, match="holds 2 of the workflow's events but this batch starts at 4"):
        await Appender(store).append(RUN, _graph_events(2), owner="o", lease_seconds=30, first=4)


async def test_a_process_that_knew_an_older_log_reads_on_before_it_appends() -> None:
    """The workflow moved to another worker, which appended, then came back."""
    store = MemoryStore()
    events = _graph_events(6)
    here, there = Appender(store), Appender(store)
    await here.append(RUN, events[:2], owner="o", lease_seconds=30, first=0)
    await there.append(RUN, events[2:4], owner="o", lease_seconds=30, first=2)
    await here.append(RUN, events[4:6], owner="o", lease_seconds=30, first=4)
    assert [e.seq for e in await store.events(RUN)] == list(range(1, 7))
