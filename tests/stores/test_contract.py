"""The RunStore contract, run against every store: memory, SQLite and Postgres.

Postgres tests use ``$ORCHESTRATION_TEST_DATABASE_URL`` (default the local ``test``
database) and a fresh schema per test (see conftest.py); without Postgres they skip, and
fail in CI.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestration.engine.answers import inbox_of
from orchestration.engine.core import (
    Contract,
    Edge,
    EdgeAdded,
    EdgeRemoved,
    GraphEvent,
    Node,
    NodeAdded,
    NodeCancelled,
    NodeCompleted,
    NodeEdited,
    NodeFailed,
    NodeKind,
    NodeReady,
    NodeRemoved,
    NodeRequeued,
    NodeSkipped,
    NodeSplit,
    NodeStarted,
    NodeState,
    ReworkInserted,
    RouteChosen,
    RunFinished,
    RunStarted,
    decode,
    wrap,
)
from orchestration.engine.core.events import EVENT_TYPES, InterruptAnswered, NodeInterrupted, RunResumed
from orchestration.errors import LeaseLostError, OrchestrationError, SequenceConflictError
from orchestration.events import EventType, StreamEvent
from orchestration.models import TaskStatus
from orchestration.stores import MemoryStore, RunStore, SQLiteStore
from tests.graph import scenario

from . import _workers

DAY = 86400.0
T0 = 1_700_000_000.0


class Clock:
    """An injectable clock the tests move by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """Opens store objects on one backing database; ``reopen`` gives a new object on it."""

    name: str
    factory: Callable[[], RunStore]
    clock: Clock
    opened: list[RunStore] = field(default_factory=list)

    def open(self) -> RunStore:
        store = self.factory()
        self.opened.append(store)
        return store


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    clock = Clock()
    factory: Callable[[], RunStore]
    if request.param == "memory":
        shared = MemoryStore(clock=clock)
        factory = lambda: shared  # noqa: E731 - one process, one memory
    elif request.param == "sqlite":
        path = tmp_path / "runs.db"
        factory = lambda: SQLiteStore(path, clock=clock)  # noqa: E731
    else:
        from orchestration.stores.postgres import PostgresStore

        dsn = request.getfixturevalue("postgres_dsn")
        factory = lambda: PostgresStore(dsn, clock=clock)  # noqa: E731
    backend = Backend(request.param, factory, clock)
    try:
        yield backend
    finally:
        for store in backend.opened:
            await store.close()


@pytest.fixture
async def store(backend: Backend) -> RunStore:
    return backend.open()


def event(run_id: str, seq: int, *, kind: EventType = EventType.AGENT_PROGRESS, **data: Any) -> StreamEvent:
    return StreamEvent(kind, run_id, seq, T0 + seq, data)


def run_events(
    run_id: str, *, at: float, title: str = "", cost: float = 0.0, status: TaskStatus | None = None
) -> list[StreamEvent]:
    """A run that started at ``at``: start, a cost update, and (with ``status``) its end."""
    events = [
        StreamEvent(EventType.WORKFLOW_START, run_id, 1, at, {"title": title, "task": f"task {title}"}),
        StreamEvent(EventType.COST_UPDATE, run_id, 2, at + 1, {"total_cost": cost}),
    ]
    if status is not None:
        end = {"status": str(status), "total_cost": cost}
        events.append(StreamEvent(EventType.WORKFLOW_COMPLETE, run_id, 3, at + 2, end))
    return events


def dicts(events: list[StreamEvent]) -> list[dict[str, Any]]:
    return [e.to_dict() for e in events]


# -- append and read ----------------------------------------------------------------------


async def test_append_and_read_round_trip(store: RunStore) -> None:
    events = [
        StreamEvent(EventType.WORKFLOW_START, "r1", 1, T0, {"title": "Ünïcode ✓", "task": "t"}),
        StreamEvent(
            EventType.AGENT_COMPLETE,
            "r1",
            2,
            T0 + 0.25,
            {"content": 'nul \x00 inside, quotes " and \\ and 中文', "nested": {"a": [1, 2.5, None, True]}},
            agent_id="agent_s1",
            progress=50.0,
        ),
        StreamEvent(EventType.COST_UPDATE, "r1", 3, T0 + 0.5, {"total_cost": 0.123456789012}),
    ]
    await store.append("r1", events[:1])
    await store.append("r1", events[1:])
    assert dicts(await store.events("r1")) == dicts(events)
    assert await store.events("unknown") == []


