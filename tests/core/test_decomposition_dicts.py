"""A decomposition may return dicts: they are SubTask fields, checked, and a bad one is named."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestration import (
    AgentResult,
    BaseOrchestrator,
    MemoryStore,
    OrchestratorResult,
    SubTask,
    TaskStatus,
)
from orchestration.scripted import demo_provider
from patterns import ConditionalOrchestrator


class Planned(BaseOrchestrator):
    """Runs whatever plan it is given; each agent answers with its subtask id."""

    def __init__(self, plan: list[Any]) -> None:
        super().__init__(None, demo_provider(), store=MemoryStore())
        self.plan = plan
        self.order: list[str] = []

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return self.plan

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        self.order.append(subtask.id)
        return f"{subtask.id} done"

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return ", ".join(r.content for r in agent_results)


def run(plan: list[Any]) -> tuple[OrchestratorResult, list[str]]:
    orchestrator = Planned(plan)
    return asyncio.run(orchestrator.execute_workflow("a task")), orchestrator.order


def test_dicts_are_accepted_as_subtask_fields() -> None:
    result, order = run(
        [
            {"id": "write", "description": "Write it", "dependencies": ["research"], "priority": 2},
            {
                "id": "research",
                "description": "Research it",
                "metadata": {"source": "web"},
                "timeout_seconds": 30,
            },
            {"description": "Check the spelling"},
        ]
    )
    assert result.status is TaskStatus.COMPLETED, result.error
    by_id = {s.id: s for s in result.subtasks}
    assert set(by_id) == {"write", "research", "subtask_3"}
    assert by_id["write"].dependencies == ("research",) and by_id["write"].priority == 2
    assert by_id["research"].metadata == {"source": "web"} and by_id["research"].timeout_seconds == 30
    assert order.index("research") < order.index("write")  # the dependency was honoured


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"description": "Write it", "depends_on": ["research"]},
            "invalid plan: decompose_task item 1 has unknown SubTask field 'depends_on' "
            "(did you mean 'dependencies'?); fields: id, description, agent_type, priority, dependencies, "
            "metadata, model, timeout_seconds",
        ),
        (
            {"description": "Write it", "priority": "high"},
            "decompose_task item 1: 'priority' must be an integer, got 'high'",
        ),
        (
            {"description": "Write it", "dependencies": "research"},
            "'dependencies' must be a list of subtask ids",
        ),
        ({"description": "", "id": "w"}, "'description' must be a non-empty string, got ''"),
        ({"id": "w", "task": "Write it"}, "unknown SubTask field 'task'"),
        ({"id": "w"}, "decompose_task item 1 has no 'description' (say what the subtask should do)"),
        (
            {"description": "Write it", "timeout_seconds": 0},
            "'timeout_seconds' must be a positive number or null",
        ),
    ],
)
def test_a_bad_field_fails_the_run_naming_it(item: dict[str, Any], message: str) -> None:
    result, order = run([{"id": "research", "description": "Research it"}, item])
    assert result.status is TaskStatus.FAILED and order == []  # nothing ran on half a plan
    assert message in str(result.error), result.error


def test_a_conditional_branch_that_plans_with_dicts_is_checked_too() -> None:
    def always(context: dict[str, Any]) -> bool:
        return True

    for plan, status in (
        ([{"id": "a", "description": "Do A"}], TaskStatus.COMPLETED),
        ([{"id": "a", "descripton": "Do A"}], TaskStatus.FAILED),
    ):
        orchestrator = ConditionalOrchestrator(
            None,
            demo_provider(),
            condition=always,
            true_branch=Planned(plan),
            false_branch="Answer briefly",
            store=MemoryStore(),
        )
        result = asyncio.run(orchestrator.execute_workflow("a task"))
        assert result.status is status, result.error
        if status is TaskStatus.FAILED:
            assert "unknown SubTask field 'descripton' (did you mean 'description'?)" in str(result.error)
        else:
            assert [s.metadata for s in result.subtasks] == [{"conditional_branch": "true"}]
