"""Kill a run with SIGKILL at 20 random points, resume each time, and check nothing is
lost, nothing is done twice, and almost nothing is paid twice."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .crash_worker import CONCURRENCY, SUBTASKS

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20


def worker(
    db: Path | str, calls: Path, run_id: str, mode: str, latency: float = 0.004
) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), CRASH_WORKER_LATENCY=str(latency))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.core.crash_worker", str(db), str(calls), run_id, mode],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out)  # type: ignore[no-any-return]


def essence(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": result["status"],
        "agents": sorted((r["subtask_id"], r["status"], r["content"]) for r in result["agent_results"]),
        "synthesis": result["final_synthesis"],
    }


def count(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_sigkill_at_20_random_points_then_resume(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    latency = 0.02  # about a second of work: most kills land mid-run, whatever the machine's speed
    clean = finish(worker(tmp_path / "clean.db", tmp_path / "clean.calls", "run", "start", latency))
    assert clean["status"] == "completed"
    expected_calls = count(tmp_path / "clean.calls")
    assert expected_calls == SUBTASKS + 1

    db, calls = tmp_path / "crash.db", tmp_path / "crash.calls"
    kills = 0
    mode = "start"
    while kills < KILLS:
        process = worker(db, calls, "run", mode, latency)
        time.sleep(rng.uniform(0.3, 1.2))  # the interpreter takes ~0.3s to start
        if process.poll() is not None:  # finished before the kill: run it again only if needed
            result = finish(process)
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        mode = "resume"
    else:
        result = finish(worker(db, calls, "run", "resume", latency))

    assert kills >= 10, "the run finished too fast to be interrupted often; slow the worker down"
    assert essence(result) == essence(clean)
    ids = [r["subtask_id"] for r in result["agent_results"]]
    assert len(ids) == len(set(ids)) == SUBTASKS
    assert all(r["status"] == "completed" for r in result["agent_results"])
    # each kill can lose at most the calls that were in flight (not yet recorded)
    assert expected_calls <= count(calls) <= expected_calls + kills * CONCURRENCY


def test_cancel_from_another_process_stops_the_run_and_keeps_results(tmp_path: Path) -> None:
    import asyncio

    from orchestration.stores import SQLiteStore

    db, calls = tmp_path / "cancel.db", tmp_path / "cancel.calls"
    process = worker(db, calls, "run", "start", latency=0.1)  # about 3 s if left alone
    deadline = time.monotonic() + 60
    while count(calls) < 20:  # let it get going
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)

    async def request() -> bool:
        store = SQLiteStore(db)
        try:
            return await store.request_cancel("run")
        finally:
            await store.close()

    assert asyncio.run(request())
    result = finish(process)
    assert result["status"] == "cancelled"
    done = [r for r in result["agent_results"] if r["status"] == "completed"]
    assert 20 <= len(done) < SUBTASKS
