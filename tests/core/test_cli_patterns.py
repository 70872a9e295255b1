"""Every pattern from the command line: pattern options with ``-o``, ``--condition``, ``--version``."""

from __future__ import annotations

import json
from pathlib import Path

from .test_cli import orchestrate

BRANCHES = (
    "-o",
    'true_branch=["Analyse it in depth", "Summarise the analysis"]',
    "-o",
    "false_branch=Answer briefly",
)


def _json(done: object) -> dict[str, object]:
    assert getattr(done, "returncode", None) in (0, 1), getattr(done, "stderr", "")
    return dict(json.loads(getattr(done, "stdout", "")))


def test_iterative_takes_its_cap_and_threshold_from_o() -> None:
    done = orchestrate(
        "run", "iterative", "Write a haiku", "--provider", "scripted", "--store", "memory:", "--json", "-q",
        "-o", "max_iterations=2", "-o", "score_threshold=0.99",
    )  # fmt: skip
    result = _json(done)
    assert result["metadata"] == {
        "converged": False,
        "iterations": 2,
        "best_iteration": 2,
        "best_score": 0.95,
    }
    assert "the cap of 2 iteration(s) was reached" in str(result["error"])


def test_a_misspelt_option_is_one_line_naming_the_valid_ones() -> None:
    done = orchestrate(
        "run", "iterative", "t", "--provider", "scripted", "--store", "memory:", "-o", "max_iteration=2"
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    line = done.stderr
    assert line.startswith("error: unknown option 'max_iteration' (did you mean 'max_iterations'?)"), line
    assert "IterativeOrchestrator options: max_iterations," in line and "score_threshold" in line
    assert "config fields: " in line and "num_agents" in line

    bad_value = orchestrate("run", "iterative", "t", "--provider", "scripted", "-o", "max_iterations=0")
    assert bad_value.returncode == 2
    assert bad_value.stderr == "error: max_iterations must be an integer >= 1, got 0\n"


def test_conditional_runs_from_the_cli_with_a_condition_over_the_context(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    args = (
        "run",
        "conditional",
        "Assess the proposal",
        "--provider",
        "scripted",
        "--store",
        store,
        "--json",
        "-q",
    )
    condition = ("--condition", "complexity > 0.7 and not 'trivial' in task")
    deep = _json(orchestrate(*args, *condition, "--context", "complexity=0.9", *BRANCHES))
    quick = _json(orchestrate(*args, *condition, "--context", "complexity=0.2", *BRANCHES))
    assert (deep["status"], deep["metadata"]) == ("completed", {"branch": "true"})
    assert (quick["status"], quick["metadata"]) == ("completed", {"branch": "false"})
    assert len(deep["agent_results"]) == 2 and len(quick["agent_results"]) == 1  # two steps against one

    # the options are recorded with the run: a replay rebuilds the same conditional
    replayed = _json(orchestrate("replay", str(deep["run_id"]), "--store", store, "--json", "-q"))
    assert replayed["metadata"]["branch"] == "true" and replayed["replay"]["provider_calls"] == 0  # type: ignore[index]
    assert replayed["final_synthesis"] == deep["final_synthesis"]


def test_condition_errors_are_one_line() -> None:
    base = ("run", "conditional", "t", "--provider", "scripted", "--store", "memory:", "-q")
    syntax = orchestrate(*base, "--condition", "complexity >", *BRANCHES)
    assert syntax.returncode == 2 and syntax.stderr.count("\n") == 1
    assert syntax.stderr.startswith("error: condition 'complexity >': column 13: expected a context key")

    unsafe = orchestrate(*base, "--condition", "__import__('os').system('true')", *BRANCHES)
    assert unsafe.returncode == 2 and unsafe.stderr.count("\n") == 1  # no calls: it does not parse
    assert "column 17: unexpected '.'" in unsafe.stderr

    missing = orchestrate(*base, "--json", "--condition", "complexty > 0.7", *BRANCHES)
    result = _json(missing)
    assert missing.returncode == 1 and result["status"] == "failed"
    assert "no key 'complexty' in the context (its keys: run_id, task)" in str(result["error"])

    other = orchestrate("run", "cascade", "t", "--provider", "scripted", "--condition", "x > 1")
    assert other.returncode == 2
    assert (
        other.stderr
        == "error: --condition is for the conditional pattern; DreamCascadeOrchestrator takes no condition\n"
    )

    no_branches = orchestrate(*base, "--condition", "x > 1")
    assert no_branches.returncode == 2 and "true_branch is required" in no_branches.stderr
    assert "-o true_branch=" in no_branches.stderr


def test_version() -> None:
    from orchestration import __version__

    done = orchestrate("--version")
    assert done.returncode == 0 and done.stdout == f"orchestrate {__version__}\n"
