"""Sequential: a pipeline whose steps run strictly in order, each on the previous output.

Steps are given explicitly (``steps=[...]``: descriptions, :class:`Step` objects with
optional sync or async handlers, or plain callables) or planned by the model
(``num_agents`` steps).  Each step depends on the one before it, so the order holds
whatever ``parallel_execution`` says; a failed step stops the pipeline (later steps are
skipped and the run is PARTIAL).  The answer is the last completed step's output; no
extra synthesis call is made.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from orchestration import (
    AgentResult,
    AgentType,
    Completion,
    ConfigError,
    OrchestratorConfig,
    SubTask,
    SynthesisResult,
)

from ._base import PIPELINE_STAGES, PatternOrchestrator, maybe_await, split_by
from ._prompts import SEQUENTIAL_PROMPTS

__all__ = ["SequentialOrchestrator", "Step", "StepHandler"]

#: ``handler(input_text, context)``: ``input_text`` is the previous step's output (the task
#: for the first step); returns a str (or AgentResult), or an awaitable of one.
StepHandler = Callable[[str, dict[str, Any]], Any]

_FIRST_STEP = "(none: this is the first step; work from the task)"


@dataclass(frozen=True, slots=True)
class Step:
    """One pipeline step.

    Without a ``handler`` the step is one model call (prompt ``step``) given the task,
    this description and the previous output.  A ``handler(input_text, context)`` (sync
    or async) replaces that call; ``context`` has ``task``, ``step``, ``total``,
    ``run_id`` and the user's context.  A handler may call the orchestrator's
    ``call_llm`` (its cost is billed to this step).  Sync handlers run on the event
    loop, so keep them quick or make them async.
    """

    description: str
    handler: StepHandler | None = None
    name: str | None = None
    model: str | None = None
    timeout_seconds: float | None = None


class SequentialOrchestrator(PatternOrchestrator):
    """Runs steps one after another, each receiving the previous step's output.

    ``SequentialOrchestrator(config, provider, steps=None)``; without ``steps`` the model
    plans ``config.num_agents`` steps (an unparseable plan falls back to generic stages:
    gather, analyse, draft, review, finalise).
    """

    default_prompts = SEQUENTIAL_PROMPTS

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        provider: Any = None,
        *,
        steps: Sequence[str | Step | StepHandler] | None = None,
        prompts: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(config, provider, prompts=prompts, **options)
        self.steps: list[Step] | None = None if steps is None else as_steps(steps)

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        """The steps as a chain: each depends on the one before."""
        if self.steps is not None:
            steps = self.steps
        else:
            items = await self.plan_with_llm(
                task,
                self.config.num_agents,
                fallback=split_by(PIPELINE_STAGES),
                fallback_label="pipeline stage",
            )
            steps = [Step(item.description) for item in items]
        total = len(steps)
        return [
            SubTask(
                id=f"step_{index}",
                description=step.description,
                agent_type=AgentType.WORKER,
                dependencies=[f"step_{index - 1}"] if index > 1 else [],
                model=step.model,
                timeout_seconds=step.timeout_seconds,
                metadata={
                    "step": index,
                    "total": total,
                    "name": step.name or f"step {index}",
                    "handler": step.handler is not None,
                },
            )
            for index, step in enumerate(steps, 1)
        ]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        """Run one step on the previous step's output (the task for the first step)."""
        context = context or {}
        index = int(subtask.metadata.get("step", 1))
        total = int(subtask.metadata.get("total", index))
        task = str(context.get("task", subtask.description))
        dependencies = context.get("dependency_results") or {}
        previous = next((dependencies[d].content for d in subtask.dependencies if d in dependencies), None)
        meta = {"step": index, "total": total, "name": subtask.metadata.get("name")}
        handler = self._handler(subtask, index)
        if handler is not None:
            outcome = await maybe_await(
                handler(previous if previous is not None else task, dict(context, step=index, total=total))
            )
            return _as_result(outcome, subtask, context, meta)
        completion = await self.call_llm(
            self.prompts.render(
                "step",
                task=task,
                step=subtask.description,
                index=index,
                total=total,
                previous=previous if previous is not None else _FIRST_STEP,
            ),
            model=subtask.model,
        )
        return self.result_for(
            context, subtask.id, subtask.agent_type, completion.content, model=completion.model, metadata=meta
        )

    def _handler(self, subtask: SubTask, index: int) -> StepHandler | None:
        if self.steps is None or not subtask.metadata.get("handler") or not 0 < index <= len(self.steps):
            return None
        return self.steps[index - 1].handler

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str | SynthesisResult:
        """The pipeline's output: the last completed step's output."""
        ordered = sorted(agent_results, key=lambda r: int(r.metadata.get("step", 0)))
        last = ordered[-1]
        total = int(last.metadata.get("total", len(ordered)))
        return SynthesisResult(
            content=last.content,
            level=1,
            source_ids=[last.agent_id],
            metadata={"steps_completed": len(ordered), "steps_total": total, "last_step": last.subtask_id},
        )


def as_steps(steps: Sequence[str | Step | StepHandler]) -> list[Step]:
    """Normalise a list of steps (strings, :class:`Step` objects, callables); ConfigError if bad."""
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
        raise ConfigError(f"steps must be a list of steps, got {type(steps).__name__}")
    if not steps:
        raise ConfigError("steps must not be empty (omit it to let the model plan the steps)")
    normal: list[Step] = []
    for index, step in enumerate(steps, 1):
        if isinstance(step, Step):
            if not isinstance(step.description, str) or not step.description.strip():
                raise ConfigError(f"step {index} needs a non-empty description")
            if step.handler is not None and not callable(step.handler):
                raise ConfigError(f"step {index}'s handler must be callable, got {step.handler!r}")
            normal.append(step)
        elif isinstance(step, str) and step.strip():
            normal.append(Step(step.strip()))
        elif callable(step):
            name = getattr(step, "__name__", type(step).__name__)
            doc = (inspect.getdoc(step) or "").strip().splitlines()
            normal.append(Step(doc[0] if doc else name, handler=step, name=name))
        else:
            raise ConfigError(f"step {index} must be a description, a Step or a callable, got {step!r}")
    return normal


def _as_result(
    outcome: Any, subtask: SubTask, context: Mapping[str, Any], meta: dict[str, Any]
) -> AgentResult:
    if isinstance(outcome, AgentResult):
        return replace(outcome, metadata={**meta, **outcome.metadata})
    if isinstance(outcome, Completion):  # keep which model answered
        return PatternOrchestrator.result_for(
            context, subtask.id, subtask.agent_type, outcome.content, model=outcome.model, metadata=meta
        )
    if isinstance(outcome, str):
        return PatternOrchestrator.result_for(context, subtask.id, subtask.agent_type, outcome, metadata=meta)
    raise TypeError(f"the handler of step {meta['step']} returned {type(outcome).__name__}; return a str")
