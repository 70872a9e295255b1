"""The bill the CLI prints: every agent that spent, totals that add up, replays that spent nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

from orchestration.progress import format_usd_cell

from .test_cli import orchestrate

WIDE = {"COLUMNS": "200"}  # no wrapping, so each table row is one line


def _rows(stdout: str) -> dict[str, tuple[str, int, str]]:
    """``agent -> (status, tokens, cost)`` from the agents table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().split("│")[1:-1]]
        if len(cells) == 5 and cells[2].isdigit():
            rows[cells[0]] = (cells[1], int(cells[2]), cells[3])
    return rows


def _usd(text: str) -> float:
    return float(text.lstrip("$").replace(",", ""))


def test_the_demo_table_lists_every_agent_that_spent_and_adds_up(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    done = orchestrate("demo", "-q", "--store", store, env=WIDE)
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    totals = rows.pop("total")
    assert {"planner", "drummer_1", "drummer_2", "camina_1"} <= set(rows), rows
    assert {a for a in rows if a.startswith("agent_belter_")} == {f"agent_belter_{i}" for i in (1, 2, 3)}
    line = re.search(r"total: (\$[\d.]+) \((\d+) tokens, (\d+) calls\)", done.stdout)
    assert line is not None, done.stdout
    assert sum(tokens for _, tokens, _ in rows.values()) == totals[1] == int(line.group(2))
    assert abs(sum(_usd(cost) for _, _, cost in rows.values()) - _usd(line.group(1))) < 2e-6
    assert len(rows) == int(line.group(3))  # one call each in the demo

    shown = orchestrate(
        "show",
        json.loads(orchestrate("runs", "--json", "--store", store).stdout)[0]["run_id"],
        "--store",
        store,
        env=WIDE,
    )
    assert shown.returncode == 0, shown.stderr
    assert _rows(shown.stdout) == {**rows, "total": totals}  # a stored run's bill is the same


def test_no_non_zero_cost_prints_as_zero() -> None:
    done = orchestrate(
        "run",
        "tests.core.cli_fixture:TwoStep",
        "t",
        "--provider",
        "scripted",
        "--model",
        "gpt-5-nano",
        "--store",
        "memory:",
        env=WIDE,
    )
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert rows and all(_usd(cost) > 0 for _, _, cost in rows.values()), done.stdout
    summary = done.stderr.splitlines()[-1]
    assert re.search(r"\$0\.0000\d", summary) and "$0.0000," not in summary + ",", summary


def test_format_usd_keeps_two_significant_digits_below_a_cent() -> None:
    assert format_usd_cell(0) == "$0"
    assert format_usd_cell(0.0123) == "$0.0123"
    assert format_usd_cell(1.5) == "$1.5000"
    assert format_usd_cell(0.01) == "$0.0100"
    assert format_usd_cell(3.1e-6) == "$0.0000031"
    assert format_usd_cell(0.0002487) == "$0.00025"
    assert format_usd_cell(9.96e-6) == "$0.000010"
    assert format_usd_cell(4e-10) == "$0.00000000040"


def test_json_carries_the_run_id() -> None:
    done = orchestrate("demo", "--json", "-q", "--store", "memory:")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["run_id"] == result["task_id"] and done.stderr.startswith(f"run {result['run_id']} ")


def test_a_replay_spends_nothing_and_runs_never_count_it_twice(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    original = json.loads(orchestrate("demo", "--json", "-q", "--store", store).stdout)
    cost = original["total_cost"]

    replayed = orchestrate("replay", original["run_id"], "--store", store, env=WIDE)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stderr.rstrip().endswith(
        f"863 tokens, $0 spent, {format_usd_cell(cost)} recorded"
    )  # the display
    assert "0 provider calls, $0 spent" in replayed.stdout
    assert (
        f"recorded: {format_usd_cell(cost)} (863 tokens, 7 calls replayed from run {original['run_id']})"
        in (replayed.stdout)
    )
    as_json = json.loads(orchestrate("replay", original["run_id"], "--json", "-q", "--store", store).stdout)
    assert as_json["replay"] == {
        "replay_of": original["run_id"],
        "provider_calls": 0,
        "spent_usd": 0.0,
        "recorded_calls": 7,
        "recorded_cost_usd": as_json["replay"]["recorded_cost_usd"],
    }
    assert abs(as_json["replay"]["recorded_cost_usd"] - cost) < 1e-12

    listed = orchestrate("runs", "--store", store, env=WIDE)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("replay of") == 2
    assert f"spent: {format_usd_cell(cost)} over 3 run(s)" in listed.stdout
    runs = json.loads(orchestrate("runs", "--json", "--store", store).stdout)
    assert sorted(r["spent_usd"] for r in runs) == [0.0, 0.0, cost]
    assert sorted(str(r["replay_of"]) for r in runs) == sorted([original["run_id"]] * 2 + ["None"])

    shown = orchestrate("show", as_json["run_id"], "--store", store, env=WIDE)
    assert "0 provider calls, $0 spent" in shown.stdout, shown.stdout
