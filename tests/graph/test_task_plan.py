"""Seed 001's Task/Plan graph (examples/task_plan_graph.py): the engine enforces the guardrails."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from orchestration import MemoryStore, OrchestratorConfig, ScriptedProvider
from orchestration.llm import CompletionRequest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module("task_plan_graph")
    finally:
        sys.path.remove(str(EXAMPLES))


def handlers(module: ModuleType) -> dict[str, object]:
    parts = ("cli", "core")
    return {
        "spec": module.spec,
        "plan": module.plan,
        **{f"code_{p}": module.code for p in parts},
        **{f"review_{p}": module.review for p in parts},
        **{f"accept_{p}": module.accept for p in parts},
    }


async def test_plans_send_work_back_until_the_review_passes(example: ModuleType) -> None:
    result = await example.graph().run(
        handlers(example),
        payload="a tool",
        store=MemoryStore(),
        provider=ScriptedProvider(example.offline_model),
    )
    assert result.status == "completed"
    assert result.visits["code_cli"] == result.visits["code_core"] == 2  # act, observe, act again
    assert {w["verdict"] for w in result.output("ship").values()} == {"PASS"}


async def test_a_loop_that_never_passes_stops_at_its_cap(example: ModuleType) -> None:
    def never_passes(request: CompletionRequest) -> str:
        return "FAIL: still wrong" if request.prompt_text.startswith("Review") else "code"

    result = await example.graph().run(
        handlers(example), payload="a tool", store=MemoryStore(), provider=ScriptedProvider(never_passes)
    )
    assert result.visits["code_cli"] == 3  # max_visits: the engine ends the cycle, not the task author
    assert {w["verdict"] for w in result.output("ship").values()} == {"FAIL: still wrong"}


async def test_the_budget_stops_the_cycles_before_they_overspend(example: ModuleType) -> None:
    config = OrchestratorConfig(max_total_cost=0.00002, max_tokens=50)
    result = await example.graph().run(
        handlers(example),
        payload="a tool",
        store=MemoryStore(),
        provider=ScriptedProvider(example.offline_model),
        config=config,
    )
    assert result.status == "failed"
    assert result.total_cost <= 0.00002
    assert any("budget" in error for error in result.errors.values())
