"""Resume and replay of ``graph.run`` from the store, on memory, SQLite files and Postgres.

A run of the scenario (tests/graph/scenario.py: a loop, a branch not taken, and handlers
that split, add and rework nodes) is stopped part-way — by a crash at an exact event, by
SIGKILL in a real process, or by cancelling the task that runs it — and resumed.  Each
time the resumed run must end as an uninterrupted one does (same graph, mutations
included, same states and outputs per visit), and no visit whose completion was stored
runs again.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from orchestration import MemoryStore
from orchestration.engine.core import NodeAdded, NodeCompleted, NodeSplit, ReworkInserted
from orchestration.errors import GraphError
from orchestration.graph import Edge, Graph, Node, NodeContext, NodeKind, NodeState, answer
from orchestration.stores import RunStore, SQLiteStore, open_store
from tests.stores.conftest import postgres_dsn  # noqa: F401  (a fixture)

from . import scenario
from .crashing import Crash, CrashingStore

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = {"topic": "tides"}
Opener = Callable[[], RunStore]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens a new store object on one database each call (memory: the one store)."""
    opened: list[RunStore] = []
    shared = MemoryStore()
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else ""

    def open_one() -> RunStore:
        store: RunStore
        if request.param == "memory":
            store = shared
        elif request.param == "sqlite":
            store = SQLiteStore(tmp_path / "runs.db")
        else:
            from orchestration.stores.postgres import PostgresStore

            store = PostgresStore(dsn)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


async def run_scenario(store: RunStore, run_id: str, log: list[tuple[str, int]] | None = None) -> None:
    def record(node: str, visit: int) -> None:
        if log is not None:
            log.append((node, visit))

    await scenario.graph().run(
        scenario.handlers(record),
        payload=PAYLOAD,
        store=store,
        run_id=run_id,
    )


async def stored_snapshot(store: RunStore, run_id: str) -> dict[str, Any]:
    return scenario.snapshot(scenario.folded(await store.events(run_id)))


async def clean(store: RunStore) -> tuple[dict[str, Any], int]:
    """The uninterrupted run's snapshot and how many events it stored."""
    await run_scenario(store, "clean")
    events = await store.events("clean")
    expected = scenario.snapshot(scenario.folded(events))
    assert expected["status"] == "completed"
    assert {"research.a", "research.b", "extra", "left.fix"} <= set(expected["nodes"])
    assert expected["nodes"]["right"]["state"] == "skipped"
    assert set(expected["nodes"]["draft"]["outputs"]) == {"1", "2", "3"}
    return expected, len(events)


async def resume_and_check(store: RunStore, run_id: str, expected: dict[str, Any]) -> list[tuple[str, int]]:
    """Resume ``run_id``; what runs again must not have completed before."""
    done_before = scenario.completed_visits(await store.events(run_id))
    ran: list[tuple[str, int]] = []
    await run_scenario(store, run_id, ran)
    assert await stored_snapshot(store, run_id) == expected
    assert not set(ran) & done_before, f"completed visits ran again: {sorted(set(ran) & done_before)}"
    return ran


async def test_a_crash_at_any_event_then_resume_gives_the_same_run(opener: Opener) -> None:
    # The crashed runs write through one store object, the resumes read through another
    # (a new process would open its own).
    crashing, resuming = opener(), opener()
    expected, count = await clean(crashing)
    for at in range(1, count):
        run_id = f"crash-at-{at}"
        with pytest.raises(Crash):
            await run_scenario(CrashingStore(crashing, at).as_store(), run_id)
        assert len(await resuming.events(run_id)) == at
        await resume_and_check(resuming, run_id, expected)


