"""An answer through the HTTP API lets a paused run go on in the server, as ``orchestrate
resume --answer`` does: workflow and graph runs it was given, on a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from orchestration import Edge, EventType, Graph, MemoryStore, Node, StreamEvent
from orchestration.errors import ConfigError
from orchestration.graph import NodeContext
from orchestration.server import create_app
from orchestration.stores import RunStore, SQLiteStore
from tests.graph.interrupt_worker import Publish

from .harness import AUTH, TOKEN, running_server


async def follow(client: httpx.AsyncClient, run_id: str, after: int) -> AsyncIterator[StreamEvent]:
    """The run's events after ``after``, as the server streams them (live, no polling here)."""
    headers = {**AUTH, "Last-Event-ID": str(after)}
    async with aconnect_sse(client, "GET", f"/runs/{run_id}/events", headers=headers) as source:
        source.response.raise_for_status()
        async for sse in source.aiter_sse():
            yield StreamEvent.from_dict(json.loads(sse.data))


async def until(client: httpx.AsyncClient, run_id: str, after: int, kind: EventType) -> list[StreamEvent]:
    """Events streamed after ``after`` up to and including the first of ``kind``."""
    seen: list[StreamEvent] = []
    async with asyncio.timeout(60):
        async for event in follow(client, run_id, after):
            seen.append(event)
            if event.event_type is kind:
                return seen
    raise AssertionError(f"the stream ended before {kind}: {[str(e.event_type) for e in seen]}")


async def last_seq(store: RunStore, run_id: str) -> int:
    return (await store.events(run_id))[-1].seq


async def test_a_workflow_run_answered_through_the_api_goes_on_in_the_server(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    try:
        paused = await Publish().run("tides", store=store, run_id="flow")
        assert paused.status == "paused" and set(paused.questions) == {"title"}
        app = create_app(store=store, token=TOKEN, workflows=[Publish], poll_interval=0.2)
        async with (
            running_server(app) as base,
            httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client,
        ):
            after = await last_seq(store, "flow")
            reply = await client.post(
                "/runs/flow/answers", json={"node": "title", "answer": "Tides, briefly"}
            )
            assert reply.status_code == 200, reply.text
            assert reply.json() == {"recorded": True, "node": "title", "route": "recorded", "resumed": True}
            # it went on by itself, up to the approval gate, where it paused again
            seen = await until(client, "flow", after, EventType.WORKFLOW_PAUSED)
            kinds = [e.event_type for e in seen]
            assert EventType.WORKFLOW_RESUMED in kinds
            asked = [e.data["node"] for e in seen if e.event_type is EventType.GRAPH_NODE_INTERRUPTED]
            assert asked == ["publish"]

            after = await last_seq(store, "flow")
            reply = await client.post("/runs/flow/answers", json={"node": "publish", "answer": True})
            assert reply.json()["resumed"] is True
            done = await until(client, "flow", after, EventType.WORKFLOW_COMPLETE)
            assert done[-1].data["status"] == "completed"
            await _settled(app, "flow")
            detail = (await client.get("/runs/flow")).json()
            assert detail["run"]["status"] == "completed" and detail["run"]["running_here"] is False
            listed = (await client.get("/runs")).json()["runs"]
            assert [run["run_id"] for run in listed] == ["flow"]  # no answer inbox listed
    finally:
        await store.close()
    again = await Publish().run("tides", store=SQLiteStore(tmp_path / "runs.db"), run_id="flow")
    assert again.status == "completed" and again.output == "published 'Tides, briefly'"


async def _settled(app: Any, run_id: str) -> None:
    """Wait for the server's task of the run to end (it ends just after its last event)."""
    await app.state.runs.wait(run_id)


def fan_out() -> Graph:
    return Graph(
        nodes=[Node(id="start"), Node(id="left"), Node(id="right"), Node(id="end")],
        edges=[
            Edge(source="start", target="left"),
            Edge(source="start", target="right"),
            Edge(source="left", target="end"),
            Edge(source="right", target="end"),
        ],
        entry="start",
    )


async def ask(ctx: NodeContext) -> Any:
    return await ctx.interrupt(f"{ctx.node_id}?")


HANDLERS = {"start": lambda ctx: "go", "left": ask, "right": ask, "end": lambda ctx: ctx.inputs()}


async def test_parallel_questions_of_a_graph_run_answered_through_the_api_finish_it() -> None:
    store = MemoryStore()
    paused = await fan_out().run(HANDLERS, store=store, run_id="fan", orchestrator="fan-out")
    assert set(paused.questions) == {"left", "right"}
    app = create_app(store=store, token=TOKEN, graphs={"fan-out": (fan_out(), HANDLERS)}, poll_interval=0.2)
    async with (
        running_server(app) as base,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client,
    ):
        after = await last_seq(store, "fan")
        first = await client.post("/runs/fan/answers", json={"node": "left", "answer": "L", "by": "ana"})
        assert first.json()["resumed"] is True
        # "left" goes on; "right" still waits, so the run pauses again
        seen = await until(client, "fan", after, EventType.WORKFLOW_PAUSED)
        done_nodes = [e.data["node"] for e in seen if e.event_type is EventType.GRAPH_NODE_COMPLETED]
        assert done_nodes == ["left"]
        await _settled(app, "fan")

        after = await last_seq(store, "fan")
        second = await client.post("/runs/fan/answers", json={"node": "right", "answer": "R"})
        assert second.json()["resumed"] is True
        done = await until(client, "fan", after, EventType.WORKFLOW_COMPLETE)
        assert done[-1].data["status"] == "completed"
        await _settled(app, "fan")
        refused = await client.post("/runs/fan/answers", json={"node": "right", "answer": "again"})
        assert refused.status_code == 409
    result = await fan_out().run(HANDLERS, store=store, run_id="fan")
    assert result.output("end") == {"left": "L", "right": "R"}


async def test_a_run_the_server_cannot_rebuild_keeps_its_answer_for_a_resume_elsewhere() -> None:
    store = MemoryStore()
    await fan_out().run(HANDLERS, store=store, run_id="other")  # run under the name "graph"
    app = create_app(store=store, token=TOKEN, graphs={"fan-out": (fan_out(), HANDLERS)})
    async with running_server(app) as base, httpx.AsyncClient(base_url=base, headers=AUTH) as client:
        reply = await client.post("/runs/other/answers", json={"node": "left", "answer": "L"})
        assert reply.json() == {"recorded": True, "node": "left", "route": "recorded", "resumed": False}
        assert (await client.get("/runs/other")).json()["run"]["status"] == "paused"


def test_what_the_server_resumes_is_checked_when_the_app_is_built() -> None:
    with pytest.raises(ConfigError, match=r"^workflows= takes Workflow subclasses, not 'x'$"):
        create_app(store=MemoryStore(), token=TOKEN, workflows=["x"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"^graphs\['g'\] must be \(graph, handlers\), the graph a Graph$"):
        create_app(store=MemoryStore(), token=TOKEN, graphs={"g": HANDLERS})  # type: ignore[dict-item]
