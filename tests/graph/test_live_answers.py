"""Answers from other processes reach a live run; ``resume --answer``; guardrail pauses as questions.

The live tests drive a run in this process on a SQLite file or Postgres and answer it from
another OS process (``orchestrate answer``): the waiting node goes on without a restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from orchestration import Edge, EventType, Graph, MemoryStore, Node, NodeKind, StreamEvent
from orchestration.errors import ConfigError, GraphError
from orchestration.graph import GraphRun, NodeContext, NodeState, answer
from orchestration.guardrails import Guardrails
from orchestration.scripted import ScriptedProvider
from orchestration.stores import open_store
from orchestration.stores.base import RunStore
from tests.stores.conftest import postgres_dsn  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[RunStore]:
    opened = open_store(store_url)
    yield opened
    await opened.close()


def fan() -> Graph:
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


class Asked:
    """A stream callback that notes each question as it is stored."""

    def __init__(self, count: int = 1) -> None:
        self.count = count
        self.questions: list[str] = []
        self.all_asked = asyncio.Event()

        self.completed: dict[str, asyncio.Event] = {}

    def __call__(self, event: StreamEvent) -> None:
        if event.event_type is EventType.GRAPH_NODE_INTERRUPTED:
            self.questions.append(str(event.data["node"]))
            if len(self.questions) >= self.count:
                self.all_asked.set()
        if event.event_type is EventType.GRAPH_NODE_COMPLETED:
            self.done(str(event.data["node"])).set()

    def done(self, node: str) -> asyncio.Event:
        return self.completed.setdefault(node, asyncio.Event())


async def test_an_answer_from_another_process_reaches_the_live_run(store_url: str, store: RunStore) -> None:
    release = asyncio.Event()

    async def busy(ctx: NodeContext) -> str:
        await release.wait()  # the run stays live: this branch is still working
        return "busy done"

    async def ask(ctx: NodeContext) -> Any:
        return await ctx.interrupt("How many copies?", int)

    asked = Asked()
    run = fan().start({"start": lambda c: 0, "left": ask, "right": busy}, store=store, stream_callback=asked)
    task = asyncio.create_task(run.run())
    await asked.all_asked.wait()

    wrong = await asyncio.to_thread(_cli, "answer", run.run_id, "left", "many", "--store", store_url)
    assert wrong.returncode != 0
    assert wrong.stderr.strip() == (
        f"error: the answer to 'How many copies?' (node 'left' of run {run.run_id}) does not fit its "
        "schema: 'many' is not of type 'integer'"
    )
    given = await asyncio.to_thread(
        _cli, "answer", run.run_id, "left", "3", "--store", store_url, "--by", "ana"
    )
    assert given.returncode == 0, given.stderr
    assert given.stderr.strip() == (
        f"answer delivered to the process driving run {run.run_id}: 'left' goes on there"
    )
    again = await asyncio.to_thread(_cli, "answer", run.run_id, "left", "4", "--store", store_url)
    assert again.returncode != 0
    assert "already has its answer (3 by ana); a second answer is refused" in again.stderr
    assert not task.done()  # the answered branch went on while the other still works
    release.set()
    result = await task
    assert result.status == "completed"
    assert result.output("join") == {"left": 3, "right": "busy done"}
    kinds = [event.event_type for event in await store.events(run.run_id)]
    assert EventType.WORKFLOW_PAUSED not in kinds  # never paused, never restarted


async def test_a_run_waiting_only_for_answers_stays_live_and_parallel_questions_are_independent(
    store_url: str, store: RunStore
) -> None:
    async def ask(ctx: NodeContext) -> Any:
        return await ctx.interrupt(f"value for {ctx.node_id}?", int)

    asked = Asked(count=2)
    run = fan().start(
        {"start": lambda c: 0, "left": ask, "right": ask},
        store=store,
        stream_callback=asked,
        wait_for_answers=float("inf"),
    )
    task = asyncio.create_task(run.run())
    await asked.all_asked.wait()
    right = await asyncio.to_thread(_cli, "answer", run.run_id, "right", "2", "--store", store_url)
    assert right.returncode == 0, right.stderr
    assert "delivered" in right.stderr
    # "right" went on by itself; "left" still waits and the run stays live for it.
    await asked.done("right").wait()
    assert set(run.state.waiting()) == {"left"} and not task.done()
    assert await answer(store, run.run_id, "left", 7, by="python") == "delivered"
    result = await task
    assert result.status == "completed" and result.output("join") == {"left": 7, "right": 2}


async def test_two_answers_racing_for_one_question_one_wins_the_other_is_refused() -> None:
    store = MemoryStore()

    async def ask(ctx: NodeContext) -> Any:
        return await ctx.interrupt("Name?")

    asked = Asked()
    graph = Graph(nodes=[Node(id="name")], entry="name")
    run = graph.start({"name": ask}, store=store, stream_callback=asked, wait_for_answers=60)
    task = asyncio.create_task(run.run())
    await asked.all_asked.wait()
    outcomes = await asyncio.gather(
        answer(store, run.run_id, "name", "Ada", by="ana"),
        answer(store, run.run_id, "name", "Grace", by="bo"),
        return_exceptions=True,
    )
    won = [o for o in outcomes if o == "delivered"]
    lost = [o for o in outcomes if isinstance(o, GraphError)]
    assert len(won) == 1 and len(lost) == 1
    assert "a second answer is refused" in str(lost[0])
    result = await task
    assert result.output("name") in ("Ada", "Grace")
    answered = [
        e for e in await store.events(run.run_id) if e.event_type is EventType.GRAPH_INTERRUPT_ANSWERED
    ]
    assert len(answered) == 1  # exactly one answer in the log


async def test_an_answer_queued_for_a_busy_driver_is_taken_when_the_run_resumes() -> None:
    store = MemoryStore()
    asked = Asked()

    async def ask(ctx: NodeContext) -> Any:
        return await ctx.interrupt("Title?")

    graph = Graph(nodes=[Node(id="title")], entry="title")
    run = graph.start({"title": ask}, store=store, stream_callback=asked, run_id="q", wait_for_answers=60)
    task = asyncio.create_task(run.run())
    await asked.all_asked.wait()
    assert await answer(store, "q", "title", "Tides", wait_seconds=0) == "queued"
    with pytest.raises(GraphError, match="already has an answer on its way"):
        await answer(store, "q", "title", "Moon", wait_seconds=0)
    result = await task  # the driver finds it in the inbox, goes on, and empties the inbox
    assert result.output("title") == "Tides"
    assert await store.events("q~answers") == []


async def test_an_answer_left_in_the_inbox_by_a_driver_that_stopped_is_taken_by_the_resume() -> None:
    store = MemoryStore()

    async def ask(ctx: NodeContext) -> Any:
        return await ctx.interrupt("Title?")

    graph = Graph(nodes=[Node(id="title")], entry="title")
    assert (await graph.run({"title": ask}, store=store, run_id="left")).status == "paused"
    # As if posted to a driver that let the run go before it looked:
    inbox = [
        StreamEvent(
            EventType.GRAPH_INTERRUPT_ANSWERED,
            "left~answers",
            1,
            0.0,
            {"node": "title", "index": 0, "answer": "Late", "by": "ana", "id": "x"},
        )
    ]
    await store.append("left~answers", inbox)
    resumed = await graph.run({"title": ask}, store=store, run_id="left")
    assert resumed.status == "completed" and resumed.output("title") == "Late"


async def test_answering_a_run_nobody_drives_records_it_under_the_runs_lease(store: RunStore) -> None:
    async def ask(ctx: NodeContext) -> Any:
        return await ctx.interrupt("Title?")

    graph = Graph(nodes=[Node(id="title")], entry="title")
    assert (await graph.run({"title": ask}, store=store, run_id="idle")).status == "paused"
    assert await answer(store, "idle", "title", "Tides") == "recorded"
    assert await store.lease_holder("idle") is None  # given back
    assert (await graph.run({"title": ask}, store=store, run_id="idle")).output("title") == "Tides"


# -- orchestrate resume --answer -------------------------------------------------------------


def test_resume_answer_answers_and_continues_a_workflow_run_in_one_step(store_url: str) -> None:
    worker = subprocess.run(
        [sys.executable, "-m", "tests.graph.interrupt_worker", store_url, "wf-1"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(worker.stdout)["questions"] == {"title": "What title should the note have?"}

    first = _cli("resume", "wf-1", "--answer", "title=Tides, briefly", "--store", store_url, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {
        "run_id": "wf-1",
        "status": "paused",
        "output": None,
        "questions": {"publish": "Publish the note?"},
    }
    denied = _cli("resume", "wf-1", "--answer", "publish=maybe", "--store", store_url)
    assert denied.returncode != 0
    assert "does not fit its schema: 'maybe' is not of type 'boolean'" in denied.stderr
    done = _cli("resume", "wf-1", "--answer", "publish=true", "--store", store_url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == "published 'Tides, briefly'"


def test_resume_answer_says_what_to_do_for_a_run_it_cannot_rebuild(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")

    async def make() -> None:
        async def ask(ctx: NodeContext) -> Any:
            return await ctx.interrupt("Title?")

        opened = open_store(url)
        await Graph(nodes=[Node(id="title")], entry="title").run({"title": ask}, store=opened, run_id="g")
        await opened.close()

    asyncio.run(make())
    refused = _cli("resume", "g", "--answer", "title=x", "--store", url)
    assert refused.returncode != 0
    assert refused.stderr.strip() == (
        "error: run g is a graph run whose handlers are in your code; answer with orchestrate answer g "
        "NODE VALUE and continue it from your code with graph.run(handlers, run_id='g')"
    )
    bad = _cli("resume", "g", "--answer", "title", "--store", url)
    assert "--answer 'title': write NODE=VALUE" in bad.stderr


# -- guardrail pauses become questions ----------------------------------------------------------

CHECKPOINT = """
policies:
  - name: checkpoint
    when: calls >= 2
    action: pause_run
