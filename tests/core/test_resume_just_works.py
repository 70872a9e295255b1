"""Resume that just works (issue 10 item 5), as users run it: the CLI after a kill -9,
failed runs taken up again, pauses that say how to go on, and the run's whole bill."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
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
from orchestration.stores import SQLiteStore, open_store
from tests.stores.conftest import postgres_dsn  # noqa: F401  (a fixture)

from .cli_fixture import TwoStep
from .test_crash_resume import count, worker

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def orchestrate(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=ROOT,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the run lives, as ``--store`` takes it: a SQLite file or a Postgres schema."""
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    return str(request.getfixturevalue("postgres_dsn"))


def started(calls: Path, process: subprocess.Popen[str], at_least: int = 5) -> None:
    """Wait until the worker has made some calls (it holds the run's lease by then)."""
    deadline = time.monotonic() + 120
    while count(calls) < at_least:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the worker made no calls"
        time.sleep(0.02)


def lease_worker(
    store: str, calls: Path, run_id: str, *, lease: float, latency: float = 0.05
) -> subprocess.Popen[str]:
    os.environ["CRASH_WORKER_LEASE"] = str(lease)
    try:
        return worker(store, calls, run_id, "start", latency=latency)
    finally:
        del os.environ["CRASH_WORKER_LEASE"]


