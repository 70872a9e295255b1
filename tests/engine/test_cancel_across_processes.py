"""``request_cancel`` reaches a run driven by another process, whatever drives it: an
orchestrator, a graph or a workflow, on SQLite and on Postgres."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestration.stores import open_store
from tests.stores.conftest import postgres_dsn  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    return str(request.getfixturevalue("postgres_dsn"))


def request_cancel(where: str, run_id: str) -> bool:
    """Flag the run once the store has it (its first events may still be on their way)."""

    async def cancel() -> bool:
        store = open_store(where)
        try:
            async with asyncio.timeout(60):
                while True:
                    if await store.request_cancel(run_id):
                        return True
                    await asyncio.sleep(0.05)  # the other process writes the run's first events
        finally:
            await store.close()

    return asyncio.run(cancel())


@pytest.mark.parametrize("kind", ["graph", "workflow"])
def test_cancel_from_another_process_stops_a_graph_or_workflow_run(where: str, kind: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.cancel_worker", where, kind, "run-1"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the run waits in its second step (an hour unless stopped)
    assert line.strip() == "started", process.stderr.read() if process.stderr else ""
    assert request_cancel(where, "run-1")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    outcome = json.loads(out.strip().splitlines()[-1])
    assert outcome["status"] == "cancelled"
    assert outcome["first"] == ("completed" if kind == "graph" else "tides")  # finished work is kept


def test_cancel_from_another_process_stops_an_orchestrator_run_on_either_store(
    where: str, tmp_path: Path
) -> None:
    calls = tmp_path / "cancel.calls"
    env = dict(os.environ, PYTHONPATH=str(ROOT), CRASH_WORKER_LATENCY="0.1")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.core.crash_worker", where, str(calls), "run", "start"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not calls.exists() or len(calls.read_text().split()) < 10:  # let it get going
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.05)
    assert request_cancel(where, "run")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "cancelled"
    assert any(r["status"] == "completed" for r in result["agent_results"])
