"""A ``BaseOrchestrator`` (or a built-in pattern) run on Temporal: its hooks as graph nodes.

The run is a graph the core schedules like any other:

- ``planner`` calls ``decompose_task``; its result adds one node per subtask
  (``agent_<id>``, with an edge from each dependency) and a ``synthesizer`` node fed by
  all of them, as graph changes made by the planner (so a planner that runs again after
  a worker died does not add them twice);
- each subtask node calls ``execute_subtask`` with ``context["dependency_results"]``
  (retries, timeouts and the bill as in a local run); one whose dependency did not
  complete is skipped;
- ``synthesizer`` calls ``synthesize_results`` and gives the run its verdict (completed,
  partial, failed...), written after the graph's own end so run listings and results
  read the orchestrator's outcome.

Each node's hook runs inside the engine's own code for that step (``WorkflowDriver``'s
``decompose``, ``run_subtask``/``skip_subtask``, ``synthesize``/``finish``, ``fail``),
so the events a run stores are those of a local orchestrator run (``decomposition_*``,
``agent_*``, ``cost_update``, ``synthesis_*``), beside the graph's events; its
:class:`~orchestration.models.OrchestratorResult` is the same fold of them.  Not yet on
Temporal: reports (``generate_documents``), guardrails, and a budget that stops the
other workers' subtasks at once (each subtask checks what the run spent before it starts).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...engine.core import Edge, Node, RunStarted
from ...engine.driver import WorkflowDriver, agent_id_for, title_from
from ...errors import BudgetExceededError, ConfigError, describe
from ...events import EventType, StreamEvent
from ...models import AgentResult, SubTask, TaskStatus

if TYPE_CHECKING:
    from ...base import BaseOrchestrator
    from ...engine.run import RunContext
    from .targets import Program, TargetSpec

__all__ = ["OrchestratorAdapter", "is_orchestrator_run", "orchestrator_program", "orchestrator_result"]

PLANNER = "planner"
SYNTHESIZER = "synthesizer"


def orchestrator_program(cls: type[BaseOrchestrator], spec: TargetSpec) -> Program:
    """The program of an orchestrator class: built with the spec's options and provider."""
    from ...cli.options import split_options
    from ...registry import resolve_provider
    from ...stores.memory import MemoryStore
    from .targets import Program

    fields, kwargs = split_options(cls, dict(spec.options))
    config = cls.config_class.from_dict(fields)
    if config.generate_documents:
        raise ConfigError("reports (generate_documents, --report) are not written for runs on Temporal yet")
    name = spec.provider or _default_provider()
    provider = resolve_provider(name, spec.model or config.primary_model)
    try:
        # Its store is never written: the run's events go to the worker's store.
        orchestrator = cls(config, provider, store=MemoryStore(), **kwargs)
    except TypeError as error:
        raise ConfigError(f"cannot construct {cls.__name__} on the worker: {error}") from error
    adapter = OrchestratorAdapter(orchestrator)
    return Program(
        "orchestrator",
        orchestrator.name or cls.__name__,
        (Node(id=PLANNER, handler="decompose"),),
        (),
        PLANNER,
        adapter.handlers(),
        provider,
        config,
        adapter,
    )


def _default_provider() -> str:
    if os.environ.get("OPENAI_API_KEY"):
        return "openai"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic"
    raise ConfigError(
        "the run names no provider and this worker has no OPENAI_API_KEY or ANTHROPIC_API_KEY: "
        "submit it with --provider NAME"
    )


