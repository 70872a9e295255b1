"""Fan-out: the simplest pattern.

Decompose into ``num_agents`` independent subtasks (planned by the model, or given with
``subtasks=``), make one model call per subtask in parallel (up to the concurrency
cap), then one synthesis call.  With explicit subtasks a run costs exactly
``len(subtasks) + 1`` calls; with planning, one more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestration import (
    AgentResult,
    AgentType,
    ConfigError,
    OrchestratorConfig,
    SubTask,
    SynthesisResult,
)

from ._base import RESEARCH_ANGLES, PatternOrchestrator, format_results, split_by
from ._prompts import FANOUT_PROMPTS

__all__ = ["FanOutOrchestrator"]


class FanOutOrchestrator(PatternOrchestrator):
    """One decomposition, ``num_agents`` parallel calls, one synthesis.

    ``FanOutOrchestrator(config, provider, subtasks=None)``: ``subtasks`` (strings or
    :class:`SubTask` objects) skip the planning call.
    """

    default_prompts = FANOUT_PROMPTS

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        provider: Any = None,
        *,
        subtasks: Sequence[str | SubTask] | None = None,
        prompts: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(config, provider, prompts=prompts, **options)
        self.subtasks: list[SubTask] | None = None
        if subtasks is not None:
            if isinstance(subtasks, str) or not isinstance(subtasks, Sequence) or not subtasks:
                raise ConfigError("subtasks must be a non-empty list (omit it to let the model plan)")
            self.subtasks = [_subtask(item, index) for index, item in enumerate(subtasks, 1)]

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        """The given subtasks, or ``num_agents`` planned by the model."""
        if self.subtasks is not None:
            return list(self.subtasks)
        items = await self.plan_with_llm(
            task, self.config.num_agents, fallback=split_by(RESEARCH_ANGLES), fallback_label="research angle"
        )
        return [
            SubTask(id=f"subtask_{index}", description=item.description)
            for index, item in enumerate(items, 1)
        ]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        """One model call for one subtask."""
        task = (context or {}).get("task", subtask.description)
        completion = await self.call_llm(
            self.prompts.render("execute", subtask=subtask.description, task=task), model=subtask.model
        )
        return self.result_for(
            context, subtask.id, subtask.agent_type, completion.content, model=completion.model
        )

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str | SynthesisResult:
        """One call combining every successful result."""
        task = (context or {}).get("task", "")
        completion = await self.call_llm(
            self.prompts.render("synthesize", task=task, results=format_results(agent_results))
        )
        return SynthesisResult(
            content=completion.content,
            level=1,
            source_ids=[r.agent_id for r in agent_results],
            model=completion.model,
        )


def _subtask(item: str | SubTask, index: int) -> SubTask:
    if isinstance(item, SubTask):
        return item
    if isinstance(item, str) and item.strip():
        return SubTask(id=f"subtask_{index}", description=item.strip(), agent_type=AgentType.WORKER)
    raise ConfigError(f"subtask {index} must be a description or a SubTask, got {item!r}")