async def test_text_no_database_column_can_hold_round_trips(store: RunStore) -> None:
    """NUL, lone surrogates (valid in decoded JSON model output) and NaN come back as sent."""
    odd: dict[str, Any] = {
        "nul": "a\x00b",
        "surrogate": "x\ud800y",
        "nan": float("nan"),
        "inf": float("-inf"),
    }
    start = {"title": "t\x00\udfff", "task": "t"}
    await store.append(
        "r1", [StreamEvent(EventType.WORKFLOW_START, "r1", 1, T0, start), event("r1", 2, **odd)]
    )
    stored = (await store.events("r1"))[1].data
    assert (stored["nul"], stored["surrogate"], stored["inf"]) == ("a\x00b", "x\ud800y", float("-inf"))
    assert stored["nan"] != stored["nan"]
    assert (await store.events("r1"))[0].data == start
    assert await store.get_run("r1") is not None
    await store.save_snapshot("r1", 2, {"s": "\ud800", "z": "\x00"})
    assert await store.load_snapshot("r1") == (2, {"s": "\ud800", "z": "\x00"})


async def test_empty_batch_writes_nothing(
    backend: Backend, store: RunStore, request: pytest.FixtureRequest
) -> None:
    await store.append("r1", [])
    assert await store.get_run("r1") is None
    assert await store.events("r1") == []


async def test_after_seq(store: RunStore) -> None:
    await store.append("r1", [event("r1", seq) for seq in range(1, 11)])
    assert [e.seq for e in await store.events("r1", after_seq=7)] == [8, 9, 10]
    assert [e.seq for e in await store.events("r1", after_seq=0)] == list(range(1, 11))
    assert await store.events("r1", after_seq=10) == []


@pytest.mark.parametrize(
    "bad_batch",
    [
        pytest.param([4, 6], id="gap"),
        pytest.param([4, 5, 5], id="duplicate-in-batch"),
        pytest.param([3, 4], id="duplicate-of-stored"),
        pytest.param([5], id="skips-one"),
    ],
)
async def test_seq_must_continue_the_log(store: RunStore, bad_batch: list[int]) -> None:
    await store.append("r1", [event("r1", seq) for seq in (1, 2, 3)])
    with pytest.raises(SequenceConflictError, match="expected event seq"):
        await store.append("r1", [event("r1", seq, marker="bad") for seq in bad_batch])
    # nothing of the rejected batch was written, not even its valid prefix
    assert [e.seq for e in await store.events("r1")] == [1, 2, 3]
    assert all("marker" not in e.data for e in await store.events("r1"))
    summary = await store.get_run("r1")
    assert summary is not None and summary.last_seq == 3
    await store.append("r1", [event("r1", 4)])  # the log is still writable
    assert [e.seq for e in await store.events("r1")] == [1, 2, 3, 4]


async def test_new_run_must_start_at_seq_1(
    backend: Backend, store: RunStore, request: pytest.FixtureRequest
) -> None:
    with pytest.raises(OrchestrationError):
        await store.append("r1", [event("r1", 2)])
    assert await store.get_run("r1") is None
    assert await store.events("r1") == []


async def test_event_for_another_run_is_rejected(store: RunStore) -> None:
    with pytest.raises(OrchestrationError):
        await store.append("r1", [event("r1", 1), event("r2", 2)])
    assert await store.events("r1") == [] and await store.events("r2") == []


async def test_two_writers_racing_on_one_run_one_wins(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    batch_a = [event("r1", seq, writer="a") for seq in range(1, 51)]
    batch_b = [event("r1", seq, writer="b") for seq in range(1, 51)]
    outcomes = await asyncio.gather(
        first.append("r1", batch_a), second.append("r1", batch_b), return_exceptions=True
    )
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], SequenceConflictError)  # the loser can retry
    stored = await first.events("r1")
    assert len(stored) == 50
    assert len({e.data["writer"] for e in stored}) == 1  # never interleaved


