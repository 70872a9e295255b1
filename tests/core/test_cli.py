"""The ``orchestrate`` command, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def orchestrate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    environment.update(env or {})
    environment["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_json_prints_the_result_and_the_run_id_first() -> None:
    done = orchestrate(
        "run", "tests.core.cli_fixture:TwoStep", "a task", "--provider", "scripted", "--json", "-q"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "completed"
    assert len(result["agent_results"]) == 2 and result["total_cost"] > 0
    assert done.stderr.splitlines()[0] == f"run {result['task_id']} started"


def test_options_model_and_budget_reach_the_config() -> None:
    done = orchestrate(
        "run",
        "tests.core.cli_fixture:TwoStep",
        "a task",
        "--provider",
        "scripted",
        "--model",
        "gpt-4o",
        "--budget",
        "0.5",
        "-o",
        "max_concurrent_agents=1",
        "--json",
        "-q",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result["cost_by_model"]) == {"gpt-4o"}


def test_human_output_shows_synthesis_agents_and_totals() -> None:
    done = orchestrate("run", "tests.core.cli_fixture:TwoStep", "a task", "--provider", "scripted", "-q")
    assert done.returncode == 0, done.stderr
    assert "agent_one" in done.stdout and "status: completed" in done.stdout and "total: $" in done.stdout


def test_a_failed_run_exits_non_zero() -> None:
    done = orchestrate(
        "run", "tests.core.cli_fixture:Broken", "a task", "--provider", "scripted", "--json", "-q"
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "failed"


def test_no_provider_and_no_key_is_one_clear_line() -> None:
    done = orchestrate("run", "tests.core.cli_fixture:TwoStep", "a task")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "OPENAI_API_KEY" in done.stderr and "--provider scripted" in done.stderr


def test_bad_input_is_one_line_never_a_traceback() -> None:
    for args in (
        ("run", "no-such-pattern", "t", "--provider", "scripted"),
        ("run", "tests.core.cli_fixture:Nope", "t", "--provider", "scripted"),
        ("run", "tests.core.cli_fixture:TwoStep", "t", "--provider", "nope"),
        ("run", "tests.core.cli_fixture:TwoStep", "t", "--provider", "scripted", "-o", "num_agents=0"),
        ("run", "tests.core.cli_fixture:TwoStep", "t", "--provider", "scripted", "-o", "colour=red"),
        ("run", "tests.core.cli_fixture:TwoStep", "  ", "--provider", "scripted"),
        ("run", "tests.core.cli_fixture:TwoStep", "t", "--provider", "scripted", "--report", "docx"),
        (
            "run",
            "tests.core.cli_fixture:TwoStep",
            "t",
            "--provider",
            "scripted",
            "-o",
            "temperature=Infinity",
        ),
    ):
        done = orchestrate(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr


def test_stored_runs_can_be_listed_shown_resumed_replayed_and_cancelled(tmp_path: Path) -> None:
    import asyncio

    from orchestration import EventType, OrchestratorConfig
    from orchestration.scripted import demo_provider
    from orchestration.stores import SQLiteStore

    from .cli_fixture import TwoStep

    full_db, crashed_db = tmp_path / "full.db", tmp_path / "crashed.db"

    async def prepare() -> tuple[str, int]:
        full = SQLiteStore(full_db)
        result = await TwoStep(OrchestratorConfig(), demo_provider(), store=full).execute_workflow(
            "a task", run_id="cli-run"
        )
        events = await full.events("cli-run")
        cut = next(i for i, e in enumerate(events) if e.event_type is EventType.AGENT_COMPLETE) + 1
        crashed = SQLiteStore(crashed_db)
        await crashed.append("cli-run", events[:cut])
        await full.close()
        await crashed.close()
        return result.final_synthesis or "", result.usage.calls

    synthesis, calls = asyncio.run(prepare())

    listed = orchestrate("runs", "--json", "--store", str(full_db))
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["run_id"] for r in runs] == ["cli-run"]
    assert {"run_id", "status", "total_cost", "created_at"} <= set(runs[0]) and runs[0][
        "status"
    ] == "completed"

    shown = orchestrate("show", "cli-run", "--store", str(full_db))
    assert shown.returncode == 0 and "workflow_complete" in shown.stdout and "agent_one" in shown.stdout

    resumed = orchestrate("resume", "cli-run", "--json", "-q", "--store", str(crashed_db))
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["status"] == "completed" and result["final_synthesis"] == synthesis
    assert "run cli-run resumed" in resumed.stderr

    replayed = orchestrate("replay", "cli-run", "--json", "-q", "--store", str(full_db))
    assert replayed.returncode == 0, replayed.stderr
    replay = json.loads(replayed.stdout)
    assert replay["final_synthesis"] == synthesis and replay["metadata"]["served_from_recording"] == calls

    finished = orchestrate("cancel", "cli-run", "--store", str(full_db))
    assert finished.returncode == 1 and "already ended (completed)" in finished.stderr
    missing = orchestrate("show", "nope", "--store", str(full_db))
    assert missing.returncode == 2 and missing.stderr == "error: no run 'nope' in the store\n"


def test_prune_keeps_the_newest_runs(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    for _ in range(3):
        done = orchestrate(
            "run", "tests.core.cli_fixture:TwoStep", "t", "--provider", "scripted", "-q", "--store", db
        )
        assert done.returncode == 0, done.stderr
    pruned = orchestrate("prune", "--keep", "1", "--vacuum", "--store", db)
    assert pruned.returncode == 0 and "deleted 2 run(s)" in pruned.stderr
    assert len(json.loads(orchestrate("runs", "--json", "--store", db).stdout)) == 1
    assert orchestrate("prune", "--store", db).returncode == 2
