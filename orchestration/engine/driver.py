"""Drives one run: decompose (or restore) the plan, run it, synthesize, finish.

:class:`WorkflowDriver` is the engine's side of :class:`~orchestration.base.BaseOrchestrator`:
the orchestrator provides the three hooks, the driver calls them in order and turns
every state change into an event.  A resumed run starts from its folded state: the plan
and every completed subtask come from the log, only unfinished work runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from ..budget import Budget, format_usd
from ..config import OrchestratorConfig
from ..errors import BudgetExceededError, PlanError, describe
from ..events import EventType
from ..llm import Completion
from ..models import AgentResult, SubTask, SynthesisResult, TaskStatus, resume_hint
from ..retry import retry_call
from ..usage import Usage
from .blocking import timed
from .graph import Plan, build_plan
from .guard import RunPausedError
from .planrun import PlanRun
from .run import RunContext, attributed

if TYPE_CHECKING:
    from ..reports import Reports
    from ..stores import RunStore

__all__ = ["WorkflowDriver", "WorkflowHooks", "agent_id_for", "json_ready", "title_from"]


class WorkflowHooks(Protocol):
    """What the driver needs of a front end: its settings, its store and its three hooks.

    :class:`~orchestration.base.BaseOrchestrator` is one; the engine never imports it
    (front ends sit above the engine).
    """

    config: OrchestratorConfig
    name: str
    store: RunStore

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]: ...

    async def execute_subtask(
        self, subtask: SubTask, context: dict[str, Any] | None = None
    ) -> AgentResult: ...

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str | SynthesisResult: ...

    def record_synthesis(
        self, synthesis: SynthesisResult, *, final: bool = False, started: float | None = None
    ) -> SynthesisResult: ...


# How bad a run's outcome is; set_outcome can only move a run down this scale.
_SEVERITY = {TaskStatus.COMPLETED: 0, TaskStatus.PARTIAL: 1, TaskStatus.PAUSED: 2, TaskStatus.FAILED: 3}


class WorkflowDriver:
    """Runs workflows for one orchestrator; each call works on the run it is given."""

    def __init__(self, orch: WorkflowHooks) -> None:
        self.orch = orch
        self.config = orch.config

    async def drive(self, run: RunContext, *, resumed: bool = False) -> None:
        """Run the workflow to its end (or continue it, when ``resumed``)."""
        config = self.config
        if resumed:
            run.emit(
                EventType.WORKFLOW_RESUMED,
                {
                    "from_seq": run.state.last_seq,
                    "completed": len(self._completed_results(run)),
                    "title": run.title,
                },
            )
        else:
            start: dict[str, Any] = {
                "task": run.task,
                "title": run.title,
                "orchestrator": self.orch.name or type(self.orch).__name__,
                "orchestrator_class": f"{type(self.orch).__module__}:{type(self.orch).__qualname__}",
                "config": config.to_dict(),
                "context": json_ready(run.context),
                "provider": getattr(run.llm, "name", type(run.llm).__name__),
            }
            if run.labels:
                start["labels"] = dict(run.labels)
            if run.replay_of:
                start["replay_of"] = dict(run.replay_of)
            run.emit(EventType.WORKFLOW_START, start)
        reports = False
        try:
            plan = self._restored_plan(run) if resumed else None
            if plan is None:
                plan = await self.decompose(run)
            await self._execute_plan(run, plan, completed=self._completed_results(run) if resumed else {})
            synthesis_error = None
            try:
                await self.synthesize(run)
            except (asyncio.CancelledError, BudgetExceededError, RunPausedError):
                raise
            except Exception as error:  # the agents' results are kept; the run is partial
                synthesis_error = f"synthesis failed: {describe(error)}"
            reports = self.finish(run, synthesis_error)
        except asyncio.CancelledError:
            if run.abort_reason is not None:
                self._end(run, TaskStatus.FAILED, f"aborted: {run.abort_reason}")
            else:
                self._end(run, TaskStatus.CANCELLED, "the run was cancelled")
            if not run.cancel_requested:
                raise
        except RunPausedError:  # a guardrail paused the run during decomposition or synthesis
            self._end(run, TaskStatus.PAUSED, run.stop_message)
        except Exception as error:  # an invalid plan, a timeout, the budget, a hook's failure
            self.fail(run, error)
        if reports:
            await self._write_documents(run)

    def fail(self, run: RunContext, error: Exception) -> None:
        """End ``run`` as the failure ``error`` (raised by decomposition or synthesis) makes it:
        failed with the reason (an invalid plan, a timeout, a hook's error), or budget
        exceeded."""
        if isinstance(error, PlanError):
            self._end(run, TaskStatus.FAILED, f"invalid plan: {error}")
        elif isinstance(error, TimeoutError):
            limit = self.config.timeout_seconds
            self._end(run, TaskStatus.FAILED, f"timed out after {limit:g}s (timeout_seconds)")
        elif isinstance(error, BudgetExceededError):
            run.emit(EventType.BUDGET_EXCEEDED, _budget_data(run.budget))
            self._end(run, TaskStatus.BUDGET_EXCEEDED, str(error))
        else:
            reason = f"aborted: {run.abort_reason}" if run.abort_reason else describe(error)
            self._end(run, TaskStatus.FAILED, reason)

    async def decompose(self, run: RunContext) -> Plan:
        """Call ``decompose_task`` and validate its plan (raises PlanError saying what is wrong)."""
        run.emit(EventType.DECOMPOSITION_START, {"task": run.task})
        with attributed(run, "planner"):
            async with asyncio.timeout(self.config.timeout_seconds):
                raw = await self.orch.decompose_task(run.task, dict(run.context, run_id=run.run_id))
        plan = build_plan(_as_subtasks(raw))
        run.emit(
            EventType.DECOMPOSITION_COMPLETE,
            {"subtasks": [s.to_dict() for s in plan.subtasks], "count": len(plan)},
        )
        return plan

    def _completed_results(self, run: RunContext) -> dict[str, AgentResult]:
        """Subtasks a resumed run already completed (they are not run again)."""
        return {
            subtask_id: AgentResult.from_dict(result)
            for subtask_id, result in run.state.results.items()
            if result.get("status") == TaskStatus.COMPLETED and subtask_id in run.state.subtasks
        }

    def _restored_plan(self, run: RunContext) -> Plan | None:
        """The plan recorded before the interruption, or None if decomposition never finished."""
        if not run.state.subtasks:
            return None
        return build_plan(SubTask.from_dict(s) for s in run.state.subtasks.values())

    async def _execute_plan(self, run: RunContext, plan: Plan, completed: Mapping[str, AgentResult]) -> None:
        run.plan = plan
        run.results.update(completed)

        def should_stop() -> bool:
            if run.stop_reason is None and run.budget.exhausted:
                run.stop_reason = TaskStatus.BUDGET_EXCEEDED
                run.emit(EventType.BUDGET_EXCEEDED, _budget_data(run.budget))
            return run.stop_reason is not None

        def ruled_out(ids: list[str], reason: str) -> None:
            for subtask_id in ids:
                if run.stop_reason is TaskStatus.BUDGET_EXCEEDED:
                    reason = "not started: the budget was exhausted"
                elif run.stop_reason is TaskStatus.PAUSED:
                    reason = "not started: the run was paused (resume continues it)"
                elif run.abort_reason is not None:
                    reason = "not started: a guardrail aborted the run"
                self.skip_subtask(run, plan.by_id[subtask_id], reason)

        await PlanRun(
            plan,
            lambda subtask: self.run_subtask(run, subtask),
            concurrency=self.config.concurrency,
            should_stop=should_stop,
            on_ruled_out=ruled_out,
            completed=completed,
        ).run()

    async def run_subtask(self, run: RunContext, subtask: SubTask) -> bool:
        """Run one subtask (timeout, retries, the bill) and record its result; True if it completed."""
        agent_id = agent_id_for(subtask)
        run.emit(
            EventType.AGENT_START,
            {
                "subtask_id": subtask.id,
                "description": subtask.description,
                "agent_type": str(subtask.agent_type),
                "dependencies": list(subtask.dependencies),
            },
            agent_id,
        )
        context = dict(
            run.context,
            task=run.task,
            run_id=run.run_id,
            agent_id=agent_id,
            dependency_results={d: run.results[d] for d in subtask.dependencies},
        )
        timeout = subtask.timeout_seconds or self.config.timeout_seconds
        attempts = 0

        async def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            async with asyncio.timeout(timeout):
                return await timed(
                    self.orch.execute_subtask(subtask, context), run, agent_id, "execute_subtask"
                )

        def on_retry(number: int, error: BaseException, wait: float) -> None:
            run.emit(
                EventType.AGENT_RETRY,
                {
                    "subtask_id": subtask.id,
                    "attempt": number,
                    "error": describe(error),
                    "wait_seconds": wait,
                },
                agent_id,
            )

        started = time.perf_counter()
        try:
            with attributed(run, agent_id, subtask.model):
                outcome = await retry_call(attempt, run.subtask_policy, on_retry=on_retry)
                if isinstance(outcome, str):  # the common case: build the final result once
                    return self._complete_plain(run, subtask, agent_id, outcome, started, attempts)
                result = _as_agent_result(outcome, subtask, agent_id)
        except asyncio.CancelledError as error:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the run is being cancelled
                self._record(run, _failed(subtask, agent_id, TaskStatus.CANCELLED, "cancelled", attempts))
                raise
            # the subtask's own code was cancelled (e.g. a client library's future): a failure
            result = _failed(subtask, agent_id, TaskStatus.FAILED, describe(error), attempts)
        except BudgetExceededError as error:
            if run.stop_reason is None:
                run.stop_reason = TaskStatus.BUDGET_EXCEEDED
                run.stop_message = str(error)  # says what would have made the call fit
                run.emit(EventType.BUDGET_EXCEEDED, _budget_data(run.budget), agent_id)
            result = _failed(subtask, agent_id, TaskStatus.FAILED, str(error), attempts)
        except RunPausedError as error:
            result = _failed(subtask, agent_id, TaskStatus.PAUSED, str(error), attempts)
        except TimeoutError:
            message = f"timed out after {timeout:g}s (attempt {attempts} of {self.config.max_retries + 1})"
            result = _failed(subtask, agent_id, TaskStatus.FAILED, message, attempts)
        except Exception as error:
            result = _failed(subtask, agent_id, TaskStatus.FAILED, describe(error), attempts)
        result = self._account(run, agent_id, result, time.perf_counter() - started, attempts)
        self._record(run, result)
        return result.status is TaskStatus.COMPLETED

    def skip_subtask(self, run: RunContext, subtask: SubTask, reason: str) -> AgentResult:
        """Record that ``subtask`` will not run (``reason`` says why); its SKIPPED result."""
        result = AgentResult(
            agent_id=agent_id_for(subtask),
            agent_type=subtask.agent_type,
            subtask_id=subtask.id,
            content="",
            status=TaskStatus.SKIPPED,
            error=reason,
        )
        run.results[subtask.id] = result
        run.emit(EventType.AGENT_SKIPPED, {"result": result.to_dict()}, result.agent_id)
        return result

    def _complete_plain(
        self, run: RunContext, subtask: SubTask, agent_id: str, content: str, started: float, attempts: int
    ) -> bool:
        """Record a subtask that returned plain text: its cost is what its calls cost."""
        tracked = run.state.usage_for(agent_id)
        result = AgentResult(
            agent_id=agent_id,
            agent_type=subtask.agent_type,
            subtask_id=subtask.id,
            content=content,
            execution_time=time.perf_counter() - started,
            cost=tracked.cost_usd if tracked is not None else 0.0,
            usage=tracked if tracked is not None else Usage(),
            attempts=attempts,
        )
        self._record(run, result)
        return True

    def _record(self, run: RunContext, result: AgentResult) -> None:
        run.results[result.subtask_id] = result
        kind = EventType.AGENT_COMPLETE if result.status is TaskStatus.COMPLETED else EventType.AGENT_ERROR
        run.emit(kind, {"result": result.to_dict()}, result.agent_id)

    def _account(
        self, run: RunContext, agent_id: str, result: AgentResult, elapsed: float, attempts: int
    ) -> AgentResult:
        """Fill in the result's cost and usage from the run's cost events, adding any cost
        the subtask reported itself (direct provider calls) to the bill."""
        tracked = run.state.usage_for(agent_id)
        # Calls through call_llm or self.provider are metered (tracked); a reported cost is
        # billed only for an agent with none, else the same calls would be billed twice.
        if self.config.enable_cost_tracking and tracked is None and result.cost > 1e-12:
            extra = result.cost
            run.budget.charge(extra)
            reported = replace(result.usage, cost_usd=extra, calls=result.usage.calls)
            run.emit(
                EventType.COST_UPDATE,
                {
                    "model": result.model or "reported",
                    "usage": reported.to_dict(),
                    "cost": extra,
                    "total_cost": run.state.total_cost + extra,
                    "source": "reported by execute_subtask",
                },
                agent_id,
            )
            tracked = run.state.usage_for(agent_id)
        metadata = result.metadata
        if result.agent_id != agent_id:  # one id per agent across events, costs and results
            metadata = {**metadata, "reported_agent_id": result.agent_id}
        return AgentResult(
            agent_id=agent_id,
            agent_type=result.agent_type,
            subtask_id=result.subtask_id,
            content=result.content,
            status=result.status,
            execution_time=result.execution_time or elapsed,
            cost=tracked.cost_usd if tracked is not None else result.cost,
            error=result.error,
            usage=tracked if tracked is not None else result.usage,
            model=result.model,
            attempts=attempts,
            metadata=metadata,
        )

    async def synthesize(self, run: RunContext) -> None:
        """Call ``synthesize_results`` with the completed results (nothing to do if none
        completed or the run is stopping) and record the final synthesis."""
        if run.stop_reason is not None:
            return
        ordered = [run.results[i] for i in run.state.subtasks if i in run.results]
        succeeded = [r for r in ordered if r.status is TaskStatus.COMPLETED]
        if not succeeded:
            return
        run.emit(EventType.SYNTHESIS_START, {"inputs": len(succeeded)})
        context = dict(
            run.context,
            task=run.task,
            run_id=run.run_id,
            failed_results=[r for r in ordered if r.status is not TaskStatus.COMPLETED],
        )
        started = time.perf_counter()
        with attributed(run, "synthesizer"):
            async with asyncio.timeout(self.config.timeout_seconds):
                output = await self.orch.synthesize_results(succeeded, context)
            if output is None:
                raise TypeError("synthesize_results returned None; return a str or a SynthesisResult")
            synthesis = (
                output
                if isinstance(output, SynthesisResult)
                else SynthesisResult(
                    content=str(output),
                    level=1 + max((s.get("level", 0) for s in run.state.syntheses), default=0),
                    source_ids=[r.agent_id for r in succeeded],
                    agent_id="synthesizer",
                )
            )
            self.orch.record_synthesis(synthesis, final=True, started=started)

    def finish(self, run: RunContext, synthesis_error: str | None = None) -> bool:
        """End the run with its verdict; True when its reports are to be written next."""
        results = list(run.results.values())
        done = [r for r in results if r.status is TaskStatus.COMPLETED]
        status, error = TaskStatus.COMPLETED, None
        if run.abort_reason is not None:
            status, error = TaskStatus.FAILED, f"aborted: {run.abort_reason}"
        elif synthesis_error is not None:
            status, error = TaskStatus.PARTIAL, synthesis_error
        elif run.stop_reason is TaskStatus.PAUSED:
            status, error = TaskStatus.PAUSED, run.stop_message
        elif run.stop_reason is TaskStatus.BUDGET_EXCEEDED:
            status = TaskStatus.BUDGET_EXCEEDED
            error = (
                f"budget of {format_usd(run.budget.cap or 0.0)} reached after {format_usd(run.budget.spent)}; "
                f"{len(done)} of {len(results)} subtasks completed"
            )
            if run.stop_message:
                error = f"{error}; {run.stop_message}"
        elif not done:
            status = TaskStatus.FAILED
            first = next((r.error for r in results if r.error), "unknown error")
            error = f"all {len(results)} subtasks failed; first error: {first}"
        elif len(done) < len(results):
            status = TaskStatus.PARTIAL
            failed = [f"{r.subtask_id}: {r.error}" for r in results if r.status is not TaskStatus.COMPLETED]
            error = f"{len(failed)} of {len(results)} subtasks did not complete ({'; '.join(failed[:3])})"
        if run.outcome_status is not None and _SEVERITY.get(run.outcome_status, 0) > _SEVERITY.get(status, 9):
            status = run.outcome_status  # a pattern may make the verdict worse, never better
        if run.outcome_error:
            error = f"{error}; {run.outcome_error}" if error else run.outcome_error
        reports = self.config.generate_documents
        self._end(run, status, error, reports_pending=reports)
        return reports

    async def _write_documents(self, run: RunContext) -> None:
        """Write the run's reports after its final event, so they show the whole run (its
        outcome, its duration, its log to the end), then list them in a last
        ``document_generation_complete`` event.  A report that cannot be written is a
        ``document_error`` event with the reason; the others are still written and listed,
        and the run's outcome stays what its work made it."""
        from ..reports import Reports, generate_reports

        formats = list(self.config.document_formats)
        run.emit(EventType.DOCUMENT_GENERATION_START, {"formats": formats})
        try:
            await run.log.flush(always=True)  # the reports read the log back, to its end
            events = await self.orch.store.events(run.run_id) if run.log.store_error is None else None
            reports = await asyncio.to_thread(
                generate_reports, run.state.to_result(), formats, self.config.output_directory, events=events
            )
        except asyncio.CancelledError as cancelled:
            self._list_documents(run, Reports.failed(formats, "report writing was cancelled", cancelled))
            if not run.cancel_requested:
                raise
            return
        except Exception as failure:  # e.g. a package reports need is missing, or the store failed
            reports = Reports.failed(formats, describe(failure), failure)
        self._list_documents(run, reports)

    def _list_documents(self, run: RunContext, reports: Reports) -> None:
        for warning in reports.warnings:
            run.emit(EventType.WARNING, {"message": warning})
        for failure in reports.failures:
            run.emit(
                EventType.DOCUMENT_ERROR,
                {"format": failure.format, "path": failure.path, "error": failure.error},
            )
        documents = [d.to_dict() for d in reports.documents]
        run.emit(EventType.DOCUMENT_GENERATION_COMPLETE, {"documents": documents, "ends_run": True})

    def _end(
        self, run: RunContext, status: TaskStatus, error: str | None, *, reports_pending: bool = False
    ) -> None:
        if run.log.store_error is not None:
            note = f"event store failed: {describe(run.log.store_error)}"
            error = f"{error}; {note}" if error else note
            if status is TaskStatus.COMPLETED:
                status = TaskStatus.PARTIAL
        kind = {
            TaskStatus.COMPLETED: EventType.WORKFLOW_COMPLETE,
            TaskStatus.PARTIAL: EventType.WORKFLOW_COMPLETE,
            TaskStatus.CANCELLED: EventType.WORKFLOW_CANCELLED,
            TaskStatus.PAUSED: EventType.WORKFLOW_PAUSED,
        }.get(status, EventType.WORKFLOW_ERROR)
        if status is TaskStatus.PAUSED:
            hint = resume_hint(run.run_id)
            error = f"{error}; {hint}" if error else hint
        results = run.state.results  # the whole run's, a resumed run's earlier work included
        data: dict[str, Any] = {
            "status": str(status),
            "total_cost": run.state.total_cost,
            "total_tokens": run.state.usage.total_tokens,
            "agents": len(results),
            "agents_completed": sum(1 for r in results.values() if r.get("status") == TaskStatus.COMPLETED),
        }
        if run.outcome_metadata:
            data["metadata"] = dict(run.outcome_metadata)
        if error:
            data["error"] = error
        if reports_pending:
            data["reports_pending"] = True  # the stream ends after the report listing instead
        run.emit(kind, data)


