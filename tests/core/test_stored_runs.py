"""Orchestrator runs stored by 0.1.0 (before BaseOrchestrator ran on the graph runtime)
still load, fold to the same results, and resume (fixture: tests/core/data/)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from orchestration import OrchestratorConfig, RunState, ScriptedProvider, TaskStatus
from orchestration.stores import SQLiteStore

from .data.make_orchestrator_runs import FAST, PLAN
from .helpers import GraphOrchestrator

DATA = Path(__file__).parent / "data"
RUNS = ("completed", "crashed", "partial", "budget", "iterative", "conditional")


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as conn:
        conn.executescript((DATA / "orchestrator_runs_0_1_0.sql").read_text())
    conn.close()
    return SQLiteStore(path)


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(result, sort_keys=True, default=str))


async def test_stored_runs_fold_to_the_results_their_version_gave(store: SQLiteStore) -> None:
    expected = json.loads((DATA / "orchestrator_results_0_1_0.json").read_text())
    try:
        for run_id in RUNS:
            folded = RunState.from_events(run_id, await store.events(run_id)).to_result().to_dict()
            assert _comparable(folded) == expected[run_id], run_id
        listed = {summary.run_id: summary.status for summary in await store.list_runs()}
        assert listed == {run_id: TaskStatus(expected[run_id]["status"]) for run_id in RUNS}
    finally:
        await store.close()


async def test_a_run_that_crashed_under_0_1_0_resumes_without_redoing_its_work(store: SQLiteStore) -> None:
    orch = GraphOrchestrator(
        OrchestratorConfig(**FAST, max_concurrent_agents=1), ScriptedProvider(), subtasks=PLAN, store=store
    )
    try:
        result = await orch.resume("crashed")
    finally:
        await store.close()
    assert result.status is TaskStatus.COMPLETED
    assert orch.started == ["c", "report"]  # a and b completed before the crash
    assert {r.subtask_id: r.status for r in result.agent_results} == dict.fromkeys(
        ("report", "a", "b", "c"), TaskStatus.COMPLETED
    )
    deps = orch.contexts["report"]["dependency_results"]
    assert deps["a"].content == "Response to: Subtask: find a"  # from the stored log
    assert result.final_synthesis


async def test_a_partial_run_stored_by_0_1_0_resumes_its_failed_and_skipped_subtasks(
    store: SQLiteStore,
) -> None:
    orch = GraphOrchestrator(
        OrchestratorConfig(**FAST, max_concurrent_agents=1), ScriptedProvider(), subtasks=PLAN, store=store
    )
    try:
        result = await orch.resume("partial")
    finally:
        await store.close()
    assert result.status is TaskStatus.COMPLETED
    assert orch.started == ["a", "b", "report"]  # c had completed
    assert all(r.status is TaskStatus.COMPLETED for r in result.agent_results)
