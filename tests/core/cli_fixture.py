"""Orchestrators the CLI tests load as ``tests.core.cli_fixture:Class``."""

from __future__ import annotations

from typing import Any

from orchestration import AgentResult, BaseOrchestrator, SubTask


class TwoStep(BaseOrchestrator):
    """Two subtasks through the framework's model calls."""

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [
            SubTask(id="one", description=f"first half of {task}"),
            SubTask(id="two", description="second half"),
        ]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        return (await self.call_llm(subtask.description)).content

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return (await self.call_llm("Synthesize: " + " ".join(r.content for r in agent_results))).content


class Broken(TwoStep):
    """Every subtask fails."""

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        raise ValueError("this agent always fails")