async def test_a_visit_that_runs_again_does_not_repeat_its_changes(opener: Opener) -> None:
    # Crash just after plan's split and audit's rework, before either handler returned:
    # the resumed visits run their handlers again, and the changes are not made twice.
    store = opener()
    expected, _ = await clean(store)
    events = scenario.graph_events(await store.events("clean"))
    for kind in (NodeSplit, ReworkInserted):
        at = 1 + next(i for i, e in enumerate(events) if isinstance(e, kind))
        run_id = f"after-{kind.__name__}"
        with pytest.raises(Crash):
            await run_scenario(CrashingStore(store, at).as_store(), run_id)
        ran = await resume_and_check(store, run_id, expected)
        maker = "plan" if kind is NodeSplit else "audit"
        assert (maker, 1) in ran
    made = [
        e for e in scenario.graph_events(await store.events("after-NodeSplit")) if isinstance(e, NodeSplit)
    ]
    assert len(made) == 1 and made[0].by == "plan"


async def test_a_visit_that_changes_the_graph_differently_when_it_runs_again_is_refused() -> None:
    store = MemoryStore()
    graph = Graph(nodes=[Node(id="plan"), Node(id="later")], edges=[Edge(source="plan", target="later")])
    runs = iter(["first", "second"])

    def plan(ctx: NodeContext) -> str:
        if next(runs) == "first":
            ctx.graph.edit_node(Node(id="later", priority=1))
        else:
            ctx.graph.remove_node("later")
        return "planned"

    events = 3  # run started, plan ready and started
    with pytest.raises(Crash):
        await graph.run(
            {"plan": plan, "later": lambda c: None},
            store=CrashingStore(store, events + 1).as_store(),
            run_id="r",
        )
    result = await graph.run({"plan": plan, "later": lambda c: None}, store=store, run_id="r")
    assert result.states["plan"] is NodeState.FAILED
    assert "'plan' ran its visit again and changed the graph differently" in result.errors["plan"]
    assert "NodeRemoved('later') where it first made NodeEdited('later')" in result.errors["plan"]


@pytest.mark.parametrize(
    "stop_at",
    [
        ("plan", 1),
        ("research.a", 1),
        ("draft", 2),
        ("review", 3),
        ("audit", 1),
        ("left.fix", 1),
        ("merge", 1),
    ],
)
async def test_cancelling_the_task_mid_run_then_resume_gives_the_same_run(
    opener: Opener, stop_at: tuple[str, int]
) -> None:
    store = opener()
    expected, _ = await clean(store)
    reached = asyncio.Event()
    never = asyncio.Event()
    handlers = scenario.handlers(lambda node, visit: None)

    def stopping(handler: Callable[[NodeContext], Any]) -> Callable[[NodeContext], Any]:
        async def wrapper(ctx: NodeContext) -> Any:
            if (ctx.node_id, ctx.visit) == stop_at:
                reached.set()
                await never.wait()
            return handler(ctx)

        return wrapper

    task = asyncio.create_task(
        scenario.graph().run(
            {key: stopping(fn) for key, fn in handlers.items()},
            payload=PAYLOAD,
            store=store,
            run_id="stopped",
        )
    )
    await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    summary = await store.get_run("stopped")
    assert summary is not None and not summary.status.is_terminal  # interrupted, not ended
    folded = scenario.folded(await store.events("stopped"))
    assert folded.state_of(stop_at[0]) is NodeState.READY  # requeued, to run again
    ran = await resume_and_check(opener(), "stopped", expected)
    assert stop_at in ran


async def test_replay_of_a_stored_run_rebuilds_its_graph_and_result(opener: Opener) -> None:
    store = opener()
    run = scenario.graph().start(scenario.handlers(lambda node, visit: None), payload=PAYLOAD, store=store)
    live = await run.run()
    stored = await opener().events(run.run_id)
    assert scenario.snapshot(scenario.folded(stored)) == scenario.snapshot(run.state)

    def never(ctx: NodeContext) -> None:
        raise AssertionError(f"{ctx.node_id} ran again")

    again = await scenario.graph().run(
        {NodeKind.TASK: never, NodeKind.SWITCH: never, NodeKind.TERMINAL: never},
        store=opener(),
        run_id=run.run_id,
    )
    assert (again.status, again.states) == (live.status, live.states)
    assert json.loads(json.dumps(again.outputs)) == json.loads(json.dumps(live.outputs))


