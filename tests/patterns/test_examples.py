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
