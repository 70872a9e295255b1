"""The nodes the planner adds, and the answer: workers, joins, the synthesis, the verdict.

A worker runs the orchestrator's ``execute_subtask`` hook on its dependencies' results,
billed to its node; a join (the end of a split) hands its parts' results on.  Each wakes
the ``observe`` node as it finishes, whatever the outcome.  The synthesizer writes the
answer with ``synthesize_results`` from :func:`final_results` and decides the run's
status, which :func:`outcome` reads back from its stored output (so a resumed or
reloaded run ends the same way).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from ..engine.core import GraphState, NodeState
from ..engine.guard import GuardrailRejectedError, RunPausedError
from ..engine.run import attributed
from ..errors import AgentFailedError, BudgetExceededError, ProviderError, describe
from ..events import EventType
from ..graph import NodeContext, NodeOutput
from ..models import AgentResult, AgentType, SubTask, SynthesisResult, TaskStatus
from ..usage import Usage
from .prompts import clip, result_text
from .tools import FIXED_NODES

if TYPE_CHECKING:
    from .run import PlannerRun

__all__ = ["as_result", "as_stored", "final_results", "join", "outcome", "synthesize", "work"]

_DONE = NodeState.COMPLETED
T = TypeVar("T")


def as_stored(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as it reads back from the store (so a resumed turn rebuilds the same request)."""
    loaded: dict[str, Any] = json.loads(json.dumps(value, ensure_ascii=False, default=str))
    return loaded


async def work(run: PlannerRun, ctx: NodeContext) -> NodeOutput:
    node = ctx.node
    agent_id = node.id
    subtask = SubTask(
        id=node.id,
        description=node.description or node.id,
        dependencies=[e.source for e in run.state.nodes[node.id].inn],
        model=node.model,
        timeout_seconds=node.timeout,
    )
    run.emit(
        EventType.AGENT_START,
        {
            "subtask_id": node.id,
            "description": subtask.description,
            "agent_type": "worker",
            "visit": ctx.visit,
        },
        agent_id,
    )
    started = time.perf_counter()
    try:
        result = await _asking(ctx, lambda: _execute(run, ctx, subtask))
    except asyncio.CancelledError:
        if not ctx.cancel.cancelled:  # the node's own time limit, not the run stopping
            limit = f"timed out after {node.timeout}s" if node.timeout else "cancelled"
            _agent_failed(run, subtask, limit, started)
        raise
    except Exception as error:
        _agent_failed(run, subtask, describe(error), started)
        raise
    finally:  # however it ends, a question asked included
        run.wake()
    if not result.execution_time:
        result = replace(result, execution_time=time.perf_counter() - started)
    run.emit(EventType.AGENT_COMPLETE, {"result": result.to_dict()}, agent_id)
    return NodeOutput(output=result.content, summary=clip(result.content, 300))


async def _asking(ctx: NodeContext, attempt: Callable[[], Awaitable[T]]) -> T:
    """``attempt()``; when a guardrail pauses one of its model calls, the node asks a person
    whether to go on (durably: the run pauses) and, told to, attempts again."""
    while True:
        try:
            return await attempt()
        except RunPausedError as error:
            await ctx.ask_about_pause(error)


async def _execute(run: PlannerRun, ctx: NodeContext, subtask: SubTask) -> AgentResult:
    nodes = run.state.nodes
    dependencies: dict[str, AgentResult] = {}
    expectations: dict[str, str] = {}
    for edge in nodes[subtask.id].inn:
        source = nodes[edge.source]
        if source.state == _DONE and source.completions:
            dependencies[edge.source] = as_result(run, edge.source, source.completions[-1].output)
        if edge.contract is not None and edge.contract.expectation:
            expectations[edge.source] = edge.contract.expectation
    context = {
        **run.context,
        "task": run.task,
        "run_id": run.graph_run.run_id,
        "agent_id": subtask.id,
        "visit": ctx.visit,
        "dependency_results": dependencies,
        "expectations": expectations,
    }
    with attributed(run.models.context, subtask.id, subtask.model):
        result = await run.orch.execute_subtask(subtask, context)
    if not isinstance(result, AgentResult):
        raise AgentFailedError(f"execute_subtask must return an AgentResult, not {type(result).__name__}")
    usage = run.models.log.state.usage_for(subtask.id)
    if usage is not None and not result.usage.calls:
        result = replace(result, usage=usage, cost=usage.cost_usd)
    if result.status is not TaskStatus.COMPLETED:
        raise AgentFailedError(result.error or f"the worker reported {result.status}")
    return result


def as_result(run: PlannerRun, node_id: str, output: Any) -> AgentResult:
    description = run.state.nodes[node_id].spec.description
    return AgentResult(
        agent_id=node_id,
        agent_type=AgentType.WORKER,
        subtask_id=node_id,
        content=result_text(output),
        metadata={"description": description} if description else {},
    )