async def test_many_runs_appending_at_once(store: RunStore) -> None:
    async def one(run: int) -> None:
        run_id = f"run-{run}"
        for batch in range(10):
            await store.append(run_id, [event(run_id, batch * 3 + i) for i in (1, 2, 3)])

    await asyncio.gather(*(one(run) for run in range(20)))
    for run in range(20):
        assert [e.seq for e in await store.events(f"run-{run}")] == list(range(1, 31))


# -- summaries and listing ------------------------------------------------------------------


async def test_summary_is_derived_from_events(store: RunStore) -> None:
    assert await store.get_run("r1") is None
    await store.append("r1", run_events("r1", at=T0, title="Market study", cost=0.5)[:1])
    summary = await store.get_run("r1")
    assert summary is not None
    assert (summary.status, summary.title, summary.task) == (
        TaskStatus.IN_PROGRESS,
        "Market study",
        "task Market study",
    )
    assert summary.created_at == T0 and summary.last_seq == 1
    await store.append("r1", [StreamEvent(EventType.COST_UPDATE, "r1", 2, T0 + 1, {"total_cost": 0.75})])
    summary = await store.get_run("r1")
    assert summary is not None and summary.total_cost == pytest.approx(0.75)
    end = {"status": "partial", "total_cost": 0.8}
    await store.append("r1", [StreamEvent(EventType.WORKFLOW_COMPLETE, "r1", 3, T0 + 5, end)])
    summary = await store.get_run("r1")
    assert summary is not None
    assert summary.status is TaskStatus.PARTIAL
    assert summary.total_cost == pytest.approx(0.8)
    assert (summary.created_at, summary.updated_at, summary.last_seq) == (T0, T0 + 5, 3)


async def test_list_runs_newest_first_with_filter_and_limit(store: RunStore) -> None:
    await store.append("old", run_events("old", at=T0, title="old", status=TaskStatus.COMPLETED))
    await store.append("mid", run_events("mid", at=T0 + 10, title="mid", status=TaskStatus.FAILED))
    await store.append("new", run_events("new", at=T0 + 20, title="new"))
    assert [s.run_id for s in await store.list_runs()] == ["new", "mid", "old"]
    assert [s.run_id for s in await store.list_runs(limit=2)] == ["new", "mid"]
    assert [s.run_id for s in await store.list_runs(status=TaskStatus.COMPLETED)] == ["old"]
    assert [s.run_id for s in await store.list_runs(status=TaskStatus.IN_PROGRESS)] == ["new"]
    assert await store.list_runs(status=TaskStatus.CANCELLED) == []
    assert [s.title for s in await store.list_runs()] == ["new", "mid", "old"]


async def test_listings_leave_out_a_graph_runs_answer_inbox(store: RunStore) -> None:
    """Answers posted to a driven graph run wait in its inbox, ``<run_id>~answers``: a side
    log no listing shows (``orchestrate runs``, ``GET /runs`` and the store's own), still
    read and written like any log."""
    await store.append("g", run_events("g", at=T0, title="g"))
    inbox = inbox_of("g")
    await store.append(inbox, [event(inbox, 1, kind=EventType.GRAPH_INTERRUPT_ANSWERED, node="a", index=0)])
    assert [s.run_id for s in await store.list_runs()] == ["g"]
    assert [s.run_id for s in await store.list_runs(status=TaskStatus.IN_PROGRESS)] == ["g"]
    assert await store.list_runs(status=TaskStatus.PENDING) == []
    assert [e.data["node"] for e in await store.events(inbox)] == ["a"]
    assert await store.delete_run(inbox) and await store.events(inbox) == []


async def test_delete_run_removes_everything(store: RunStore) -> None:
    await store.append("r1", run_events("r1", at=T0, status=TaskStatus.COMPLETED))
    await store.append("r2", run_events("r2", at=T0))
    await store.save_snapshot("r1", 3, {"x": 1})
    await store.request_cancel("r1")
    assert await store.acquire_lease("r1", "me", 60)
    assert await store.delete_run("r1") is True
    assert await store.delete_run("r1") is False
    assert await store.get_run("r1") is None
    assert await store.events("r1") == []
    assert await store.load_snapshot("r1") is None
    assert await store.cancel_requested("r1") is False
    assert await store.acquire_lease("r1", "someone else", 60)  # the lease went too
    assert [s.run_id for s in await store.list_runs()] == ["r2"]
    await store.append("r1", [event("r1", 1)])  # the id can start afresh
    assert await store.delete_run("never") is False


