"""A guardrail ``pause_run`` in a planner run pauses it durably, as in graph and workflow
runs: the question survives the process, and an answer (Python, ``orchestrate resume
--answer``, the HTTP API) continues it; no stops it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from orchestration import EventType, PlannerConfig, PlannerOrchestrator, TaskStatus, ToolCall
from orchestration.graph import answer
from orchestration.guardrails import Guardrails
from orchestration.stores import SQLiteStore
from tests.server.harness import AUTH, TOKEN, running_server

from .script import PlannerScript

ROOT = Path(__file__).resolve().parents[2]

#: The planner's call is the first; the second worker call finds two calls made.
CHECKPOINT = "policies:\n  - name: checkpoint\n    when: calls >= 2\n    action: pause_run\n"

TWO_NODES = [
    [
        ToolCall("add_node", {"node_id": "research", "description": "find the methods"}),
        ToolCall("add_node", {"node_id": "compare", "description": "compare them"}),
    ]
]


def planner(store: Any, script: PlannerScript) -> PlannerOrchestrator:
    return PlannerOrchestrator(
        PlannerConfig(max_nodes=4, max_planning_turns=2, max_concurrent_agents=1),
        script.provider,
        store=store,
        guardrails=Guardrails.load(CHECKPOINT),
    )


async def test_a_pause_survives_the_process_and_an_answer_continues_the_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    store = SQLiteStore(db)
    first = PlannerScript(TWO_NODES)
    paused = await planner(store, first).execute_workflow("Tide prediction", run_id="p1")
    assert paused.status is TaskStatus.PAUSED, paused.error
    events = await store.events("p1")
    asked = {
        e.data["node"]: e.data["question"] for e in events if e.event_type is EventType.GRAPH_NODE_INTERRUPTED
    }
    assert set(asked) >= {"observe"} and len(set(asked.values())) == 1  # one question, the same for all
    (question,) = set(asked.values())
    assert question.startswith("guardrail 'checkpoint' (run: calls >= 2) -> pause_run")
    calls_before = len(first.provider.calls)
    await store.close()

    # another store object, orchestrator and provider: what a new process has
    store = SQLiteStore(db)
    worker = next(node for node in asked if node != "observe")
    assert await answer(store, "p1", worker, True, by="ana") == "recorded"
    second = PlannerScript(TWO_NODES)
    done = await planner(store, second).resume("p1")
    await store.close()
    assert done.status is TaskStatus.COMPLETED, done.error
    assert done.final_synthesis.startswith("ANSWER from")
    # no call was paid twice: the resumed run makes only the calls the first did not
    assert calls_before + len(second.provider.calls) == len(PlannerScript(TWO_NODES).turns) + 4


async def test_answering_no_stops_the_planner_run(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    try:
        paused = await planner(store, PlannerScript(TWO_NODES)).execute_workflow("Tides", run_id="p2")
        assert paused.status is TaskStatus.PAUSED
        await answer(store, "p2", "observe", False)
        stopped = await planner(store, PlannerScript(TWO_NODES)).resume("p2")
    finally:
        await store.close()
    assert stopped.status is TaskStatus.FAILED
    assert stopped.error is not None and "guardrail" in stopped.error and "checkpoint" in stopped.error


def test_resume_answer_on_the_command_line_continues_a_paused_planner_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)
    policy = tmp_path / "policy.yaml"
    policy.write_text(CHECKPOINT)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestration.cli", *args, "--store", str(db)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    started = cli("run", "planner", "Tides", "--provider", "scripted", "--policies", str(policy))
    assert "paused" in (started.stdout + started.stderr).lower(), started.stderr
    run_id = _only_run(db)
    resumed = cli("resume", run_id, "--answer", "observe=true", "--policies", str(policy))
    assert resumed.returncode == 0, resumed.stderr
    assert f"answer recorded for 'observe' of run {run_id}" in resumed.stderr


def _only_run(db: Path) -> str:
    import sqlite3

    with sqlite3.connect(db) as connection:
        (run_id,) = connection.execute("SELECT run_id FROM runs").fetchone()
    return str(run_id)


async def test_a_planner_run_the_server_started_goes_on_when_answered_through_the_api(tmp_path: Path) -> None:
    from orchestration.server import create_app
    from orchestration.server.runs import RunRequest

    store = SQLiteStore(tmp_path / "runs.db")
    script = PlannerScript(TWO_NODES)

    def factory(request: RunRequest, store: Any) -> PlannerOrchestrator:
        return planner(store, script)

    app = create_app(factory, store, TOKEN)
    try:
        async with (
            running_server(app) as base,
            httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client,
        ):
            run_id = (await client.post("/runs", json={"pattern": "planner", "task": "Tides"})).json()[
                "run_id"
            ]
            await app.state.runs.wait(run_id)
            assert (await client.get(f"/runs/{run_id}")).json()["run"]["status"] == "paused"
            reply = await client.post(f"/runs/{run_id}/answers", json={"node": "observe", "answer": True})
            assert reply.json()["resumed"] is True, reply.text
            await app.state.runs.wait(run_id)
            detail = (await client.get(f"/runs/{run_id}")).json()
    finally:
        await store.close()
    assert detail["run"]["status"] == "completed", detail
    assert detail["result"]["final_synthesis"].startswith("ANSWER from")
