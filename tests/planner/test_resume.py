"""A planner run killed with SIGKILL at points across its turns and resumed each time on a
SQLite file: completed nodes never run again, recorded model calls are never paid again,
and the result is the one an uninterrupted run gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from orchestration import EventType
from orchestration.stores import open_store

ROOT = Path(__file__).resolve().parents[2]

#: Where the processes die, in the order the run reaches them: after the planner's calls
#: are billed (its turn's changes not yet stored), in the middle of the workers, after a
#: reworked node's second visit, and once the synthesis was paid for.
KILLS = [
    "cost:planner:1",
    "done:research:1",
    "cost:draft.intro:1",
    "cost:planner:2",
    "done:draft.body:2",
    "cost:planner:3",
    "cost:synthesizer:1",
]


def worker(db: Path, folder: Path, kills: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.planner.crash_worker",
            str(db),
            "run",
            str(folder),
            ",".join(kills) or "none",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def stored(db: Path) -> tuple[set[tuple[str, int]], set[str], set[str]]:
    """The node visits the store holds as completed, the fingerprints of the paid calls,
    and the kill points the stored run has passed."""
    store = open_store(str(db))
    try:
        events = await store.events("run")
    finally:
        await store.close()
    done = {
        (e.data["node"], e.data["visit"]) for e in events if e.event_type is EventType.GRAPH_NODE_COMPLETED
    }
    costs = [e for e in events if e.event_type is EventType.COST_UPDATE]
    paid = {str(e.data["request_hash"]) for e in costs}
    passed = {f"done:{node}:{visit}" for node, visit in done}
    for agent in {e.agent_id for e in costs}:
        passed |= {f"cost:{agent}:{n}" for n in range(1, sum(e.agent_id == agent for e in costs) + 1)}
    return done, paid, passed


async def test_killed_at_each_point_and_resumed_it_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean = worker(tmp_path / "clean.db", clean_dir, [])
    assert clean.returncode == 0, clean.stderr[-3000:]
    expected = json.loads(clean.stdout)
    assert expected["status"] == "completed" and expected["visits"]["draft.body"] == 2
    clean_calls = len(lines(clean_dir / "calls.log"))

    db, folder = tmp_path / "crash.db", tmp_path / "crash"
    folder.mkdir()
    pending, kills = list(KILLS), 0
    for _ in range(len(KILLS) + 1):
        done_before, paid_before, passed = await stored(db) if db.exists() else (set(), set(), set())
        # A point the run passed while a process was dying (its events stored, the kill not
        # yet seen) is behind the run now.
        pending = [point for point in pending if point not in passed]
        starts_before, calls_before = len(lines(folder / "starts.log")), len(lines(folder / "calls.log"))
        finished = worker(db, folder, pending)
        started = {
            (n, int(v)) for n, v in (line.split() for line in lines(folder / "starts.log")[starts_before:])
        }
        assert not started & done_before, f"completed visits ran again: {started & done_before}"
        repaid = set(lines(folder / "calls.log")[calls_before:]) & paid_before
        assert not repaid, "a model call the store had recorded was paid for again"
        if finished.returncode == 0:
            break
        assert finished.returncode == -9, finished.stderr[-3000:]
        [point] = lines(folder / "killed.log")[kills:]
        assert point == pending[0], f"died at {point}, expected {pending[0]}"  # the first one reached
        pending.remove(point)
        kills += 1
    assert finished.returncode == 0 and pending == [], f"kill points never reached: {pending}"
    assert kills >= 3
    assert json.loads(finished.stdout) == expected
    # At most one call was in flight at each kill (one node runs at a time): lost, asked again.
    assert clean_calls <= len(lines(folder / "calls.log")) <= clean_calls + kills
