"""A stream callback cannot hang a run (issue 9.6).

Each callback gets its own queue and a time limit per event; one that is stuck, slow,
raising or too far behind is reported as a ``callback_error`` event and dropped, and the
run returns with its normal result.  The limits are small here so the tests are quick;
every assertion is on outcomes (results, stored events), none on elapsed time.  Each
``asyncio.timeout(30)`` only turns a hang (what the old code did) into a failure.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from orchestration import (
    ConfigError,
    EventType,
    OrchestratorConfig,
    ScriptedProvider,
    StreamEvent,
    SubTask,
    TaskStatus,
)
from orchestration.graph import Edge, Graph, Node
from orchestration.stores import MemoryStore, SQLiteStore
from orchestration.streaming import stream_workflow

from .helpers import GraphOrchestrator, fan

LIMIT = 0.05  # callback_timeout_seconds in these tests


def config(**kwargs: Any) -> OrchestratorConfig:
    return OrchestratorConfig(
        **{"retry_base_delay": 0.0, "retry_max_delay": 0.0, "callback_timeout_seconds": LIMIT, **kwargs}
    )


def callback_errors(events: list[StreamEvent]) -> list[dict[str, Any]]:
    return [dict(e.data) for e in events if e.event_type is EventType.CALLBACK_ERROR]


async def test_a_callback_that_never_returns_cannot_hang_the_run(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    orch = GraphOrchestrator(config(), ScriptedProvider(), subtasks=fan(3), store=store)
    never = asyncio.Event()
    calls: list[int] = []

    async def never_returns(event: StreamEvent) -> None:
        calls.append(event.seq)
        await never.wait()

    async with asyncio.timeout(30):
        result = await orch.execute_workflow("task", stream_callback=never_returns)
    assert result.status is TaskStatus.COMPLETED and result.final_synthesis
    assert len(result.agent_results) == 3
    stored = await store.events(result.run_id)
    [error] = callback_errors(stored)
    assert "never_returns" in error["callback"] and error["cause"] == "timeout"
    assert error["event_seq"] == 1 and f"took longer than {LIMIT:g}s" in error["error"]
    assert calls == [1]  # dropped: no more events after the one it was stuck on
    summary = await store.get_run(result.run_id)
    assert summary is not None and summary.status is TaskStatus.COMPLETED
    await store.close()


async def test_a_sync_callback_blocked_on_a_lock_cannot_hang_the_run(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    orch = GraphOrchestrator(config(), ScriptedProvider(), subtasks=fan(2), store=store)
    gate = threading.Event()
    threads: list[int] = []

    def blocks(event: StreamEvent) -> None:
        threads.append(threading.get_ident())
        gate.wait()  # a sync callback stuck on a lock: it cannot be interrupted

    try:
        async with asyncio.timeout(30):
            result = await orch.execute_workflow("task", stream_callback=blocks)
    finally:
        gate.set()  # frees the abandoned thread
    assert result.status is TaskStatus.COMPLETED
    [error] = callback_errors(await store.events(result.run_id))
    assert "blocks" in error["callback"] and error["cause"] == "timeout"
    assert threads != [threading.get_ident()]  # it ran in its own thread, not on the loop
    summary = await store.get_run(result.run_id)
    assert summary is not None and summary.status is TaskStatus.COMPLETED
    await store.close()


async def test_a_slow_callback_does_not_stretch_the_run_past_its_timeouts() -> None:
    # Each event would take the callback far longer than timeout_seconds; the old code
    # waited for it on every event, so the run returned many timeouts late.
    orch = GraphOrchestrator(config(timeout_seconds=0.5), ScriptedProvider(), subtasks=fan(4))
    started: list[int] = []
    finished: list[int] = []

    async def slow(event: StreamEvent) -> None:
        started.append(event.seq)
        await asyncio.sleep(5)  # the callback's own (slow) work, not a synchronisation
        finished.append(event.seq)

    async with asyncio.timeout(30):
        result = await orch.execute_workflow("task", stream_callback=slow)
    assert result.status is TaskStatus.COMPLETED
    assert all(r.succeeded for r in result.agent_results)  # no subtask hit timeout_seconds
    [error] = callback_errors(await orch.store.events(result.run_id))
    assert error["cause"] == "timeout" and error["event_seq"] == 1
    assert started == [1] and finished == []  # cut off at the limit, then given nothing more


async def test_a_raising_callback_is_dropped_and_the_others_get_every_event_in_order(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    orch = GraphOrchestrator(config(), ScriptedProvider(), subtasks=fan(3), store=store)
    bad_saw: list[int] = []
    async_saw: list[int] = []
    sync_saw: list[int] = []

    def bad(event: StreamEvent) -> None:
        bad_saw.append(event.seq)
        if event.seq == 3:
            raise RuntimeError("callback bug")

    async def good_async(event: StreamEvent) -> None:
        async_saw.append(event.seq)

    def good_sync(event: StreamEvent) -> None:
        sync_saw.append(event.seq)

    async with asyncio.timeout(30):
        result = await orch.execute_workflow("task", stream_callback=[bad, good_async, good_sync])
    assert result.status is TaskStatus.COMPLETED
    stored = await store.events(result.run_id)
    [error] = callback_errors(stored)
    assert "bad" in error["callback"] and error["cause"] == "error" and error["event_seq"] == 3
    assert "RuntimeError: callback bug" in error["error"]
    assert bad_saw == [1, 2, 3]
    every = [e.seq for e in stored]  # the callback_error included
    assert async_saw == every and sync_saw == every
    await store.close()


async def test_a_callback_that_falls_too_far_behind_is_dropped() -> None:
    orch = GraphOrchestrator(
        config(callback_queue_size=2, callback_timeout_seconds=0.3), ScriptedProvider(), subtasks=fan(10)
    )
    saw: list[int] = []

    async def lagging(event: StreamEvent) -> None:
        saw.append(event.seq)
        await asyncio.sleep(0.01)  # well within the limit per event, but slower than the run

    async with asyncio.timeout(30):
        result = await orch.execute_workflow("task", stream_callback=lagging)
    assert result.status is TaskStatus.COMPLETED
    stored = await orch.store.events(result.run_id)
    [error] = callback_errors(stored)
    assert error["cause"] == "queue_full" and "more than 2 events behind" in error["error"]
    assert saw == list(range(1, len(saw) + 1)) and len(saw) < len(stored)


class Hangs(GraphOrchestrator):
    """Its subtasks wait until the run is cancelled."""

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> Any:
        await asyncio.Event().wait()


def stuck_on_first_event() -> tuple[asyncio.Event, Any]:
    entered = asyncio.Event()

    async def stuck(event: StreamEvent) -> None:
        entered.set()
        await asyncio.Event().wait()

    return entered, stuck


async def test_cancelling_a_run_whose_callback_is_stuck_returns(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    orch = Hangs(config(), ScriptedProvider(), subtasks=fan(2), store=store)
    entered, stuck = stuck_on_first_event()
    async with asyncio.timeout(30):
        run = asyncio.create_task(orch.execute_workflow("task", run_id="c1", stream_callback=stuck))
        await entered.wait()
        assert orch.cancel("c1")
        result = await run
    assert result.status is TaskStatus.CANCELLED
    stored = await store.events("c1")
    assert any(e.event_type is EventType.WORKFLOW_CANCELLED for e in stored)
    assert len(callback_errors(stored)) == 1
    await store.close()


async def test_cancelling_the_task_while_a_callback_is_stuck_returns(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    orch = Hangs(config(), ScriptedProvider(), subtasks=fan(2), store=store)
    entered, stuck = stuck_on_first_event()
    async with asyncio.timeout(30):
        run = asyncio.create_task(orch.execute_workflow("task", run_id="c2", stream_callback=stuck))
        await entered.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
    stored = await store.events("c2")
    assert any(e.event_type is EventType.WORKFLOW_CANCELLED for e in stored)
    assert len(callback_errors(stored)) == 1
    summary = await store.get_run("c2")
    assert summary is not None and summary.status is TaskStatus.CANCELLED
    await store.close()


async def test_stream_workflow_yields_every_event_past_a_stuck_callback() -> None:
    orch = GraphOrchestrator(config(), ScriptedProvider(), subtasks=fan(2), store=MemoryStore())
    _, stuck = stuck_on_first_event()
    async with asyncio.timeout(30):
        events = [e async for e in stream_workflow(orch, "task", stream_callback=stuck)]
    assert events[-1].event_type is EventType.WORKFLOW_COMPLETE
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def two_steps() -> Graph:
    return Graph(nodes=[Node(id="a"), Node(id="b")], edges=[Edge(source="a", target="b")])


HANDLERS = {"a": lambda ctx: 1, "b": lambda ctx: ctx.input + 1}


async def test_a_graph_run_returns_past_a_stuck_callback() -> None:
    store = MemoryStore()
    _, stuck = stuck_on_first_event()
    run = two_steps().start(HANDLERS, store=store, stream_callback=stuck, config=config())
    async with asyncio.timeout(30):
        result = await run.run()
    assert result.status == "completed" and result.output("b") == 2
    [error] = callback_errors(await store.events(run.run_id))
    assert error["cause"] == "timeout" and error["event_seq"] == 1


async def test_a_graph_subscriber_gets_its_events_while_another_callback_is_stuck() -> None:
    store = MemoryStore()
    _, stuck = stuck_on_first_event()
    saw: list[int] = []
    run = two_steps().start(HANDLERS, store=store, stream_callback=stuck, config=config())
    run.subscribe(EventType.GRAPH_NODE_COMPLETED, lambda e: saw.append(e.seq))
    async with asyncio.timeout(30):
        result = await run.run()
    assert result.status == "completed"
    stored = await store.events(run.run_id)
    assert len(callback_errors(stored)) == 1
    assert saw == [e.seq for e in stored if e.event_type is EventType.GRAPH_NODE_COMPLETED] and len(saw) == 2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("callback_timeout_seconds", float("inf"), "callback_timeout_seconds must be a finite number"),
        (
            "callback_timeout_seconds",
            float("nan"),
            "callback_timeout_seconds must be a finite number, got nan",
        ),
        ("callback_timeout_seconds", 0, "callback_timeout_seconds must be > 0"),
        ("callback_queue_size", 0, "callback_queue_size must be >= 1"),
        ("callback_queue_size", 1.5, "callback_queue_size must be an integer"),
    ],
)
def test_callback_limits_are_validated(field: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        OrchestratorConfig(**{field: value})
    assert message in str(raised.value) and "\n" not in str(raised.value)


async def test_a_stream_callback_that_is_not_callable_is_refused_before_the_run_starts() -> None:
    orch = GraphOrchestrator(config(), ScriptedProvider(), subtasks=fan(1))
    with pytest.raises(ConfigError, match=r"stream_callback\[1\] must be a callable"):
        await orch.execute_workflow("task", run_id="r1", stream_callback=[print, "not a callback"])
    result = await orch.execute_workflow("task", run_id="r1")  # nothing was taken or stored
    assert result.status is TaskStatus.COMPLETED