def test_resume_right_after_kill_9_takes_over_the_dead_process_lease(store_url: str, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    # A lease far longer than the test: only taking it over at once can let the resume in.
    process = lease_worker(store_url, calls, "killed", lease=300)
    started(calls, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = orchestrate("resume", "killed", "--store", store_url, "--provider", "scripted", "--json", "-q")
    assert resumed.returncode == 0, resumed.stderr  # no 300 s wait, no --wait needed
    result = json.loads(resumed.stdout)
    assert result["status"] == "completed"
    assert len(result["agent_results"]) == 200


def test_a_live_process_lease_is_refused_naming_it_and_wait_in_each_interface(
    store_url: str, tmp_path: Path
) -> None:
    calls = tmp_path / "calls.txt"
    # Renewed every second; the run lasts far longer than the test (25 layers of 1 s calls).
    process = lease_worker(store_url, calls, "alive", lease=3, latency=1.0)
    try:
        started(calls, process, at_least=1)
        refused = orchestrate("resume", "alive", "--store", store_url, "--provider", "scripted")
        assert refused.returncode != 0
        [line] = refused.stderr.strip().splitlines()
        assert f"driven by process {process.pid} on this machine, which is still running" in line
        assert "--wait" in line and "wait=True" not in line

        async def from_python() -> None:
            from .crash_worker import Wide

            store = open_store(store_url)
            try:
                with pytest.raises(RunLeasedError, match="pass wait=True") as refusal:
                    await Wide(OrchestratorConfig(), demo_provider(), store=store).resume("alive")
            finally:
                await store.close()
            assert "--wait" not in str(refusal.value)
            assert refusal.value.holder is not None and f":{process.pid}:" in refusal.value.holder

        asyncio.run(from_python())
        waited = orchestrate("resume", "alive", "--store", store_url, "--provider", "scripted", "--wait")
        assert waited.returncode != 0
        [line] = waited.stderr.strip().splitlines()
        assert f"still being driven by process {process.pid} on this machine" in line
        assert "so it is alive" in line and "add --wait" not in line  # it did wait
        assert process.poll() is None  # the run was never taken from it
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
    assert summary.startswith(f"{shown['result']['title']} — completed in ")  # the run's title, not ""
    assert "s since resuming: 2 agents (2 completed, 0 not)" in summary  # not just the one this process ran
    assert f"{tokens:,} tokens" in summary


def _cli(command: str) -> list[str]:
    """A command line as the CLI prints it, to run here (``orchestrate`` is this checkout's)."""
    words = shlex.split(command)
    assert words[0] == "orchestrate"
    return words[1:]


def test_a_guardrail_pause_says_how_to_resume_in_each_interface(tmp_path: Path) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text("policies:\n  - name: one call\n    when: calls >= 2\n    action: pause_run\n")
    store = str(tmp_path / "my runs.db")  # a --store the hint must repeat, quoted
    paused = orchestrate(
        *("run", "tests.core.cli_fixture:TwoStep", "t", "--provider", "scripted"),
        *("--policies", str(policies), "--store", store, "-o", "parallel_execution=false"),
    )
    assert paused.returncode == 1
    hint = re.search(r"^continue with: (orchestrate resume .+)$", paused.stdout, re.MULTILINE)
    assert hint is not None, paused.stdout
    command = hint.group(1)
    run_id = _cli(command)[1]
    assert _cli(command) == ["resume", run_id, "--store", store]  # exactly what continues it
    assert f"continue with: {command}" in paused.stderr  # the progress display says the same
    assert "orchestrator.resume" not in paused.stdout + paused.stderr  # Python's hint is not the CLI's
    listed = orchestrate("runs", "--status", "paused", "--store", store, "--json")
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [run_id]

    resumed = orchestrate(*_cli(command))  # the printed command, as a user pastes it
    assert resumed.returncode == 0, resumed.stderr
    assert "status: completed" in resumed.stdout  # resumed without the policy: it goes on
    assert "blocks the event loop" not in resumed.stderr  # the offline tokenizer loads off the loop

    async def from_python() -> None:
        from orchestration.guardrails import Guardrails

        guarded = TwoStep(
            OrchestratorConfig(parallel_execution=False),
            demo_provider(),
            store=SQLiteStore(tmp_path / "api.db"),
            guardrails=Guardrails.load(policies),
        )
        result = await guarded.execute_workflow("t", run_id="held")
        assert result.status is TaskStatus.PAUSED
        assert result.error is not None
        assert result.error.endswith("; continue it with await orchestrator.resume('held')")
        await guarded.store.close()

    asyncio.run(from_python())


def flaky(*args: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return orchestrate(*args, FLAKY_DIR=str(folder))


def ran(folder: Path) -> list[str]:
    """The subtasks run so far, in every process, and forget them."""
    path = folder / "ran"
    names = sorted(path.read_text(encoding="utf-8").split()) if path.exists() else []
    path.unlink(missing_ok=True)
    return names


def test_resume_of_failed_and_partial_runs_reruns_only_what_did_not_complete(tmp_path: Path) -> None:
    folder, store = tmp_path, str(tmp_path / "runs.db")
    (folder / "down").write_text("a b")  # a and b fail, so c (after b) never runs: the run failed
    first = flaky(
        *("run", "tests.core.cli_fixture:Flaky", "t", "--provider", "scripted", "-o", "max_retries=0"),
        *("--store", store, "--json", "-q"),
        folder=folder,
    )
    failed = json.loads(first.stdout)
    run_id = failed["run_id"]
    assert failed["status"] == "failed" and ran(folder) == ["a", "b"]

    (folder / "down").write_text("b")  # a's service is back
    resumed = json.loads(flaky("resume", run_id, "--store", store, "--json", "-q", folder=folder).stdout)
    assert resumed["status"] == "partial" and ran(folder) == ["a", "b"]  # c still waits for b
    assert {r["subtask_id"]: r["status"] for r in resumed["agent_results"]} == {
        "a": "completed",
        "b": "failed",
        "c": "skipped",
    }

    (folder / "down").unlink()  # everything is back
    again = flaky("resume", run_id, "--store", store, "--json", folder=folder)
    done = json.loads(again.stdout)
    assert done["status"] == "completed" and ran(folder) == ["b", "c"]  # a's result was kept
    assert done["final_synthesis"] == "a + b + c"
    summary = next(line for line in again.stderr.splitlines() if " — completed in " in line)
    assert "3 agents (3 completed, 0 not)" in summary
    assert f"{done['usage']['input_tokens'] + done['usage']['output_tokens']:,} tokens" in summary

    finished = json.loads(flaky("resume", run_id, "--store", store, "--json", "-q", folder=folder).stdout)
    assert ran(folder) == [] and finished["usage"] == done["usage"]  # a completed run: its result, no calls
    assert finished["final_synthesis"] == done["final_synthesis"]


def test_a_resumed_run_is_listed_in_progress_while_it_runs(tmp_path: Path) -> None:
    folder, store = tmp_path, str(tmp_path / "runs.db")
    policies = tmp_path / "policies.yaml"
    policies.write_text("policies:\n  - name: one call\n    when: calls >= 2\n    action: pause_run\n")
    first = flaky(
        *("run", "tests.core.cli_fixture:Flaky", "t", "--provider", "scripted", "--policies", str(policies)),
        *("-o", "parallel_execution=false", "--store", store, "--json", "-q"),
        folder=folder,
    )
    paused = json.loads(first.stdout)
    run_id = paused["run_id"]
    unfinished = sorted(r["subtask_id"] for r in paused["agent_results"] if r["status"] != "completed")
    assert paused["status"] == "paused" and len(unfinished) == 2  # one call made, then held

    def listed(status: str) -> list[str]:
        shown = orchestrate("runs", "--status", status, "--store", store, "--json")
        assert shown.returncode == 0, shown.stderr
        return [r["run_id"] for r in json.loads(shown.stdout)]

    assert listed("paused") == [run_id]
    ran(folder)
    (folder / "gate").write_text("a b c")  # the resumed run waits until the test opens the gate
    resuming = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "resume", run_id, "--store", store, "--json", "-q"],
        cwd=ROOT,
        env=_env(FLAKY_DIR=str(folder)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (folder / "waiting").exists():
            assert resuming.poll() is None, resuming.communicate()
            assert time.monotonic() < deadline, "the resumed run never started a subtask"
            time.sleep(0.02)
        assert listed("in_progress") == [run_id]
        assert listed("paused") == []
        (folder / "open").touch()
        out, err = resuming.communicate(timeout=120)
    finally:
        if resuming.poll() is None:
            resuming.kill()
            resuming.wait()
    assert resuming.returncode == 0, err
    assert json.loads(out)["status"] == "completed" and ran(folder) == unfinished
    assert listed("completed") == [run_id]
    assert listed("in_progress") == []


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


async def test_resume_does_not_undo_a_guardrails_abort(tmp_path: Path) -> None:
    from orchestration.guardrails import Guardrails

    policy = "policies:\n  - name: two calls\n    when: calls >= 2\n    action: abort_run\n"
    store = SQLiteStore(tmp_path / "a.db")
    config = OrchestratorConfig(parallel_execution=False)
    aborted = await TwoStep(
        config, demo_provider(), store=store, guardrails=Guardrails.load(policy)
    ).execute_workflow("t", run_id="stopped")
    assert aborted.status is TaskStatus.FAILED and (aborted.error or "").startswith("aborted:")
    provider = demo_provider()
    again = await TwoStep(config, provider, store=SQLiteStore(tmp_path / "a.db")).resume("stopped")
    assert again.status is TaskStatus.FAILED and provider.call_count == 0  # the verdict stands
