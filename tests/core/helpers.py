"""Small orchestrators used by the core tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from orchestration import AgentResult, BaseOrchestrator, StreamEvent, SubTask


class GraphOrchestrator(BaseOrchestrator):
    """Runs a fixed list of subtasks; each subtask makes one model call through the framework.

    ``behaviour`` may override what a subtask does: ``behaviour[id](self, subtask, context)``.
    """

    def __init__(
        self,
        *args: Any,
        subtasks: Sequence[SubTask] | Callable[[], Any] = (),
        behaviour: dict[str, Callable[..., Any]] | None = None,
        synthesis: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.subtasks = subtasks
        self.behaviour = behaviour or {}
        self.synthesis = synthesis
        self.started: list[str] = []
        self.contexts: dict[str, dict[str, Any]] = {}
        self.running = 0
        self.max_running = 0

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        if callable(self.subtasks):
            return self.subtasks()  # type: ignore[no-any-return]
        return list(self.subtasks)

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> Any:
        self.started.append(subtask.id)
        self.contexts[subtask.id] = dict(context or {})
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if subtask.id in self.behaviour:
                outcome = self.behaviour[subtask.id](self, subtask, context)
                if asyncio.iscoroutine(outcome):
                    outcome = await outcome
                return outcome
            completion = await self.call_llm(f"Subtask: {subtask.description}")
            return AgentResult(
                agent_id=f"agent_{subtask.id}",
                agent_type=subtask.agent_type,
                subtask_id=subtask.id,
                content=completion.content,
                model=completion.model,
            )
        finally:
            self.running -= 1

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> Any:
        if self.synthesis is not None:
            outcome = self.synthesis(self, agent_results, context)
            if asyncio.iscoroutine(outcome):
                outcome = await outcome
            return outcome
        completion = await self.call_llm("Synthesize: " + " | ".join(r.content for r in agent_results))
        return completion.content


def fan(n: int, **kwargs: Any) -> list[SubTask]:
    """``n`` independent subtasks."""
    return [SubTask(id=f"s{i}", description=f"part {i}", **kwargs) for i in range(n)]


class Recorder:
    """A stream callback that keeps every event."""

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []

    def __call__(self, event: StreamEvent) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[StreamEvent]:
        return [e for e in self.events if e.event_type == kind]