# -- snapshots ------------------------------------------------------------------------------


async def test_snapshots_keep_the_latest(store: RunStore) -> None:
    assert await store.load_snapshot("r1") is None
    await store.append("r1", [event("r1", seq) for seq in range(1, 6)])
    state = {"nodes": {"s1": {"status": "completed", "content": "ok \x00 ✓"}}, "order": [1, 2.5, None]}
    await store.save_snapshot("r1", 3, state)
    assert await store.load_snapshot("r1") == (3, state)
    await store.save_snapshot("r1", 5, {"later": True})
    assert await store.load_snapshot("r1") == (5, {"later": True})


# -- leases and cancellation ------------------------------------------------------------------


async def test_lease_is_exclusive_and_renewable_by_its_owner(store: RunStore) -> None:
    assert await store.acquire_lease("r1", "alice", 30)
    assert not await store.acquire_lease("r1", "bob", 30)
    assert await store.acquire_lease("r1", "alice", 30)  # renew
    assert await store.acquire_lease("r2", "bob", 30)  # other runs are independent
    await store.release_lease("r1", "bob")  # not bob's: no effect
    assert not await store.acquire_lease("r1", "bob", 30)
    await store.release_lease("r1", "alice")
    assert await store.acquire_lease("r1", "bob", 30)
    assert not await store.acquire_lease("r1", "alice", 30)


async def test_a_resumed_run_is_listed_in_progress_again(store: RunStore) -> None:
    await store.append("r1", run_events("r1", at=T0, status=TaskStatus.PAUSED))
    paused = await store.get_run("r1")
    assert paused is not None and paused.status is TaskStatus.PAUSED
    await store.append("r1", [StreamEvent(EventType.WORKFLOW_RESUMED, "r1", 4, T0 + 4, {"from_seq": 3})])
    resumed = await store.get_run("r1")
    assert resumed is not None and resumed.status is TaskStatus.IN_PROGRESS
    assert [r.run_id for r in await store.list_runs(status=TaskStatus.IN_PROGRESS)] == ["r1"]


async def test_a_dead_holders_lease_is_taken_over_only_by_one(store: RunStore) -> None:
    assert await store.lease_holder("r1") is None
    assert await store.acquire_lease("r1", "dead", 300)
    assert await store.lease_holder("r1") == "dead"
    assert not await store.take_over_lease("r1", "someone-else", "bob", 300)  # not the holder named
    assert await store.take_over_lease("r1", "dead", "bob", 300)
    assert not await store.take_over_lease("r1", "dead", "carol", 300)  # bob won: it is his now
    assert await store.lease_holder("r1") == "bob"
    assert not await store.acquire_lease("r1", "carol", 300)


async def test_writes_fenced_by_a_lease_are_refused_once_another_owner_holds_it(store: RunStore) -> None:
    assert await store.acquire_lease("r1", "alice", 300)
    await store.append("r1", [event("r1", 1)], fence="alice")
    with pytest.raises(LeaseLostError, match="no longer holds the run's lease"):
        await store.append("r1", [event("r1", 2, marker="bob")], fence="bob")
    assert await store.take_over_lease("r1", "alice", "bob", 300)  # alice stalled; bob takes over
    with pytest.raises(LeaseLostError, match="another process took it over"):
        await store.append("r1", [event("r1", 2, marker="alice")], fence="alice")
    await store.append("r1", [event("r1", 2, marker="bob")], fence="bob")
    assert [e.data.get("marker") for e in await store.events("r1")] == [
        None,
        "bob",
    ]  # nothing of alice's late write


async def test_lease_expires_by_the_clock(backend: Backend) -> None:
    store = backend.open()
    assert await store.acquire_lease("r1", "alice", 10)
    backend.clock.now += 9
    assert not await store.acquire_lease("r1", "bob", 10)
    assert await store.acquire_lease("r1", "alice", 10)  # renewal moves the expiry on
    backend.clock.now += 9
    assert not await store.acquire_lease("r1", "bob", 10)
    backend.clock.now += 2  # alice stopped renewing: her lease ran out
    assert await store.acquire_lease("r1", "bob", 10)
    assert not await store.acquire_lease("r1", "alice", 10)


