"""The appends of a Temporal run: several writers, one gapless log, the workflow's batches once."""

from __future__ import annotations

import pytest

from orchestration.backends.temporal.appender import Appender
from orchestration.engine.core import Node, NodeStarted, RunStarted, wrap
from orchestration.errors import LeaseLostError, StoreError
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
    assert await store.acquire_lease(RUN, "o", 30)
    workflow, node = Appender(store), Appender(store)  # two processes writing one run
    events = _graph_events(5)
    await workflow.append(RUN, events[:2], owner="o", first=0)
    await node.append(RUN, [_cost(0.25)], owner="o")
    await node.append(RUN, [_cost(0.5)], owner="o")
    # A try that stored events[2:3] died before saying so; its retry carries more.
    await Appender(store).append(RUN, events[2:3], owner="o", first=2)
    await workflow.append(RUN, events[2:5], owner="o", first=2)
    await workflow.append(RUN, events[2:5], owner="o", first=2)  # once more: nothing

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


async def test_a_late_append_never_takes_back_a_lease_another_driver_released() -> None:
    store = MemoryStore()
    assert await store.acquire_lease(RUN, "old", 30)
    await Appender(store).append(RUN, _graph_events(2), owner="old", first=0)
    assert await store.take_over_lease(RUN, "old", "new", 30)  # the old driver stalled
    await store.release_lease(RUN, "new")  # the new driver finished the run
    with pytest.raises(LeaseLostError, match="released"):
        await Appender(store).append(RUN, [_cost(0.1)], owner="old")  # the old one wakes up
    assert await store.lease_holder(RUN) is None
    assert len(await store.events(RUN)) == 2


async def test_a_batch_past_the_end_of_the_log_is_refused() -> None:
    store = MemoryStore()
    assert await store.acquire_lease(RUN, "o", 30)
    await Appender(store).append(RUN, _graph_events(2), owner="o", first=0)
    with pytest.raises(StoreError, match="holds 2 of the workflow's events but this batch starts at 4"):
        await Appender(store).append(RUN, _graph_events(2), owner="o", first=4)


async def test_a_process_that_knew_an_older_log_reads_on_before_it_appends() -> None:
    """The workflow moved to another worker, which appended, then came back."""
    store = MemoryStore()
    assert await store.acquire_lease(RUN, "o", 30)
    events = _graph_events(6)
    here, there = Appender(store), Appender(store)
    await here.append(RUN, events[:2], owner="o", first=0)
    await there.append(RUN, events[2:4], owner="o", first=2)
    await here.append(RUN, events[4:6], owner="o", first=4)
    assert [e.seq for e in await store.events(RUN)] == list(range(1, 7))