class OrchestratorAdapter:
    """The node handlers of one orchestrator (on one worker)."""

    def __init__(self, orchestrator: BaseOrchestrator) -> None:
        self.orchestrator = orchestrator
        self.driver = WorkflowDriver(orchestrator)

    def run_started(self, request: Mapping[str, Any]) -> RunStarted:
        """The run's first event: the planner node, the task and its context as payload."""
        task = str(request.get("task") or request.get("payload") or "")
        if not task.strip():
            raise ConfigError("task must be a non-empty string describing what to do")
        orchestrator = self.orchestrator
        return RunStarted(
            (Node(id=PLANNER, handler="decompose"),),
            (),
            PLANNER,
            {"task": task, "context": dict(request.get("context") or {})},
            title=str(request.get("title") or "") or title_from(task),
            task=task,
            orchestrator=orchestrator.name or type(orchestrator).__name__,
        )

    def prepare(self, context: Any, request: Mapping[str, Any]) -> None:
        """Give the node's run context the task, title and context the hooks see."""
        run = _run_context(context)
        payload = request.get("payload") or {}
        run.task = str(payload.get("task", ""))
        run.context = dict(payload.get("context") or {})
        run.title = str(request.get("title") or "") or title_from(run.task)
        run.subtask_policy = self.orchestrator._retry_policy(subtask_level=True)
        run.labels = dict(self.orchestrator.labels)

    def handlers(self) -> dict[str, Any]:
        """``decompose``, ``subtask`` and ``synthesize``."""
        return {"decompose": self._plan, "subtask": self._subtask, "synthesize": self._synthesize}

    async def _plan(self, context: Any) -> list[dict[str, Any]]:
        run = _run_context(context)
        try:
            plan = await self.driver.decompose(run)
        except Exception as error:  # the run ends here, as a local run's would
            self.driver.fail(run, error)
            return []
        subtasks = plan.subtasks
        by_id = {s.id: s for s in subtasks}
        for subtask in _dependencies_first(subtasks):
            node_id = agent_id_for(subtask)
            edges = [Edge(source=PLANNER, target=node_id)]
            edges += [Edge(source=agent_id_for(by_id[d]), target=node_id) for d in subtask.dependencies]
            node = Node(
                id=node_id,
                handler="subtask",
                priority=subtask.priority,
                model=subtask.model,
                description=subtask.description,
            )
            context.graph.add_node(node, edges)
        synthesizer = Node(id=SYNTHESIZER, handler="synthesize")
        inputs = [Edge(source=agent_id_for(s), target=SYNTHESIZER) for s in subtasks]
        context.graph.add_node(synthesizer, inputs or [Edge(source=PLANNER, target=SYNTHESIZER)])
        return [s.to_dict() for s in subtasks]

    async def _subtask(self, context: Any) -> dict[str, Any]:
        run = _run_context(context)
        inputs = context.inputs()
        plan = [SubTask.from_dict(s) for s in inputs.get(PLANNER) or ()]
        subtask = next(s for s in plan if agent_id_for(s) == context.node_id)
        run.results.update(_results(inputs))
        failed = [d for d in subtask.dependencies if run.results[d].status is not TaskStatus.COMPLETED]
        if failed or run.budget.exhausted:
            reason = (
                f"dependency {failed[0]!r} did not complete"
                if failed
                else "not started: the budget was exhausted"
            )
            return self.driver.skip_subtask(run, subtask, reason).to_dict()
        await self.driver.run_subtask(run, subtask)
        return run.results[subtask.id].to_dict()

    async def _synthesize(self, context: Any) -> str:
        run = _run_context(context)
        run.results.update(_results(context.inputs()))
        synthesis_error = None
        try:
            await self.driver.synthesize(run)
        except BudgetExceededError as error:
            run.stop_reason = TaskStatus.BUDGET_EXCEEDED
            run.stop_message = str(error)
        except Exception as error:  # the agents' results are kept; the run is partial
            synthesis_error = f"synthesis failed: {describe(error)}"
        self.driver.finish(run, synthesis_error)
        return run.state.final_synthesis or ""


def _run_context(context: Any) -> RunContext:
    """The engine's run context of a node's model calls (its hooks run in it)."""
    models = context._run.models
    if models is None:
        raise ConfigError("an orchestrator node needs the run's provider")
    run: RunContext = models.context
    return run


def _results(inputs: Mapping[str, Any]) -> dict[str, AgentResult]:
    return {
        result.subtask_id: result
        for node_id, data in inputs.items()
        if node_id != PLANNER and isinstance(data, Mapping) and "subtask_id" in data
        for result in (AgentResult.from_dict(dict(data)),)
    }


def _dependencies_first(subtasks: Sequence[SubTask]) -> list[SubTask]:
    """The subtasks, each after its dependencies (the plan was checked for cycles)."""
    placed: set[str] = set()
    ordered: list[SubTask] = []
    pending = list(subtasks)
    while pending:
        ready = [s for s in pending if all(d in placed for d in s.dependencies)]
        for subtask in ready:
            placed.add(subtask.id)
            ordered.append(subtask)
        pending = [s for s in pending if s.id not in placed]
    return ordered


def is_orchestrator_run(events: Sequence[StreamEvent]) -> bool:
    """True for a run an orchestrator's hooks made (it has a decomposition)."""
    return any(e.event_type is EventType.DECOMPOSITION_START for e in events)


def orchestrator_result(run_id: str, events: Sequence[StreamEvent]) -> Any:
    """The stored run's :class:`~orchestration.models.OrchestratorResult` (the run fold)."""
    from ...engine.state import RunState

    return RunState.from_events(run_id, events).to_result()