async def test_a_lease_is_renewed_only_by_the_owner_still_holding_it(store: RunStore) -> None:
    assert not await store.renew_lease("r1", "alice", 30)  # renewing never takes a free lease
    assert await store.lease_holder("r1") is None
    assert await store.acquire_lease("r1", "alice", 30)
    assert await store.renew_lease("r1", "alice", 30)
    assert not await store.renew_lease("r1", "bob", 30)  # someone else's lease
    assert await store.lease_holder("r1") == "alice"
    await store.release_lease("r1", "alice")
    assert not await store.renew_lease("r1", "alice", 30)  # released: a late watcher takes nothing
    assert await store.lease_holder("r1") is None
    assert await store.acquire_lease("r1", "bob", 30)
    assert not await store.renew_lease("r1", "alice", 30)
    assert await store.lease_holder("r1") == "bob"


async def test_renewal_moves_the_expiry_on_and_is_refused_once_the_lease_was_retaken(
    backend: Backend,
) -> None:
    store = backend.open()
    assert await store.acquire_lease("r1", "alice", 10)
    backend.clock.now += 9
    assert await store.renew_lease("r1", "alice", 10)
    backend.clock.now += 9
    assert not await store.acquire_lease("r1", "bob", 10)  # the renewal held
    backend.clock.now += 2  # alice stalled past her lease; bob takes the run over
    assert await store.acquire_lease("r1", "bob", 10)
    assert not await store.renew_lease("r1", "alice", 10)  # alice wakes: refused
    assert await store.lease_holder("r1") == "bob"


async def test_cancel_flags(store: RunStore) -> None:
    assert await store.request_cancel("unknown") is False
    assert await store.cancel_requested("unknown") is False
    await store.append("r1", run_events("r1", at=T0))
    await store.append("r2", run_events("r2", at=T0))
    assert await store.cancel_requested("r1") is False
    assert await store.request_cancel("r1") is True
    assert await store.request_cancel("r1") is True
    assert await store.cancel_requested("r1") is True
    assert await store.cancel_requested("r2") is False


# -- retention --------------------------------------------------------------------------------


async def test_prune_by_age_deletes_only_old_finished_runs(backend: Backend) -> None:
    store = backend.open()
    backend.clock.now = T0 + 10 * DAY
    await store.append("old-done", run_events("old-done", at=T0, status=TaskStatus.COMPLETED))
    await store.append("old-failed", run_events("old-failed", at=T0 + DAY, status=TaskStatus.FAILED))
    await store.append("old-running", run_events("old-running", at=T0))
    paused = StreamEvent(EventType.WORKFLOW_PAUSED, "old-paused", 3, T0 + 2, {"status": "paused"})
    await store.append("old-paused", [*run_events("old-paused", at=T0), paused])  # resumable: kept
    await store.append("new-done", run_events("new-done", at=T0 + 9 * DAY, status=TaskStatus.COMPLETED))
    assert await store.prune(older_than_days=5) == 2
    assert sorted(s.run_id for s in await store.list_runs()) == ["new-done", "old-paused", "old-running"]
    assert await store.events("old-done") == []
    assert await store.prune(older_than_days=5) == 0


async def test_prune_keep_last_counts_finished_runs_only(store: RunStore) -> None:
    for i in range(5):
        await store.append(f"done-{i}", run_events(f"done-{i}", at=T0 + i, status=TaskStatus.COMPLETED))
    await store.append("running", run_events("running", at=T0 - 100))
    assert await store.prune(keep_last=2) == 3
    assert [s.run_id for s in await store.list_runs()] == ["done-4", "done-3", "running"]
    assert await store.prune() == 0


# -- graph runs: every typed graph event, and runs stored by an earlier version ------------------


