"""Resume that just works (issue 10 item 5), as users run it: the CLI after a kill -9,
failed runs taken up again, pauses that say how to go on, and the run's whole bill."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from orchestration import AgentResult, BaseOrchestrator, OrchestratorConfig, SubTask, TaskStatus
from orchestration.errors import RunLeasedError
from orchestration.scripted import demo_provider
from orchestration.stores import SQLiteStore

from .cli_fixture import TwoStep
from .test_crash_resume import count, worker

ROOT = Path(__file__).resolve().parents[2]


def orchestrate(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def started(calls: Path, process: subprocess.Popen[str], at_least: int = 5) -> None:
    """Wait until the worker has made some calls (it holds the run's lease by then)."""
    deadline = time.monotonic() + 120
    while count(calls) < at_least:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the worker made no calls"
        time.sleep(0.02)


def long_lease_worker(db: Path, calls: Path, run_id: str, latency: float = 0.05) -> subprocess.Popen[str]:
    os.environ["CRASH_WORKER_LEASE"] = "300"  # far longer than the test: only a takeover can help
    try:
        return worker(db, calls, run_id, "start", latency=latency)
    finally:
        del os.environ["CRASH_WORKER_LEASE"]


def test_resume_right_after_kill_9_takes_over_the_dead_process_lease(tmp_path: Path) -> None:
    db, calls = tmp_path / "runs.db", tmp_path / "calls.txt"
    process = long_lease_worker(db, calls, "killed")
    started(calls, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = orchestrate("resume", "killed", "--store", str(db), "--provider", "scripted", "--json", "-q")
    assert resumed.returncode == 0, resumed.stderr  # no 300 s wait, no --wait needed
    result = json.loads(resumed.stdout)
    assert result["status"] == "completed"
    assert len(result["agent_results"]) == 200


def test_a_live_process_lease_is_refused_naming_wait_in_each_interface(tmp_path: Path) -> None:
    db, calls = tmp_path / "runs.db", tmp_path / "calls.txt"
    process = long_lease_worker(db, calls, "alive", latency=0.2)
    try:
        started(calls, process, at_least=1)
        refused = orchestrate("resume", "alive", "--store", str(db), "--provider", "scripted")
        assert refused.returncode != 0
        [line] = refused.stderr.strip().splitlines()
        assert "another live process" in line and "--wait" in line and "wait=True" not in line

        async def from_python() -> None:
            from .crash_worker import Wide

            with pytest.raises(RunLeasedError, match="wait=True"):
                await Wide(OrchestratorConfig(), demo_provider(), store=SQLiteStore(db)).resume("alive")

        asyncio.run(from_python())
    finally:
        process.kill()
        process.wait()


class FlakyOnce(BaseOrchestrator):
    """a, b -> c; b fails while ``flaky`` is set.  Counts each subtask's runs."""

    def __init__(self, *args: Any, flaky: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flaky = flaky
        self.ran: list[str] = []

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [
            SubTask(id="a", description="first"),
            SubTask(id="b", description="second"),
            SubTask(id="c", description="third", dependencies=["b"]),
        ]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        self.ran.append(subtask.id)
        if subtask.id == "b" and self.flaky:
            raise ConnectionError("the search service was down")
        return f"{subtask.id} done"

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return " + ".join(r.content for r in agent_results)


async def test_resume_of_a_partial_run_reruns_only_what_did_not_complete(tmp_path: Path) -> None:
    config = OrchestratorConfig(max_retries=0)
    first = FlakyOnce(config, demo_provider(), store=SQLiteStore(tmp_path / "r.db"), flaky=True)
    partial = await first.execute_workflow("t", run_id="flaky")
    assert partial.status is TaskStatus.PARTIAL
    assert sorted(first.ran) == ["a", "b"]  # c never ran: its dependency failed

    again = FlakyOnce(config, demo_provider(), store=SQLiteStore(tmp_path / "r.db"), flaky=False)
    done = await again.resume("flaky")
    assert done.status is TaskStatus.COMPLETED
    assert again.ran == ["b", "c"]  # a's result was kept
    assert done.final_synthesis == "a done + b done + c done"
    assert {r.subtask_id for r in done.agent_results if r.succeeded} == {"a", "b", "c"}
    listed = await SQLiteStore(tmp_path / "r.db").get_run("flaky")
    assert listed is not None and listed.status is TaskStatus.COMPLETED


def test_the_summary_after_a_resume_counts_the_whole_run(tmp_path: Path) -> None:
    from orchestration import EventType

    async def crashed_copy() -> None:
        full = SQLiteStore(tmp_path / "full.db")
        await TwoStep(OrchestratorConfig(), demo_provider(), store=full).execute_workflow(
            "a task", run_id="half"
        )
        events = await full.events("half")
        cut = next(i for i, e in enumerate(events) if e.event_type is EventType.AGENT_COMPLETE) + 1
        crashed = SQLiteStore(tmp_path / "crashed.db")
        await crashed.append("half", events[:cut])
        await full.close()
        await crashed.close()

    asyncio.run(crashed_copy())
    resumed = orchestrate("resume", "half", "--store", str(tmp_path / "crashed.db"), "--provider", "scripted")
    assert resumed.returncode == 0, resumed.stderr
    shown = json.loads(orchestrate("show", "half", "--store", str(tmp_path / "crashed.db"), "--json").stdout)
    usage = shown["result"]["usage"]
    tokens = usage["input_tokens"] + usage["output_tokens"]
    summary = next(line for line in resumed.stderr.splitlines() if " — completed in " in line)
    assert "2 agents (2 completed, 0 not)" in summary  # not just the one this process ran
    assert f"{tokens:,} tokens" in summary


def test_a_guardrail_pause_says_how_to_resume(tmp_path: Path) -> None:
    import re

    policies = tmp_path / "policies.yaml"
    policies.write_text("policies:\n  - name: one call\n    when: calls >= 2\n    action: pause_run\n")
    store = str(tmp_path / "runs.db")
    paused = orchestrate(
        *(
            "run",
            "tests.core.cli_fixture:TwoStep",
            "t",
            "--provider",
            "scripted",
            "--policies",
            str(policies),
        ),
        *("--store", store, "-o", "parallel_execution=false"),
    )
    assert paused.returncode == 1
    hint = re.search(r"continue with: orchestrate resume (\S+)", paused.stdout + paused.stderr)
    assert hint is not None, paused.stdout + paused.stderr
    listed = orchestrate("runs", "--status", "paused", "--store", store, "--json")
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [hint.group(1)]
    resumed = orchestrate("resume", hint.group(1), "--store", store, "--provider", "scripted", "--json", "-q")
    assert json.loads(resumed.stdout)["status"] == "completed"  # resumed without the policy: it goes on


def test_a_stopped_worker_taken_over_can_never_write_again(tmp_path: Path) -> None:
    """SIGSTOP a driver past its lease, let another process take over, SIGCONT the first:
    its next write is refused (fenced by the lease), nothing is doubled."""
    from collections import Counter

    from orchestration import EventType

    db, calls = tmp_path / "runs.db", tmp_path / "calls.txt"
    first = worker(db, calls, "fenced", "start", latency=0.05)  # lease_seconds=1.0
    try:
        started(calls, first)
        first.send_signal(signal.SIGSTOP)  # alive but frozen: its lease runs out, it is not dead
        resumed = orchestrate(
            "resume", "fenced", "--store", str(db), "--provider", "scripted", "--wait", "--json", "-q"
        )
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["status"] == "completed"
        first.send_signal(signal.SIGCONT)
        out, _ = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    if out.strip():  # the old driver noticed and stopped
        stopped = json.loads(out)
        assert stopped["status"] == "failed" and "lease" in stopped["error"]

    async def stored() -> list[Any]:
        store = SQLiteStore(db)
        try:
            return await store.events("fenced")
        finally:
            await store.close()

    events = asyncio.run(stored())
    assert events[-1].event_type is EventType.WORKFLOW_COMPLETE  # the new driver's end is the last word
    completions = Counter(
        e.data["result"]["subtask_id"] for e in events if e.event_type is EventType.AGENT_COMPLETE
    )
    assert len(completions) == 200 and set(completions.values()) == {1}  # every subtask completed once
