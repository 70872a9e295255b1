"""Human in the loop: ``ctx.interrupt`` pauses a run durably; an answer continues it.

The end-to-end test is the issue's: interrupt -> the process exits -> another process
answers (the CLI) -> the run completes, on SQLite and Postgres.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestration import Edge, EventType, Graph, MemoryStore, Node, NodeKind, StreamEvent
from orchestration.errors import GraphError
from orchestration.graph import NodeContext, NodeState, answer
from tests.stores.conftest import postgres_dsn  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[2]


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    return str(request.getfixturevalue("postgres_dsn"))


def test_a_question_survives_the_process_and_an_answer_from_another_continues_it(store_url: str) -> None:
    worker = ("-m", "tests.graph.interrupt_worker", store_url, "hitl-1")
    first = _python(*worker)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {
        "status": "paused",
        "questions": {"title": "What title should the note have?"},
        "output": None,
    }
    cli = ("-m", "orchestration.cli", "answer", "hitl-1")
    answered = _python(*cli, "title", "Tides, briefly", "--store", store_url, "--by", "ana")
    assert answered.returncode == 0, answered.stderr
    assert "answer recorded for 'title' of run hitl-1" in answered.stderr

    second = _python(*worker)  # a new process: the answer is only in the store
    assert json.loads(second.stdout)["questions"] == {"publish": "Publish the note?"}  # the approval gate
    assert _python(*cli, "publish", "true", "--store", store_url).returncode == 0

    third = _python(*worker)
    assert json.loads(third.stdout) == {
        "status": "completed",
        "questions": {},
        "output": "published 'Tides, briefly'",
    }


def test_answering_a_node_that_does_not_wait_is_one_clear_line(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    assert _python("-m", "tests.graph.interrupt_worker", store, "hitl-2").returncode == 0
    wrong = _python("-m", "orchestration.cli", "answer", "hitl-2", "draft", "x", "--store", store)
    assert wrong.returncode != 0
    assert wrong.stderr.strip().splitlines() == [
        "error: node 'draft' of run hitl-2 is not waiting for an answer (waiting: title)"
    ]


def fan_graph() -> Graph:
    return Graph(
        nodes=[Node(id="start"), Node(id="left"), Node(id="right"), Node(id="join", kind=NodeKind.TERMINAL)],
        edges=[
            Edge(source="start", target="left"),
            Edge(source="start", target="right"),
            Edge(source="left", target="join"),
            Edge(source="right", target="join"),
        ],
        entry="start",
    )


async def test_questions_in_parallel_branches_are_independent() -> None:
    store = MemoryStore()
    runs: list[str] = []

    async def ask(ctx: NodeContext) -> Any:
        runs.append(ctx.node_id)  # code before the question runs again after the answer
        return await ctx.interrupt(f"value for {ctx.node_id}?", int)

    handlers = {"start": lambda ctx: 0, "left": ask, "right": ask}
    paused = await fan_graph().run(handlers, store=store, run_id="fan")
    assert paused.status == "paused"
    assert paused.questions == {"left": "value for left?", "right": "value for right?"}
    assert paused.states["left"] is NodeState.PENDING

    await answer(store, "fan", "right", 2)
    still = await fan_graph().run(handlers, store=store, run_id="fan")
    assert still.status == "paused" and still.questions == {"left": "value for left?"}
    assert still.output("right") == 2  # the answered branch went on by itself

    await answer(store, "fan", "left", "7")  # converts to int
    done = await fan_graph().run(handlers, store=store, run_id="fan")
    assert done.status == "completed"
    assert done.output("join") == {"left": 7, "right": 2}
    assert sorted(runs) == ["left", "left", "right", "right"]


async def test_an_answer_that_does_not_fit_the_schema_is_refused_in_one_line() -> None:
    store = MemoryStore()

    async def confirm(ctx: NodeContext) -> Any:
        return await ctx.interrupt("Go ahead?", bool)

    graph = Graph(nodes=[Node(id="confirm")], entry="confirm")
    await graph.run({"confirm": confirm}, store=store, run_id="s")
    with pytest.raises(GraphError) as refused:
        await answer(store, "s", "confirm", "perhaps")
    assert str(refused.value) == (
        "the answer to 'Go ahead?' (node 'confirm' of run s) does not fit its schema: "
        "'perhaps' is not of type 'boolean'"
    )
    still = await graph.run({"confirm": confirm}, store=store, run_id="s")
    assert still.status == "paused" and still.questions == {"confirm": "Go ahead?"}  # nothing recorded
    assert await answer(store, "s", "confirm", "true") == "recorded"  # text that is JSON: taken as JSON
    assert (await graph.run({"confirm": confirm}, store=store, run_id="s")).output("confirm") is True


async def test_a_second_answer_to_the_same_question_is_refused_naming_the_first() -> None:
    store = MemoryStore()

    async def name(ctx: NodeContext) -> Any:
        return await ctx.interrupt("Name?")

    graph = Graph(nodes=[Node(id="name")], entry="name")
    await graph.run({"name": name}, store=store, run_id="twice")
    await answer(store, "twice", "name", "Ada", by="ana")
    with pytest.raises(GraphError) as refused:
        await answer(store, "twice", "name", "Grace", by="bo")
    assert str(refused.value) == (
        "node 'name' of run twice already has its answer (\"Ada\" by ana); a second answer is refused"
    )
    assert (await graph.run({"name": name}, store=store, run_id="twice")).output("name") == "Ada"
    with pytest.raises(GraphError, match="has ended \\(completed\\); its questions take no more answers"):
        await answer(store, "twice", "name", "Grace")


async def test_approval_denied_fails_the_node_with_the_question() -> None:
    store = MemoryStore()
    graph = Graph(nodes=[Node(id="deploy", approve_before="Deploy to production?")], entry="deploy")
    ran: list[str] = []
    handlers = {"deploy": lambda ctx: ran.append("deploy")}
    assert (await graph.run(handlers, store=store, run_id="d")).questions == {
        "deploy": "Deploy to production?"
    }
    await answer(store, "d", "deploy", False)
    denied = await graph.run(handlers, store=store, run_id="d")
    assert denied.status == "failed"
    assert denied.errors["deploy"] == "GraphError: not approved: Deploy to production?"
    assert ran == []


async def test_a_live_run_takes_an_answer_without_pausing() -> None:
    asked = asyncio.Event()
    other_may_finish = asyncio.Event()

    async def watch(event: StreamEvent) -> None:
        if event.event_type is EventType.GRAPH_NODE_INTERRUPTED:
            asked.set()

    async def slow(ctx: NodeContext) -> str:
        await other_may_finish.wait()  # keeps the run alive while the question is open
        return "slow done"

    async def ask(ctx: NodeContext) -> Any:
        return await ctx.interrupt("name?")

    run = fan_graph().start(
        {"start": lambda ctx: 0, "left": ask, "right": slow}, store=MemoryStore(), stream_callback=watch
    )
    task = asyncio.create_task(run.run())
    await asked.wait()
    run.answer("left", "Ada")
    with pytest.raises(GraphError, match="already has its answer"):
        run.answer("left", "Grace")  # in the driving process too: no second answer
    other_may_finish.set()
    result = await task
    assert result.status == "completed"
    assert result.output("join") == {"left": "Ada", "right": "slow done"}


async def test_an_answer_through_the_store_reaches_the_live_run_while_other_branches_run() -> None:
    asked, finish = asyncio.Event(), asyncio.Event()
    answered_live: list[str] = []

    def watch(event: StreamEvent) -> None:
        if event.event_type is EventType.GRAPH_NODE_INTERRUPTED:
            asked.set()
        if event.event_type is EventType.GRAPH_INTERRUPT_ANSWERED:
            answered_live.append(event.data["node"])

    async def busy(ctx: NodeContext) -> str:
        await finish.wait()
        return "busy done"

    async def ask(ctx: NodeContext) -> Any:
        return await ctx.interrupt("name?")

    store = MemoryStore()
    run = fan_graph().start(
        {"start": lambda ctx: 0, "left": ask, "right": busy}, store=store, stream_callback=watch
    )
    task = asyncio.create_task(run.run())
    await asked.wait()
    assert await answer(store, run.run_id, "left", "Ada", by="ana") == "delivered"
    assert answered_live == ["left"]  # in the run's log while "right" still runs
    assert run.state.nodes["left"].state is not NodeState.PENDING  # the node went on
    finish.set()
    done = await task
    assert done.status == "completed" and done.output("join") == {"left": "Ada", "right": "busy done"}
    kinds = [e.event_type for e in await store.events(run.run_id)]
    assert EventType.WORKFLOW_PAUSED not in kinds  # never paused
    assert await store.events(run.run_id + "~answers") == []  # the inbox was emptied