def every_graph_event() -> list[GraphEvent]:
    """One of each graph event type, with the values a store must keep exactly."""
    full = Node(
        id="n\u00e9\u4e2d",
        kind=NodeKind.AGGREGATE,
        max_visits=3,
        on_exhausted="fail",
        priority=-2,
        quorum=2,
        model="gpt-x",
        cost=0.125,
        timeout=1.5,
        handler="h",
        description='quotes " and \\ and nul \x00',
        approve_before="Go on?",
    )
    edge = Edge(source="a", target=full.id, contract=Contract(expectation="needs \u2713", promise="gives"))
    output = {"text": "nul \x00 and \u4e2d\u6587", "nested": {"list": [1, 2.5, None, True]}, "big": 2**60}
    return [
        RunStarted((Node(id="a"), full), (edge,), "a", {"payload": ["x"]}, title="T\u00eftle", task="t"),
        NodeReady("a", 1),
        NodeStarted("a", 1, agent="agent-1", lease_until=T0 + 60),
        RouteChosen("a", 1, ("b", "c")),
        NodeCompleted("a", 1, output, "sum", {"k": "v"}, {"doc": "x" * 100}, 0.25),
        NodeFailed("a", 2, "it broke: \u2717", "ValueError"),
        NodeCancelled("a", 3, "stop"),
        NodeRequeued("a", 3, "resumed"),
        NodeInterrupted("a", 4, 0, "Which colour?", {"type": "string"}),
        InterruptAnswered("a", 0, {"colour": "blue"}, by="tester"),
        RunResumed("answers arrived"),
        NodeAdded(full, (edge,), "more", by="a"),
        NodeEdited(Node(id="b", priority=3), "prio"),
        NodeRemoved(("b", "c"), "gone", by="a"),
        EdgeAdded(edge, "dep"),
        EdgeRemoved("a", "b", "cut"),
        NodeSplit("b", (Node(id="b.1"), Node(id="b.2")), Node(id="b.join", kind=NodeKind.AGGREGATE), "split"),
        ReworkInserted("a", "b", Node(id="a.fix"), "fix", by="a"),
        NodeSkipped("c", "no route reached it"),
        RunFinished("failed", "node(s) ['a'] failed"),
    ]


async def test_every_graph_event_is_stored_and_loaded_back_equal(store: RunStore) -> None:
    events = every_graph_event()
    assert {type(e) for e in events} == set(EVENT_TYPES) | {RunFinished}  # one of each kind
    wrapped = [wrap(e, "g1", seq, T0 + seq) for seq, e in enumerate(events, 1)]
    await store.append("g1", wrapped[:5])
    await store.append("g1", wrapped[5:])
    loaded = await store.events("g1")
    assert [decode(e) for e in loaded] == events
    assert json.loads(json.dumps(dicts(loaded))) == json.loads(json.dumps(dicts(wrapped)))  # tuples: lists
    assert [e.agent_id for e in loaded] == [e.agent_id for e in wrapped]
    summary = await store.get_run("g1")
    assert summary is not None and (summary.title, summary.status) == ("T\u00eftle", TaskStatus.FAILED)


OLD_RUNS = Path(__file__).parent / "data" / "graph_runs_0_1_0.sql"


def _structure(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A folded run without its nodes' outputs."""
    nodes = {
        node: {k: v for k, v in fields.items() if k != "outputs"}
        for node, fields in snapshot["nodes"].items()
    }
    return {**snapshot, "nodes": nodes}


def restore_old_runs(path: Path) -> None:
    """The SQLite file version 0.1.0 wrote (tests/stores/data/make_graph_runs.py)."""
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_RUNS.read_text())
    conn.close()


