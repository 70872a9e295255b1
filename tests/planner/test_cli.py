"""``orchestrate run planner "TASK"`` with the scripted provider, and the stored run through
``runs``, ``show`` and ``resume``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from orchestration import EventType, PlannerOrchestrator, StreamEvent
from orchestration.scripted import demo_provider
from orchestration.stores import open_store

from ..core.test_cli import orchestrate


def test_run_planner_from_the_command_line_then_show_and_list_it(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    done = orchestrate(
        "run", "planner", "Tide prediction", "--provider", "scripted", "--store", store, "--json", "-q"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "completed"
    assert [r["subtask_id"] for r in result["agent_results"]] == ["background", "applications", "review"]
    assert result["metadata"]["planner"]["stopped_by"] == "finish"
    assert result["metadata"]["planner"]["nodes"]["review"]["dependencies"] == ["background", "applications"]
    assert set(result["cost_by_agent"]) == {"planner", "background", "applications", "review", "synthesizer"}
    run_id = result["run_id"]
    assert done.stderr.splitlines()[0] == f"run {run_id} started"

    shown = orchestrate("show", run_id, "--store", store, "--json")
    assert shown.returncode == 0, shown.stderr
    stored = json.loads(shown.stdout)["result"]
    assert stored["status"] == "completed"
    assert stored["final_synthesis"] == result["final_synthesis"]
    assert stored["total_cost"] == result["total_cost"]

    mermaid = orchestrate("show", run_id, "--store", store, "--mermaid")
    assert mermaid.returncode == 0, mermaid.stderr
    assert '["planner x2<br/><small>completed</small>"]' in mermaid.stdout  # two turns
    assert "%% change: node_added node=review" in mermaid.stdout

    listed = orchestrate("runs", "--store", store, "--json")
    [row] = json.loads(listed.stdout)
    assert (row["run_id"], row["orchestrator"], row["status"]) == (run_id, "planner", "completed")

    again = orchestrate("resume", run_id, "--store", store, "--json", "-q")  # finished: its result
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["final_synthesis"] == result["final_synthesis"]


def test_a_bound_set_with_o_ends_the_run_partial_with_its_reason() -> None:
    done = orchestrate(
        "run", "planner", "Tide prediction", "--provider", "scripted", "--store", "memory:", "--json", "-q",
        "-o", "max_planning_turns=1",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "partial"
    assert result["error"] == "the planner used its 1 turns (max_planning_turns) without finishing"
    assert result["final_synthesis"]  # written from the three nodes that completed
    bad = orchestrate(
        "run", "planner", "t", "--provider", "scripted", "--store", "memory:", "-o", "max_nodes=0"
    )
    assert (bad.returncode, bad.stderr) == (2, "error: max_nodes must be >= 1, got 0\n")


async def test_an_interrupted_planner_run_is_resumed_by_the_command_line(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    store = open_store(url)
    planner = PlannerOrchestrator(provider=demo_provider(), store=store)
    runs: list[asyncio.Future[object]] = []

    def watch(event: StreamEvent) -> None:
        # Cancelled from inside the run, at once: the next thing it awaits is interrupted
        # (waiting for the test task to wake first would let the scripted run race to its end).
        if event.event_type is EventType.GRAPH_NODE_COMPLETED and event.data["node"] == "background":
            runs[0].cancel()  # the process stops the run (a shutdown): it is interrupted, not ended

    run = asyncio.ensure_future(
        planner.execute_workflow("Tide prediction", run_id="tides", stream_callback=watch)
    )
    runs.append(run)
    await asyncio.gather(run, return_exceptions=True)
    summary = await store.get_run("tides")
    assert summary is not None and str(summary.status) == "in_progress"
    calls_before = len([e for e in await store.events("tides") if e.event_type is EventType.COST_UPDATE])
    await store.close()

    done = await asyncio.to_thread(orchestrate, "resume", "tides", "--store", url, "--json", "-q")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "completed"
    assert [r["subtask_id"] for r in result["agent_results"]] == ["background", "applications", "review"]
    store = open_store(url)
    try:
        events = await store.events("tides")
    finally:
        await store.close()
    background = [e for e in events if e.event_type is EventType.AGENT_START and e.agent_id == "background"]
    assert len(background) == 1  # completed before the stop: not run again
    paid = sorted(str(e.agent_id) for e in events if e.event_type is EventType.COST_UPDATE)
    # Every call paid for once, those before the stop included: two turns, three nodes, the synthesis.
    assert paid == ["applications", "background", "planner", "planner", "review", "synthesizer"]
    assert calls_before >= 2  # the first turn and the first node were paid before the stop