async def test_completion_events_are_stored_once_per_visit(opener: Opener) -> None:
    store = opener()
    with pytest.raises(Crash):
        await run_scenario(CrashingStore(store, 30).as_store(), "once")
    await run_scenario(store, "once")
    completions = [
        (e.node, e.visit)
        for e in scenario.graph_events(await store.events("once"))
        if isinstance(e, NodeCompleted)
    ]
    assert len(completions) == len(set(completions))


# -- real processes killed with SIGKILL ---------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    return str(request.getfixturevalue("postgres_dsn"))


def worker(store_url: str, log: Path, kill: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "tests.graph.crash_worker", store_url, "run", str(log), kill],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def logged(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    return [(node, int(visit)) for node, visit in (line.split() for line in log.read_text().splitlines())]


async def test_processes_killed_in_handlers_and_between_events_then_resumed(
    store_url: str, tmp_path: Path
) -> None:
    expected, _ = await clean(MemoryStore())
    # Kill points in handlers that change the graph or loop, each after its changes;
    # every other process also dies three events into its resume.
    pending = {("plan", 1), ("draft", 2), ("review", 3), ("audit", 1), ("left.fix", 1), ("merge", 1)}
    for n in range(20):
        kills = [f"node:{node}:{visit}" for node, visit in sorted(pending)] + (["events:3"] if n % 2 else [])
        done_before = await stored_completions(store_url)
        log = tmp_path / f"process{n}.log"
        finished = worker(store_url, log, ",".join(kills) or "none")
        ran = logged(log)
        assert not set(ran) & done_before, f"completed visits ran again: {set(ran) & done_before}"
        if not kills:
            assert finished.returncode == 0, finished.stderr[-3000:]
            assert json.loads(finished.stdout) == expected
            return
        assert finished.returncode == -9, f"not killed at {kills}: {finished.stderr[-2000:]}"
        pending -= set(ran)  # a kill point that ran is where this process died
    raise AssertionError(f"kill points never reached: {sorted(pending)}")


async def stored_completions(store_url: str) -> set[tuple[str, int]]:
    store = open_store(store_url)
    try:
        return scenario.completed_visits(await store.events("run"))
    finally:
        await store.close()


async def test_a_refused_change_does_not_shift_what_a_visit_that_runs_again_replays() -> None:
    """A handler's change is refused (and caught), then it changes the graph and asks; once
    answered, its visit runs again: the same changes are replayed, the refusal repeats, and
    the run ends with the graph and result an unbroken run gives."""
    store = MemoryStore()
    graph = Graph(nodes=[Node(id="plan")], entry="plan")
    refusals: list[str] = []

    async def plan(ctx: NodeContext) -> Any:
        ctx.graph.add_node(Node(id="a"), [Edge(source="plan", target="a")], reason="first")
        for refused in (
            lambda: ctx.graph.add_node(Node(id="a"), reason="twice"),  # a duplicate id
            lambda: ctx.graph.add_edge("plan", "nowhere"),  # an unknown node
        ):
            try:
                refused()
            except GraphError as error:
                refusals.append(str(error))
        ctx.graph.add_node(Node(id="b"), [Edge(source="plan", target="b")], reason="second")
        return await ctx.interrupt("Go?")

    handlers = {"plan": plan, "a": lambda ctx: "A", "b": lambda ctx: "B"}
    paused = await graph.run(handlers, store=store, run_id="refused")
    assert paused.status == "paused" and len(refusals) == 2
    await answer(store, "refused", "plan", "yes")
    done = await graph.run(handlers, store=store, run_id="refused")
    assert done.status == "completed", done.errors
    assert done.output("plan") == "yes" and done.output("a") == "A" and done.output("b") == "B"
    assert refusals[2:] == refusals[:2]  # the visit that ran again was refused the same way
    added = [
        e.node.id for e in scenario.graph_events(await store.events("refused")) if isinstance(e, NodeAdded)
    ]
    assert added == ["a", "b"]  # each change made once