async def test_graph_runs_stored_by_0_1_0_still_load_and_resume(backend: Backend, tmp_path: Path) -> None:
    if backend.name == "sqlite":
        restore_old_runs(tmp_path / "runs.db")  # the very file the store opens
        store = backend.open()
    else:  # the same events, as that version encoded them, written through this store
        restore_old_runs(tmp_path / "old.db")
        old = SQLiteStore(tmp_path / "old.db")
        store = backend.open()
        for run_id in ("finished", "crashed", "asked", "failed", "cancelled"):
            await store.append(run_id, await old.events(run_id))
        await old.close()
    statuses = {s.run_id: s.status for s in await store.list_runs()}
    assert statuses == {
        "finished": TaskStatus.COMPLETED,
        "crashed": TaskStatus.IN_PROGRESS,
        "asked": TaskStatus.COMPLETED,
        "failed": TaskStatus.FAILED,
        "cancelled": TaskStatus.CANCELLED,
    }

    fresh = MemoryStore()
    await scenario.graph().run(
        scenario.handlers(lambda node, visit: None), payload={"topic": "tides"}, store=fresh, run_id="new"
    )
    expected = _structure(scenario.snapshot(scenario.folded(await fresh.events("new"))))
    # 0.1.0 passed {} to a node a loop re-entered (fixed since), so outputs that hashed
    # their input differ; the graph, states and visits must not.
    assert _structure(scenario.snapshot(scenario.folded(await store.events("finished")))) == expected
    ran: list[tuple[str, int]] = []
    resumed = await scenario.graph().run(
        scenario.handlers(lambda node, visit: ran.append((node, visit))), store=store, run_id="crashed"
    )
    assert resumed.status == "completed"
    assert _structure(scenario.snapshot(scenario.folded(await store.events("crashed")))) == expected
    assert ("plan", 1) not in ran  # it completed, with its changes, before the crash

    asked = scenario.folded(await store.events("asked"))
    assert asked.outputs("use") == {1: {"colour": "blue"}}
    answered = [
        e for e in scenario.graph_events(await store.events("asked")) if isinstance(e, InterruptAnswered)
    ]
    assert [(e.node, e.answer, e.by) for e in answered] == [("ask", "blue", "tester")]
    failed = scenario.folded(await store.events("failed"))
    assert {n: str(s) for n, s in failed.states().items()} == {
        "p0": "completed",
        "p1": "failed",
        "p2": "completed",
        "join": "completed",
        "after": "skipped",
    }
    assert failed.outputs("join") == {1: {"p0": 0, "p2": 2}}
    cancelled = scenario.folded(await store.events("cancelled"))
    assert cancelled.status == "cancelled" and cancelled.state_of("next") is NodeState.CANCELLED


# -- persistence --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_reopen_sees_everything(backend: Backend) -> None:
    first = backend.open()
    await first.append("r1", run_events("r1", at=T0, title="kept", cost=1.5, status=TaskStatus.COMPLETED))
    await first.save_snapshot("r1", 2, {"k": "v"})
    await first.request_cancel("r1")
    assert await first.acquire_lease("r1", "alice", 60)
    await first.close()
    again = backend.open()
    assert dicts(await again.events("r1")) == dicts(
        run_events("r1", at=T0, title="kept", cost=1.5, status=TaskStatus.COMPLETED)
    )
    summary = await again.get_run("r1")
    assert summary is not None and (summary.title, summary.status) == ("kept", TaskStatus.COMPLETED)
    assert summary.total_cost == pytest.approx(1.5)
    assert await again.load_snapshot("r1") == (2, {"k": "v"})
    assert await again.cancel_requested("r1")
    assert not await again.acquire_lease("r1", "bob", 60)
    await again.append("r1", [event("r1", 4)])  # continues after the stored seq


async def test_store_is_usable_after_close(backend: Backend) -> None:
    store = backend.open()
    await store.append("r1", [event("r1", 1)])
    await store.close()
    await store.append("r1", [event("r1", 2)])
    assert [e.seq for e in await store.events("r1")] == [1, 2]


async def test_stores_are_durable_runstores(backend: Backend) -> None:
    store = backend.open()
    assert isinstance(store, RunStore)
    assert getattr(store, "durable", True) is (backend.name != "memory")


# -- several processes on one SQLite file ------------------------------------------------------


def _spawn() -> Any:
    return multiprocessing.get_context("spawn")


def test_sqlite_processes_appending_to_different_runs_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")  # created by the racing processes themselves
    context = _spawn()
    barrier = context.Barrier(3)
    workers = [
        context.Process(target=_workers.append_run, args=(path, f"run-{i}", 60, 7, barrier)) for i in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0

    async def check() -> None:
        store = SQLiteStore(path)
        try:
            for i in range(3):
                assert [e.seq for e in await store.events(f"run-{i}")] == list(range(1, 60 * 7 + 1))
                summary = await store.get_run(f"run-{i}")
                assert summary is not None and summary.last_seq == 420
        finally:
            await store.close()

    asyncio.run(check())


def test_sqlite_processes_racing_for_leases_exactly_one_wins(tmp_path: Path) -> None:
    path = str(tmp_path / "leases.db")
    run_ids = [f"run-{i}" for i in range(40)]
    context = _spawn()
    barrier = context.Barrier(2)
    results = context.Queue()
    workers = [
        context.Process(target=_workers.race_leases, args=(path, owner, run_ids, barrier, results))
        for owner in ("alice", "bob")
    ]
    for worker in workers:
        worker.start()
    won = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    for run_id in run_ids:
        assert (run_id in won["alice"]) != (run_id in won["bob"]), run_id
