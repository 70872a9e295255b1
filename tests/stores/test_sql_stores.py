"""What only the SQL stores have: open_store, files, schema versions, DSNs, server-clock leases."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import json
import math
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestration.errors import ConfigError, OrchestrationError
from orchestration.events import EventType, StreamEvent
from orchestration.models import TaskStatus
from orchestration.stores import MemoryStore, SQLiteStore, open_store

from .test_contract import T0, run_events

# -- open_store ---------------------------------------------------------------------------------


def test_open_store_default_is_sqlite_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(None)
    assert isinstance(store, SQLiteStore)
    assert Path(store.path) == tmp_path / ".orchestration" / "runs.db"
    assert not (tmp_path / ".orchestration").exists()  # created on first use, not before

    async def use() -> None:
        await store.append("r1", run_events("r1", at=T0))
        await store.close()

    asyncio.run(use())
    assert (tmp_path / ".orchestration" / "runs.db").is_file()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///relative/runs.db", "relative/runs.db"),
        ("sqlite:////abs/runs.db", "/abs/runs.db"),
        ("plain/runs.db", "plain/runs.db"),
    ],
)
def test_open_store_sqlite_urls_and_paths(
    url: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    assert Path(store.path) == tmp_path / expected


def test_open_store_other_kinds() -> None:
    assert isinstance(open_store("memory:"), MemoryStore)
    from orchestration.stores.postgres import PostgresStore

    store = open_store("postgresql://user:sekrit-password@db.example:5432/runs")
    assert isinstance(store, PostgresStore)  # nothing connects until first use
    assert "sekrit" not in repr(store)
    with pytest.raises(ConfigError, match="unknown store"):
        open_store("redis://localhost")
    with pytest.raises(ConfigError, match="sqlite:///"):
        open_store("sqlite:/runs.db")


def test_importing_stores_touches_nothing(tmp_path: Path) -> None:
    code = (
        "import sys, orchestration.stores, orchestration.guardrails; "
        "print('psycopg' in sys.modules, 'sqlite3' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]  # the SQL stores load on first use
    assert list(tmp_path.iterdir()) == []  # no database file at import


# -- SQLite ---------------------------------------------------------------------------------------


async def test_sqlite_schema_is_versioned_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "runs.db"
    store = SQLiteStore(path)
    await store.append("r1", run_events("r1", at=T0, status=TaskStatus.COMPLETED))
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,), (2,)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (3,)
    reopened = SQLiteStore(path)  # migrating again is a no-op
    assert (await reopened.get_run("r1")) is not None
    await reopened.close()


async def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (99, 0)")
    store = SQLiteStore(path)
    with pytest.raises(OrchestrationError, match="schema version 99"):
        await store.list_runs()
    await store.close()


async def test_sqlite_rejects_malformed_stored_events(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteStore(path)
    await store.append("r1", [StreamEvent(EventType.WORKFLOW_START, "r1", 1, T0, {})])
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute('UPDATE events SET body = \'{"not": "an event"}\'')
    store = SQLiteStore(path)
    with pytest.raises(OrchestrationError, match="malformed"):
        await store.events("r1")
    await store.close()


class _Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class _Point:
    x: float


def _odd_events() -> list[StreamEvent]:
    """Events whose data msgspec and the json module could write differently."""
    from orchestration.engine.core import Edge, Node, NodeCompleted, NodeKind, NodeStarted, RunStarted, wrap

    graph = RunStarted(
        (Node(id="a", timeout=2.5, cost=0.25), Node(id="b", kind=NodeKind.SWITCH)),
        (Edge(source="a", target="b"),),
        "a",
        {"question": "tides?", "weights": [0.5, 1e-07, 12345678901234567890]},
    )
    odd_values: list[Any] = [
        {"nan": math.nan},
        [1.0, -math.inf],
        {"bytes": b"\x00\xff"},
        {"set": {3, 1, 2}},
        {"when": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)},
        {"colour": _Colour.RED, "kind": NodeKind.TASK},
        {"point": _Point(1.5)},
        {"surrogate": "x\ud800y", "nul": "a\x00b", "unicode": "né \u2028"},
        {1: "int key"},
        "plain text",
        None,
    ]
    events = [wrap(graph, "r1", 1, T0), wrap(NodeStarted("a", 1), "r1", 2, T0 + 0.5)]
    for value in odd_values:
        seq = len(events) + 1
        events.append(wrap(NodeCompleted("a", 1, value, duration=0.001), "r1", seq, T0 + seq))
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            events.append(StreamEvent(EventType.AGENT_PROGRESS, "r1", seq + 1, T0 + seq, value, "a", 12.5))
    events.append(wrap(RunStarted((Node(id="c", timeout=math.inf),), (), None), "r2", 1, T0))
    events.append(StreamEvent(EventType.WARNING, "r1", 99, math.nan, {}))
    return events


@pytest.mark.parametrize("event", _odd_events(), ids=lambda e: f"{e.event_type}-{e.seq}")
def test_stored_event_bodies_are_the_json_of_to_dict(event: StreamEvent) -> None:
    """The fast msgspec encoding never changes what is stored: NaN stays NaN, bytes and
    objects stay as ``dumps`` writes them, for graph events and plain ones alike."""
    from orchestration.stores import _sql

    [(run_id, seq, event_type, timestamp, body)] = list(_sql.event_rows(event.run_id, [event]))
    expected = _sql.dumps(event.to_dict())
    assert (run_id, seq, event_type) == (event.run_id, event.seq, str(event.event_type))
    assert timestamp is event.timestamp
    assert json.dumps(json.loads(body), sort_keys=True) == json.dumps(json.loads(expected), sort_keys=True)


async def test_a_graph_run_with_odd_outputs_round_trips_through_sqlite(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    events = [e for e in _odd_events() if e.run_id == "r1" and e.seq < 99]
    await store.append("r1", events)
    stored = await store.events("r1")
    await store.close()
    assert [e.seq for e in stored] == [e.seq for e in events]
    outputs = [e.data["output"] for e in stored if e.event_type is EventType.GRAPH_NODE_COMPLETED]
    assert math.isnan(outputs[0]["nan"]) and outputs[1] == [1.0, -math.inf]  # kept, not written as null
    assert outputs[2] == {"bytes": "AP8="} and outputs[-2:] == ["plain text", None]
    summary = await SQLiteStore(tmp_path / "runs.db").get_run("r1")
    assert (
        summary is not None
        and summary.last_seq == events[-1].seq
        and summary.updated_at == events[-1].timestamp
    )


def test_summary_fold_equals_applying_each_event() -> None:
    """The stores fold a batch skipping events that only stamp the summary: same result."""
    from orchestration.stores.base import RunSummary

    kinds = list(EventType)
    events = [
        StreamEvent(kind, "r1", seq, T0 + seq, {"status": "completed", "total_cost": seq / 10, "title": "t"})
        for seq, kind in enumerate(kinds * 2 + [EventType.AGENT_START, EventType.GRAPH_NODE_READY], 1)
    ]
    for start in range(0, len(events), 7):
        batch = events[start : start + 11]
        one_by_one = RunSummary(run_id="r1")
        for item in batch:
            one_by_one = one_by_one.apply(item)
        assert RunSummary(run_id="r1").fold(batch) == one_by_one


async def test_sqlite_summaries_follow_appends_from_another_store_on_the_file(tmp_path: Path) -> None:
    # Each store keeps the summary its last append wrote; the listing must still say what
    # the file holds when another process (here another store) appended, or deleted the
    # run and began a new one under the same id, in between.
    path = tmp_path / "runs.db"
    first, second = SQLiteStore(path), SQLiteStore(path)
    events = run_events("r1", at=T0, title="one", cost=0.5, status=TaskStatus.COMPLETED)
    await first.append("r1", events[:1])
    await second.append("r1", events[1:2])
    await first.append("r1", events[2:])
    summary = await second.get_run("r1")
    assert summary is not None
    assert (summary.status, summary.total_cost, summary.last_seq) == (TaskStatus.COMPLETED, 0.5, 3)

    assert await second.delete_run("r1")
    await second.append("r1", run_events("r1", at=T0 + 100, title="two", cost=2.0))
    await first.append("r1", [StreamEvent(EventType.AGENT_START, "r1", 3, T0 + 200, {}, agent_id="a")])
    for store in (first, second):
        again = await store.get_run("r1")
        assert again is not None
        assert (again.title, again.created_at, again.total_cost) == ("two", T0 + 100, 2.0)
        assert (again.status, again.last_seq, again.updated_at) == (TaskStatus.IN_PROGRESS, 3, T0 + 200)
    await first.close()
    await second.close()


def test_sqlite_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="synchronous"):
        SQLiteStore("x.db", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="busy_timeout"):
        SQLiteStore("x.db", busy_timeout=-1)


async def test_sqlite_in_memory_and_full_sync_work(tmp_path: Path) -> None:
    for store in (SQLiteStore(":memory:"), SQLiteStore(tmp_path / "full.db", synchronous="FULL")):
        await store.append("r1", run_events("r1", at=T0))
        assert len(await store.events("r1")) == 2
        await store.close()


async def test_sqlite_vacuum_after_prune(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db", clock=lambda: T0 + 100 * 86400)
    for i in range(20):
        await store.append(f"r{i}", run_events(f"r{i}", at=T0 + i, status=TaskStatus.COMPLETED))
    assert await store.prune(older_than_days=30) == 20
    await store.vacuum()
    assert await store.list_runs() == []
    await store.close()


# -- Postgres -------------------------------------------------------------------------------------


def test_postgres_dsn_comes_from_the_argument_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration.stores.postgres import PostgresStore

    monkeypatch.delenv("ORCHESTRATION_DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match="ORCHESTRATION_DATABASE_URL"):
        PostgresStore()
    monkeypatch.setenv("ORCHESTRATION_DATABASE_URL", "postgresql://u:topsecret@h.example/db")
    store = PostgresStore()  # read now, at construction
    assert "h.example" in repr(store) and "topsecret" not in repr(store)
    with pytest.raises(ConfigError, match="max_connections"):
        PostgresStore("postgresql://h/db", max_connections=0)


async def test_postgres_unreachable_is_a_clear_error_without_the_password() -> None:
    from orchestration.stores.postgres import PostgresStore

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = PostgresStore(f"postgresql://u:hunter2secret@127.0.0.1:{port}/x", connect_timeout=1)
    with pytest.raises(OrchestrationError, match="Postgres store") as caught:
        await store.get_run("r1")
    assert "hunter2secret" not in str(caught.value)
    await store.close()


@pytest.mark.postgres
async def test_postgres_leases_use_the_database_clock(postgres_dsn: str) -> None:
    from orchestration.stores.postgres import PostgresStore

    first, second = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    try:
        assert await first.acquire_lease("r1", "alice", 30)
        assert not await second.acquire_lease("r1", "bob", 30)
        assert await second.acquire_lease("r2", "bob", 0.001)
        await asyncio.sleep(0.01)
        assert await first.acquire_lease("r2", "alice", 30)  # bob's lease expired by the server's clock
    finally:
        await first.close()
        await second.close()


@pytest.mark.postgres
async def test_postgres_connections_race_for_leases_and_migrate_once(postgres_dsn: str) -> None:
    from orchestration.stores.postgres import PostgresStore

    stores = [PostgresStore(postgres_dsn, max_connections=2) for _ in range(4)]  # all migrate at once
    run_ids = [f"run-{i}" for i in range(25)]
    try:
        won = await asyncio.gather(
            *(
                asyncio.gather(*(store.acquire_lease(run_id, f"owner-{n}", 60) for run_id in run_ids))
                for n, store in enumerate(stores)
            )
        )
        for column in zip(*won, strict=True):
            assert sum(column) == 1
        await stores[0].append("r1", run_events("r1", at=T0, status=TaskStatus.COMPLETED))
        assert await stores[0].prune(keep_last=0) == 1
        await stores[0].vacuum()
    finally:
        for store in stores:
            await store.close()
    import psycopg

    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,), (2,)]
