"""Orchestrators the CLI tests load as ``tests.core.cli_fixture:Class``."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
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


class Flaky(BaseOrchestrator):
    """a, b -> c through the framework's model calls, steered by files in ``$FLAKY_DIR``.

    A subtask named in ``down`` fails after its model call (a service it needs is down);
    one named in ``gate`` writes ``waiting`` and waits until ``open`` exists.  Every run of
    a subtask appends its id to ``ran``, so a test counts what each process ran.
    """

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [
            SubTask(id="a", description=f"first part of {task}"),
            SubTask(id="b", description="second part"),
            SubTask(id="c", description="third part, from the second", dependencies=["b"]),
        ]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        folder = Path(os.environ["FLAKY_DIR"])
        with (folder / "ran").open("a", encoding="utf-8") as ran:
            ran.write(f"{subtask.id}\n")
        if subtask.id in _names(folder / "gate"):
            (folder / "waiting").write_text(subtask.id, encoding="utf-8")
            deadline = time.monotonic() + 120  # a test that never opens the gate fails, not hangs
            while not (folder / "open").exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never opened the gate")
                await asyncio.sleep(0.01)
        answer = (await self.call_llm(subtask.description)).content
        if subtask.id in _names(folder / "down"):
            raise ConnectionError("the search service is down")
        return answer

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return " + ".join(r.subtask_id for r in agent_results)


def _names(path: Path) -> set[str]:
    return set(path.read_text(encoding="utf-8").split()) if path.exists() else set()
