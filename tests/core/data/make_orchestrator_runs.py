"""Write orchestrator runs into a SQLite file and print its SQL dump: the fixture of the
"orchestrator runs stored by an earlier version still load" tests
(tests/core/test_stored_runs.py).

``orchestrator_runs_0_1_0.sql`` was made by running this with version 0.1.0 (commit
6a1a5c3, the engine before BaseOrchestrator moved onto the graph runtime):

    python -m tests.core.data.make_orchestrator_runs > tests/core/data/orchestrator_runs_0_1_0.sql

``orchestrator_results_0_1_0.json`` holds what that version folded each run into
(``RunState.from_events(...).to_result().to_dict()``).

It holds six runs: ``completed`` (a plan with dependencies), ``crashed`` (the first
``CRASH_AT`` events of the same run under another id: what a crash there leaves),
``partial`` (a failure, a skipped dependent), ``budget`` (stopped by its budget),
``iterative`` (three refinement rounds) and ``conditional`` (a branch chosen).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

from orchestration import OrchestratorConfig, ScriptedProvider, SubTask
from orchestration.stores import SQLiteStore
from patterns import ConditionalOrchestrator, IterativeOrchestrator
from tests.core.helpers import GraphOrchestrator

#: The ``crashed`` run is ``completed`` cut after this many events (two subtasks done).
CRASH_AT = 9

PLAN = [
    SubTask(id="report", description="write the report", dependencies=["a", "b"]),
    SubTask(id="a", description="find a"),
    SubTask(id="b", description="find b", dependencies=["a"]),
    SubTask(id="c", description="find c", priority=2),
]

FAST = {"retry_base_delay": 0.0, "retry_max_delay": 0.0, "max_retries": 0}


def explode(*_: Any) -> None:
    raise ValueError("no such source")


async def write(store: SQLiteStore) -> None:
    config = OrchestratorConfig(**FAST, max_concurrent_agents=1)
    done = await GraphOrchestrator(config, ScriptedProvider(), subtasks=PLAN, store=store).execute_workflow(
        "tides report", run_id="completed"
    )
    assert done.status == "completed", done
    events = await store.events("completed")
    await store.append("crashed", [e._replace(run_id="crashed") for e in events[:CRASH_AT]])

    partial = await GraphOrchestrator(
        config, ScriptedProvider(), subtasks=PLAN, behaviour={"a": explode}, store=store
    ).execute_workflow("tides report", run_id="partial")
    assert partial.status == "partial", partial

    broke = await GraphOrchestrator(
        OrchestratorConfig(**FAST, max_concurrent_agents=1, max_total_cost=0.0001),
        ScriptedProvider(),
        subtasks=PLAN,
        store=store,
    ).execute_workflow("tides report " * 200, run_id="budget")
    assert broke.status == "budget_exceeded", broke

    scores = iter([0.2, 0.5, 0.95])
    iterative = await IterativeOrchestrator(
        OrchestratorConfig(**FAST),
        ScriptedProvider(),
        max_iterations=4,
        scorer=lambda output, task: next(scores),
        store=store,
    ).execute_workflow("a haiku about tides", run_id="iterative")
    assert iterative.status == "completed", iterative

    conditional = await ConditionalOrchestrator(
        OrchestratorConfig(**FAST),
        ScriptedProvider(),
        condition="'tides' in task",
        true_branch=["gather", "write"],
        false_branch=lambda task, context: "not about tides",
        store=store,
    ).execute_workflow("tides report", run_id="conditional")
    assert conditional.status == "completed", conditional


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "runs.db"
        store = SQLiteStore(path)

        async def go() -> None:
            try:
                await write(store)
            finally:
                await store.close()

        asyncio.run(go())
        with sqlite3.connect(path) as conn:
            sys.stdout.write("\n".join(conn.iterdump()) + "\n")


if __name__ == "__main__":
    main()