def agent_id_for(subtask: SubTask) -> str:
    return f"agent_{subtask.id}"


def _budget_data(budget: Budget) -> dict[str, Any]:
    return {"cap": budget.cap, "spent": budget.spent, "reserved": budget.reserved}


def _failed(subtask: SubTask, agent_id: str, status: TaskStatus, error: str, attempts: int) -> AgentResult:
    return AgentResult(
        agent_id=agent_id,
        agent_type=subtask.agent_type,
        subtask_id=subtask.id,
        content="",
        status=status,
        error=error,
        attempts=max(1, attempts),
    )


def _as_agent_result(outcome: Any, subtask: SubTask, agent_id: str) -> AgentResult:
    if isinstance(outcome, AgentResult):
        return outcome if outcome.subtask_id == subtask.id else replace(outcome, subtask_id=subtask.id)
    if isinstance(outcome, str):
        return AgentResult(
            agent_id=agent_id, agent_type=subtask.agent_type, subtask_id=subtask.id, content=outcome
        )
    if isinstance(outcome, Completion):
        return AgentResult(
            agent_id=agent_id,
            agent_type=subtask.agent_type,
            subtask_id=subtask.id,
            content=outcome.content,
            model=outcome.model,
        )
    raise TypeError(f"execute_subtask must return an AgentResult or a str, got {type(outcome).__name__}")