"""


def model_graph() -> Graph:
    return Graph(
        nodes=[Node(id="a"), Node(id="b"), Node(id="end", kind=NodeKind.TERMINAL)],
        edges=[Edge(source="a", target="end"), Edge(source="b", target="end")],
    )


async def three_calls(ctx: NodeContext) -> int:
    for n in range(3):
        await ctx.call_llm(f"{ctx.node_id} step {n}", max_tokens=20)
    return 3


async def test_a_guardrail_pause_asks_one_question_for_every_node_it_stopped() -> None:
    store = MemoryStore()
    options: dict[str, Any] = {
        "store": store,
        "run_id": "guarded",
        "provider": ScriptedProvider("ok"),
        "guardrails": Guardrails.load(CHECKPOINT),
    }
    handlers = {"a": three_calls, "b": three_calls}
    paused = await model_graph().run(handlers, **options)
    assert paused.status == "paused"
    assert set(paused.questions) == {"a", "b"}  # both nodes hit the pause
    question = paused.questions["a"]
    assert question.startswith("guardrail 'checkpoint' (run: calls >= 2) -> pause_run: calls = 2")
    assert question.endswith("Go on past this guardrail (true) or stop the run (false)?")
    guardrail_events = [e for e in await store.events("guarded") if e.event_type is EventType.GUARDRAIL]
    assert guardrail_events and guardrail_events[0].data["policy"] == "checkpoint"

    assert await answer(store, "guarded", "a", True, by="ana") == "recorded"  # answers "b" too
    done = await model_graph().run(handlers, **options)
    assert done.status == "completed", done.questions
    assert done.output("end") == {"a": 3, "b": 3}
    assert done.usage is not None and done.usage.calls == 6  # each call made once, none paused again


async def test_answering_no_to_a_guardrail_stops_the_run() -> None:
    store = MemoryStore()
    options: dict[str, Any] = {
        "store": store,
        "run_id": "stopped",
        "provider": ScriptedProvider("ok"),
        "guardrails": Guardrails.load(CHECKPOINT),
    }
    graph = Graph(nodes=[Node(id="a")], entry="a")
    assert (await graph.run({"a": three_calls}, **options)).status == "paused"
    await answer(store, "stopped", "a", "false")
    stopped = await graph.run({"a": three_calls}, **options)
    assert stopped.status == "failed"
    assert stopped.error is not None and stopped.error.startswith(
        "stopped at guardrail 'checkpoint' (answered false): guardrail 'checkpoint'"
    )


async def test_no_to_a_guardrail_that_stopped_two_nodes_fails_the_run_without_hanging() -> None:
    """Both nodes run again once answered; the first to read the "no" stops the run while
    the other's task has not started yet: that one is recorded cancelled, and the run ends."""
    store = MemoryStore()
    options: dict[str, Any] = {
        "store": store,
        "run_id": "both",
        "provider": ScriptedProvider("ok"),
        "guardrails": Guardrails.load(CHECKPOINT),
    }
    handlers = {"a": three_calls, "b": three_calls}
    assert set((await model_graph().run(handlers, **options)).questions) == {"a", "b"}
    await answer(store, "both", "a", False)
    async with asyncio.timeout(60):  # not a timing assert: a hang fails instead of stalling the suite
        stopped = await model_graph().run(handlers, **options)
    assert stopped.status == "failed"
    assert stopped.error is not None and stopped.error.startswith("stopped at guardrail 'checkpoint'")
    assert {stopped.states["a"], stopped.states["b"]} <= {NodeState.FAILED, NodeState.CANCELLED}


async def test_a_live_run_goes_on_past_a_guardrail_answered_from_elsewhere() -> None:
    store = MemoryStore()
    asked = Asked()
    graph = Graph(nodes=[Node(id="a")], entry="a")
    run = graph.start(
        {"a": three_calls},
        store=store,
        provider=ScriptedProvider("ok"),
        guardrails=Guardrails.load(CHECKPOINT),
        stream_callback=asked,
        wait_for_answers=60,
    )
    task = asyncio.create_task(run.run())
    await asked.all_asked.wait()
    assert await answer(store, run.run_id, "a", True) == "delivered"
    result = await task
    assert result.status == "completed" and result.output("a") == 3


def test_guardrails_without_a_provider_are_refused_in_one_line() -> None:
    with pytest.raises(
        ConfigError, match=r"^guardrails act on model calls: pass provider= \(and config=\) too$"
    ):
        GraphRun([Node(id="a")], [], {"a": lambda c: 1}, guardrails=Guardrails.load(CHECKPOINT))
