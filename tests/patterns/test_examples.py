"""Every example script runs offline, exits 0 and prints its result and cost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {
    "cascade.py",
    "swarm.py",
    "sequential.py",
    "conditional.py",
    "iterative.py",
    "fanout.py",
    "custom_orchestrator.py",
}
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


def test_one_example_per_pattern_and_a_custom_orchestrator() -> None:
    assert set(EXAMPLES) >= REQUIRED


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_offline(name: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        env.pop(key, None)
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "status: completed" in completed.stdout
    assert "Cost: $" in completed.stdout


def test_conditional_example_quick_branch() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "conditional.py"), "--complexity", "0.2"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "branch: false" in completed.stdout


def _example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ORCHESTRATION_DEBUG"):
        env.pop(key, None)
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("cascade.py", ("--provider", "openai"), "error: openai: OPENAI_API_KEY is not set"),
        ("swarm.py", ("--provider", "nope"), "error: unknown provider 'nope'; available: "),
        ("fanout.py", ("--agents", "0"), "error: num_agents must be >= 1, got 0"),
        (
            "custom_orchestrator.py",
            ("--provider", "anthropic"),
            "error: anthropic: ANTHROPIC_API_KEY is not set",
        ),
    ],
)
def test_a_mistake_in_an_example_is_one_line_like_the_cli(
    name: str, args: tuple[str, ...], message: str
) -> None:
    completed = _example(name, *args)
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.startswith(message) and completed.stderr.count("\n") == 1, completed.stderr
    assert "Traceback" not in completed.stderr