def _as_subtasks(raw: Any) -> list[SubTask]:
    if raw is None:
        raise PlanError("decompose_task returned None; return a list of SubTask objects")
    if isinstance(raw, (str, bytes)) or not isinstance(raw, (list, tuple)):
        raise PlanError(f"decompose_task must return a list of SubTask objects, got {type(raw).__name__}")
    subtasks: list[SubTask] = []
    for index, item in enumerate(raw):
        if isinstance(item, SubTask):
            subtasks.append(item)
        elif isinstance(item, Mapping):
            subtasks.append(_subtask_from_fields(item, index))
        elif isinstance(item, str) and item.strip():
            subtasks.append(SubTask(id=f"subtask_{index + 1}", description=item.strip()))
        else:
            raise PlanError(f"decompose_task item {index} is not a SubTask: {item!r}"[:300])
    return subtasks


# SubTask fields a decomposition may give as a dict, with the check each value must pass.
_SUBTASK_FIELDS: dict[str, tuple[str, Any]] = {
    "id": ("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip())),
    "description": ("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip())),
    "agent_type": ("a string", lambda v: isinstance(v, str)),
    "priority": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "dependencies": (
        "a list of subtask ids",
        lambda v: isinstance(v, (list, tuple)) and all(isinstance(d, str) for d in v),
    ),
    "metadata": ("a dict", lambda v: isinstance(v, Mapping)),
    "model": ("a model id or null", lambda v: v is None or isinstance(v, str)),
    "timeout_seconds": (
        "a positive number or null",
        lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0),
    ),
}


def _subtask_from_fields(item: Mapping[str, Any], index: int) -> SubTask:
    """A dict from ``decompose_task`` as SubTask fields, each checked: a bad one is named."""
    import difflib

    where = f"decompose_task item {index}"
    for key, value in item.items():
        rule = _SUBTASK_FIELDS.get(str(key))
        if rule is None:
            close = difflib.get_close_matches(str(key), list(_SUBTASK_FIELDS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PlanError(
                f"{where} has unknown SubTask field {key!r}{hint}; fields: {', '.join(_SUBTASK_FIELDS)}"
            )
        if not rule[1](value):
            raise PlanError(f"{where}: {key!r} must be {rule[0]}, got {value!r}"[:300])
    if "description" not in item:
        raise PlanError(
            f"{where} has no 'description' (say what the subtask should do): {dict(item)!r}"[:300]
        )
    return SubTask.from_dict({"id": f"subtask_{index + 1}", **item})


def title_from(task: str) -> str:
    line = " ".join(task.split())
    return line if len(line) <= 80 else line[:77] + "..."


def json_ready(value: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-serialisable part of a context (so a resumed run gets it back)."""
    import json

    ready: dict[str, Any] = {}
    for key, item in value.items():
        try:
            json.dumps(item)
        except (TypeError, ValueError):
            continue
        ready[str(key)] = item
    return ready