def _agent_failed(run: PlannerRun, subtask: SubTask, error: str, started: float) -> None:
    failed = AgentResult(
        agent_id=subtask.id,
        agent_type=AgentType.WORKER,
        subtask_id=subtask.id,
        content="",
        status=TaskStatus.FAILED,
        error=error,
        execution_time=time.perf_counter() - started,
    )
    run.emit(EventType.AGENT_ERROR, {"result": failed.to_dict()}, subtask.id)


def join(run: PlannerRun, ctx: NodeContext) -> dict[str, Any]:
    try:
        return ctx.inputs()
    finally:
        run.wake()


def final_results(run: PlannerRun) -> list[AgentResult]:
    """The completed results the answer is written from: each completed node none of
    whose dependents completed (a result another node built on is in that one)."""
    nodes = run.state.nodes
    final = []
    for node_id in run.workers():
        rec = nodes[node_id]
        if rec.state != _DONE or not rec.completions:
            continue
        if any(nodes[e.target].state == _DONE for e in rec.out if e.target not in FIXED_NODES):
            continue
        final.append(as_result(run, node_id, rec.completions[-1].output))
    return final


async def synthesize(run: PlannerRun, ctx: NodeContext) -> dict[str, Any]:
    observation = ctx.input
    stop, reason = observation["stop"], observation["reason"]
    turns = run.outputs("planner")
    results = final_results(run)
    status, reason = _status(run, stop, reason, bool(results))
    run.emit(EventType.SYNTHESIS_START, {"inputs": len(results)}, "synthesizer")
    started = time.perf_counter()
    context = {
        **run.context,
        "task": run.task,
        "run_id": run.graph_run.run_id,
        "stopped_by": stop,
        "reason": reason,
        "planner_answer": turns[-1]["text"] if turns else "",
    }
    by = "model"
    try:
        with attributed(run.models.context, "synthesizer"):
            answer = await _asking(ctx, lambda: run.orch.synthesize_results(results, context))
    except BudgetExceededError as error:
        answer, by = _fallback(results, context), "fallback"
        if status != "budget_exceeded":
            status, reason = (
                "budget_exceeded",
                _join_reasons(reason, f"the budget ran out for the synthesis: {error}"),
            )
    except (
        ProviderError,
        TimeoutError,
        AgentFailedError,
        GuardrailRejectedError,
        RunPausedError,
    ) as error:
        answer, by = _fallback(results, context), "fallback"
        status = "partial" if results else "failed"
        reason = _join_reasons(reason, f"synthesis failed: {describe(error)}")
    content = answer.content if isinstance(answer, SynthesisResult) else str(answer)
    info = {
        "turns": len(turns),
        "stopped_by": stop,
        "reason": reason,
        "nodes": len(run.workers()),
        "synthesized_by": by,
    }
    usage = run.models.log.state.usage_for("synthesizer")
    synthesis = SynthesisResult(
        content=content,
        source_ids=[r.subtask_id for r in results],
        agent_id="synthesizer",
        model=run.config.primary_model,
        cost=usage.cost_usd if usage is not None else 0.0,
        execution_time=time.perf_counter() - started,
        usage=usage if usage is not None else Usage(),
        metadata={"planner": info},
    )
    run.emit(EventType.SYNTHESIS_COMPLETE, {"synthesis": synthesis.to_dict(), "final": True}, "synthesizer")
    return as_stored({"answer": content, "status": status, **info})


def _status(run: PlannerRun, stop: str | None, reason: str, any_result: bool) -> tuple[str, str]:
    """The run's status and why, from how the planning ended and what completed."""
    if stop == "budget":
        return "budget_exceeded", reason
    if stop in ("max_turns", "max_nodes"):
        return "partial", reason
    if stop in ("error", "guardrail"):
        return ("partial" if any_result else "failed"), reason
    missed = [
        f"{n}: {run.state.nodes[n].error or NodeState(run.state.nodes[n].state).name.lower()}"
        for n in run.workers()
        if run.state.nodes[n].state != _DONE
    ]
    if missed:
        count = len(run.workers())
        return "partial", f"{len(missed)} of {count} nodes did not complete ({'; '.join(missed[:3])})"
    return "completed", ""


def outcome(state: GraphState) -> tuple[str, str] | None:
    """How the run ended, from the synthesizer's verdict (None until it ran)."""
    rec = state.nodes.get("synthesizer")
    if rec is None or not rec.completions:
        return None
    verdict = rec.completions[-1].output
    return str(verdict["status"]), str(verdict["reason"] or "")


def _join_reasons(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second


def _fallback(results: Sequence[AgentResult], context: Mapping[str, Any]) -> str:
    """The answer when no model can write one: the results as they are."""
    if not results:
        return str(context.get("planner_answer") or "No node produced a result.")
    return "\n\n".join(f"## {r.subtask_id}\n\n{r.content}" for r in results)
