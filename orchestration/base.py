"""``BaseOrchestrator``: decompose -> execute subtasks as a graph -> synthesize.

Subclasses implement three async hooks; the framework does the rest: validation of the
plan, critical-path scheduling under the concurrency cap, per-subtask timeouts, retries
with backoff, the fallback model chain, budget reservations, cost accounting,
cancellation, and one ordered event stream that the result is computed from.

Model calls go through :meth:`BaseOrchestrator.call_llm`, which attributes tokens and
cost to the agent that made them.  A subclass that calls its provider object directly
(as the seed README's example does) still works: the cost it reports in
``AgentResult.cost`` is added to the run's bill.
"""

from __future__ import annotations

import abc
import asyncio
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from .budget import Budget
from .config import OrchestratorConfig
from .engine.eventlog import EventLog
from .engine.graph import Plan, Scheduler, build_plan
from .engine.run import RunContext, attributed, current_scope
from .engine.runner import run_plan
from .errors import BudgetExceededError, ConfigError, PlanError, redact
from .events import EventType, StreamEvent
from .llm import Completion, CompletionRequest, Provider, as_provider
from .modelcall import EXHAUSTED, call_model
from .models import AgentResult, OrchestratorResult, SubTask, SynthesisResult, TaskStatus
from .pricing import PriceTable
from .retry import RetryPolicy, is_retryable, retry_call
from .stores.base import RunStore
from .stores.memory import MemoryStore
from .usage import Usage

__all__ = ["BaseOrchestrator", "RunContext"]

StreamCallback = Callable[[StreamEvent], Any]


class BaseOrchestrator(abc.ABC):
    """Base class for every orchestrator.

    Args:
        config: an :class:`OrchestratorConfig` (or a pattern's subclass of it).
        provider: a :class:`~orchestration.llm.Provider`, or any object with
            ``complete(messages, **kwargs)`` / ``chat(...)``; kept as ``self.provider``.
        store: where the run's events go (default: an in-memory store per orchestrator).
        prices: the price table used for cost (default: the built-in, dated table).
    """

    #: The name used in events and run listings (defaults to the class name).
    name: str = ""
    #: The config class the CLI and server build from options (patterns set their own).
    config_class: type[OrchestratorConfig] = OrchestratorConfig

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        provider: Any = None,
        *,
        store: RunStore | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self.config = config if config is not None else OrchestratorConfig()
        if not isinstance(self.config, OrchestratorConfig):
            raise ConfigError(f"config must be an OrchestratorConfig, got {type(self.config).__name__}")
        errors = self.config.validate()
        if errors:
            raise ConfigError(errors)
        if self.config.generate_documents:
            _require_reports()
        self.provider = provider
        self.llm: Provider = as_provider(provider)
        self.store: RunStore = store if store is not None else MemoryStore()
        self.prices = prices if prices is not None else PriceTable()
        self._runs: dict[str, RunContext] = {}

    # -- the three hooks -------------------------------------------------------------

    @abc.abstractmethod
    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        """Break ``task`` into subtasks (their ``dependencies`` make a graph)."""

    @abc.abstractmethod
    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        """Do one subtask.  ``context["dependency_results"]`` maps dependency ids to results."""

    @abc.abstractmethod
    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str | SynthesisResult:
        """Combine the successful agents' results into the final answer."""

    # -- running ---------------------------------------------------------------------

    @property
    def active_runs(self) -> list[str]:
        """Ids of runs of this orchestrator that are in progress."""
        return list(self._runs)

    def cancel(self, run_id: str | None = None) -> bool:
        """Cancel a run in progress (all of this orchestrator's runs if ``run_id`` is None).

        Running subtasks are cancelled, results so far are kept, the run ends CANCELLED.
        Returns True if anything was cancelled.
        """
        runs = (
            list(self._runs.values())
            if run_id is None
            else [self._runs[run_id]]
            if run_id in self._runs
            else []
        )
        for run in runs:
            run.cancel_requested = True
            if run.body is not None:
                run.body.cancel()
        return bool(runs)

    def run_sync(self, task: str, **kwargs: Any) -> OrchestratorResult:
        """Blocking convenience around :meth:`execute_workflow` (not inside a running loop)."""
        return asyncio.run(self.execute_workflow(task, **kwargs))

    async def execute_workflow(
        self,
        task: str,
        title: str | None = None,
        context: dict[str, Any] | None = None,
        stream_callback: StreamCallback | None = None,
        *,
        run_id: str | None = None,
    ) -> OrchestratorResult:
        """Run the whole workflow and return its result (never raises for agent failures).

        ``stream_callback`` (sync or async) receives every event in ``seq`` order; if it
        raises, the error is reported as a ``callback_error`` event and the run goes on.
        """
        if not isinstance(task, str) or not task.strip():
            raise ConfigError("task must be a non-empty string describing what to do")
        if context is not None and not isinstance(context, Mapping):
            raise ConfigError(f"context must be a dict, got {type(context).__name__}")
        run_id = run_id or uuid.uuid4().hex[:16]
        if run_id in self._runs:
            raise ConfigError(f"run {run_id!r} is already in progress")
        callbacks = [stream_callback] if stream_callback is not None else []
        log = EventLog(run_id, self.store, callbacks)
        run = RunContext(
            run_id=run_id,
            task=task,
            title=title or _title_from(task),
            context=dict(context or {}),
            log=log,
            budget=Budget(self.config.max_total_cost),
            subtask_policy=self._retry_policy(subtask_level=True),
            call_policy=self._retry_policy(subtask_level=False),
        )
        self._runs[run_id] = run
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(log.dispatch())
                run.body = group.create_task(self._drive(run))
                try:
                    await asyncio.wait([run.body])
                finally:
                    log.close()
        except asyncio.CancelledError:
            await log.deliver_pending()  # keep what happened, then honour the cancellation
            raise
        finally:
            self._runs.pop(run_id, None)
        return run.state.to_result()

    async def _drive(self, run: RunContext) -> None:
        config = self.config
        run.emit(
            EventType.WORKFLOW_START,
            {
                "task": run.task,
                "title": run.title,
                "orchestrator": self.name or type(self).__name__,
                "config": config.to_dict(),
            },
        )
        try:
            plan = await self._decompose(run)
            await self._execute_plan(run, plan)
            synthesis_error = None
            try:
                await self._synthesize(run)
            except (asyncio.CancelledError, BudgetExceededError):
                raise
            except Exception as error:  # the agents' results are kept; the run is partial
                synthesis_error = f"synthesis failed: {_describe(error)}"
            await self._finish(run, synthesis_error)
        except asyncio.CancelledError:
            self._end(run, TaskStatus.CANCELLED, "the run was cancelled")
            if not run.cancel_requested:
                raise
        except PlanError as error:
            self._end(run, TaskStatus.FAILED, f"invalid plan: {error}")
        except TimeoutError:
            self._end(
                run, TaskStatus.FAILED, f"timed out after {config.timeout_seconds:g}s (timeout_seconds)"
            )
        except BudgetExceededError as error:
            self._end(run, TaskStatus.BUDGET_EXCEEDED, str(error))
        except Exception as error:
            self._end(run, TaskStatus.FAILED, f"{type(error).__name__}: {error}")

    async def _decompose(self, run: RunContext) -> Plan:
        run.emit(EventType.DECOMPOSITION_START, {"task": run.task})
        with attributed(run, "planner"):
            async with asyncio.timeout(self.config.timeout_seconds):
                raw = await self.decompose_task(run.task, dict(run.context, run_id=run.run_id))
        plan = build_plan(_as_subtasks(raw))
        run.emit(
            EventType.DECOMPOSITION_COMPLETE,
            {"subtasks": [s.to_dict() for s in plan.subtasks], "count": len(plan)},
        )
        return plan

    async def _execute_plan(self, run: RunContext, plan: Plan) -> None:
        scheduler = Scheduler(plan)

        def should_stop() -> bool:
            if run.stop_reason is None and run.budget.exhausted:
                run.stop_reason = TaskStatus.BUDGET_EXCEEDED
                run.emit(EventType.BUDGET_EXCEEDED, _budget_data(run.budget))
            return run.stop_reason is not None

        def ruled_out(ids: list[str], reason: str) -> None:
            for subtask_id in ids:
                subtask = plan.by_id[subtask_id]
                status = TaskStatus.SKIPPED
                if run.stop_reason is TaskStatus.BUDGET_EXCEEDED:
                    reason = "not started: the budget was exhausted"
                result = AgentResult(
                    agent_id=_agent_id(subtask),
                    agent_type=subtask.agent_type,
                    subtask_id=subtask.id,
                    content="",
                    status=status,
                    error=reason,
                )
                run.results[subtask.id] = result
                run.emit(EventType.AGENT_SKIPPED, {"result": result.to_dict()}, result.agent_id)

        await run_plan(
            plan,
            scheduler,
            lambda subtask: self._run_subtask(run, subtask),
            concurrency=self.config.concurrency,
            should_stop=should_stop,
            on_ruled_out=ruled_out,
        )

    async def _run_subtask(self, run: RunContext, subtask: SubTask) -> bool:
        agent_id = _agent_id(subtask)
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
                return await self.execute_subtask(subtask, context)

        def on_retry(number: int, error: BaseException, wait: float) -> None:
            run.emit(
                EventType.AGENT_RETRY,
                {
                    "subtask_id": subtask.id,
                    "attempt": number,
                    "error": _describe(error),
                    "wait_seconds": wait,
                },
                agent_id,
            )

        started = time.perf_counter()
        try:
            with attributed(run, agent_id):
                result = _as_agent_result(
                    await retry_call(attempt, run.subtask_policy, on_retry=on_retry), subtask, agent_id
                )
        except asyncio.CancelledError:
            self._record(run, _failed(subtask, agent_id, TaskStatus.CANCELLED, "cancelled", attempts))
            raise
        except BudgetExceededError as error:
            if run.stop_reason is None:
                run.stop_reason = TaskStatus.BUDGET_EXCEEDED
                run.emit(EventType.BUDGET_EXCEEDED, _budget_data(run.budget), agent_id)
            result = _failed(subtask, agent_id, TaskStatus.FAILED, str(error), attempts)
        except TimeoutError:
            message = f"timed out after {timeout:g}s (attempt {attempts} of {self.config.max_retries + 1})"
            result = _failed(subtask, agent_id, TaskStatus.FAILED, message, attempts)
        except Exception as error:
            result = _failed(subtask, agent_id, TaskStatus.FAILED, _describe(error), attempts)
        result = self._account(run, agent_id, result, time.perf_counter() - started, attempts)
        self._record(run, result)
        return result.status is TaskStatus.COMPLETED

    def _record(self, run: RunContext, result: AgentResult) -> None:
        run.results[result.subtask_id] = result
        kind = EventType.AGENT_COMPLETE if result.status is TaskStatus.COMPLETED else EventType.AGENT_ERROR
        run.emit(kind, {"result": result.to_dict()}, result.agent_id)

    def _account(
        self, run: RunContext, agent_id: str, result: AgentResult, elapsed: float, attempts: int
    ) -> AgentResult:
        """Fill in the result's cost and usage from the run's cost events, adding any cost
        the subtask reported itself (direct provider calls) to the bill."""
        tracked = run.state.usage_by_agent.get(agent_id)
        tracked_cost = tracked.cost_usd if tracked is not None else 0.0
        if self.config.enable_cost_tracking and result.cost > tracked_cost + 1e-12:
            extra = result.cost - tracked_cost
            run.budget.charge(extra)
            reported = replace(result.usage, cost_usd=extra, calls=result.usage.calls)
            if tracked is not None:  # the tokens were already counted with the tracked calls
                reported = Usage(cost_usd=extra)
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
            tracked = run.state.usage_by_agent.get(agent_id)
        return AgentResult(
            agent_id=result.agent_id,
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
            metadata=result.metadata,
        )

    async def _synthesize(self, run: RunContext) -> None:
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
                output = await self.synthesize_results(succeeded, context)
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
            self.record_synthesis(synthesis, final=True, started=started)

    def record_synthesis(
        self, synthesis: SynthesisResult, *, final: bool = False, started: float | None = None
    ) -> SynthesisResult:
        """Record a synthesis (patterns call this for intermediate tiers; ``final`` marks
        the run's answer).  Its cost and usage are taken from the calls billed to its
        ``agent_id``."""
        scope = current_scope()
        if scope is None:
            raise RuntimeError("record_synthesis() can only be called while a run is in progress")
        run = scope.run
        tracked = run.state.usage_by_agent.get(synthesis.agent_id)
        changes: dict[str, Any] = {}
        if tracked is not None:
            changes.update(cost=tracked.cost_usd, usage=tracked)
        if started is not None and not synthesis.execution_time:
            changes["execution_time"] = time.perf_counter() - started
        synthesis = replace(synthesis, **changes)
        run.emit(
            EventType.SYNTHESIS_COMPLETE,
            {"synthesis": synthesis.to_dict(), "final": final},
            synthesis.agent_id,
        )
        return synthesis

    async def _finish(self, run: RunContext, synthesis_error: str | None = None) -> None:
        results = list(run.results.values())
        done = [r for r in results if r.status is TaskStatus.COMPLETED]
        status, error = TaskStatus.COMPLETED, None
        if synthesis_error is not None:
            status, error = TaskStatus.PARTIAL, synthesis_error
        elif run.stop_reason is TaskStatus.BUDGET_EXCEEDED:
            status = TaskStatus.BUDGET_EXCEEDED
            error = (
                f"budget of ${run.budget.cap:.4f} reached after ${run.budget.spent:.4f}; "
                f"{len(done)} of {len(results)} subtasks completed"
            )
        elif not done:
            status = TaskStatus.FAILED
            first = next((r.error for r in results if r.error), "unknown error")
            error = f"all {len(results)} subtasks failed; first error: {first}"
        elif len(done) < len(results):
            status = TaskStatus.PARTIAL
            failed = [f"{r.subtask_id}: {r.error}" for r in results if r.status is not TaskStatus.COMPLETED]
            error = f"{len(failed)} of {len(results)} subtasks did not complete ({'; '.join(failed[:3])})"
        if run.outcome_status is not None and status in (TaskStatus.COMPLETED, TaskStatus.PARTIAL):
            status = run.outcome_status
        if run.outcome_error:
            error = f"{error}; {run.outcome_error}" if error else run.outcome_error
        if self.config.generate_documents:
            error = await self._write_documents(run, status, error)
        self._end(run, status, error)

    async def _write_documents(self, run: RunContext, status: TaskStatus, error: str | None) -> str | None:
        from .reports import write_reports

        formats = list(self.config.document_formats)
        run.emit(EventType.DOCUMENT_GENERATION_START, {"formats": formats})
        preview = replace(run.state.to_result(), status=status, error=error)
        try:
            events = await self.store.events(run.run_id) if run.log.store_error is None else None
            documents = await asyncio.to_thread(
                write_reports, preview, formats, self.config.output_directory, events=events
            )
        except Exception as failure:
            message = f"report generation failed: {_describe(failure)}"
            run.emit(EventType.DOCUMENT_GENERATION_COMPLETE, {"documents": [], "error": message})
            return f"{error}; {message}" if error else message
        run.emit(EventType.DOCUMENT_GENERATION_COMPLETE, {"documents": [d.to_dict() for d in documents]})
        return error

    def _end(self, run: RunContext, status: TaskStatus, error: str | None) -> None:
        if run.log.store_error is not None:
            note = f"event store failed: {_describe(run.log.store_error)}"
            error = f"{error}; {note}" if error else note
            if status is TaskStatus.COMPLETED:
                status = TaskStatus.PARTIAL
        kind = {
            TaskStatus.COMPLETED: EventType.WORKFLOW_COMPLETE,
            TaskStatus.PARTIAL: EventType.WORKFLOW_COMPLETE,
            TaskStatus.CANCELLED: EventType.WORKFLOW_CANCELLED,
        }.get(status, EventType.WORKFLOW_ERROR)
        data: dict[str, Any] = {"status": str(status), "total_cost": run.state.total_cost}
        if run.outcome_metadata:
            data["metadata"] = dict(run.outcome_metadata)
        if error:
            data["error"] = error
        run.emit(kind, data)

    # -- services for subclasses ---------------------------------------------------------

    async def call_llm(
        self,
        prompt: str | Sequence[Mapping[str, Any]],
        *,
        system: str | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stream: bool = False,
        **options: Any,
    ) -> Completion:
        """Call the model through the framework: retries, fallback chain, budget, events, cost.

        ``prompt`` is a user message or a full message list.  ``model`` defaults to the
        subtask's model, then ``config.primary_model``; ``config.fallback_model`` follows.
        With ``stream=True`` deltas are emitted as ``token_delta`` events as they arrive.
        Tokens and cost are billed to the agent whose subtask is running.
        """
        if isinstance(prompt, str):
            messages: list[Mapping[str, Any]] = [{"role": "user", "content": prompt}]
        else:
            messages = [dict(m) for m in prompt]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        primary = model or self.config.primary_model or getattr(self.llm, "model", None)
        request = CompletionRequest(
            messages=messages,
            model=primary,
            max_tokens=max_tokens or self.config.max_tokens,
            temperature=temperature if temperature is not None else self.config.temperature,
            options=options,
        )
        fallbacks = self.config.fallback_models
        chain = [primary, *[m for m in fallbacks if m != primary]] if fallbacks else [primary]
        policy = None if current_scope() is not None else self._retry_policy(subtask_level=False)
        return await call_model(
            self.llm,
            request,
            chain,
            config=self.config,
            prices=self.prices,
            default_policy=policy,
            stream=stream,
        )

    def emit_event(
        self, kind: EventType, data: Mapping[str, Any] | None = None, agent_id: str | None = None
    ) -> None:
        """Emit an event on the current run (for patterns: iterations, branches, tiers)."""
        scope = current_scope()
        if scope is None:
            raise RuntimeError("emit_event() can only be called while a run is in progress")
        scope.run.emit(kind, data, agent_id if agent_id is not None else scope.agent_id)

    def set_outcome(
        self,
        status: TaskStatus | None = None,
        error: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Tell the engine how the current run went, in the pattern's own terms.

        ``status`` replaces COMPLETED/PARTIAL (never a budget stop, cancellation or
        failure); ``error`` is added to the result's error; ``metadata`` is merged into
        ``OrchestratorResult.metadata``.  E.g. an iterative pattern that hit its cap:
        ``self.set_outcome(TaskStatus.PARTIAL, "did not converge in 5 iterations",
        {"converged": False})``.
        """
        scope = current_scope()
        if scope is None:
            raise RuntimeError("set_outcome() can only be called while a run is in progress")
        run = scope.run
        if status is not None:
            run.outcome_status = TaskStatus(status)
        if error:
            run.outcome_error = error
        if metadata:
            run.outcome_metadata.update(metadata)

    @contextmanager
    def agent(self, agent_id: str) -> Iterator[None]:
        """Bill model calls made inside the block to ``agent_id`` (e.g. a synthesis tier)."""
        scope = current_scope()
        if scope is None:
            raise RuntimeError("agent() can only be used while a run is in progress")
        with attributed(scope.run, agent_id):
            yield

    def _retry_policy(self, *, subtask_level: bool) -> RetryPolicy:
        config = self.config
        retry_if = _subtask_retryable if subtask_level else is_retryable
        return RetryPolicy(
            max_retries=config.max_retries,
            base_delay=config.retry_base_delay,
            max_delay=config.retry_max_delay,
            retry_if=retry_if,
        )


def _subtask_retryable(error: BaseException) -> bool:
    return is_retryable(error) and not getattr(error, EXHAUSTED, False)


def _require_reports() -> None:
    try:
        from . import reports  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            f"generate_documents=True needs the report writers, which failed to import ({error}); "
            "reinstall multi-agent-orchestration or set generate_documents=False"
        ) from error


def _agent_id(subtask: SubTask) -> str:
    return f"agent_{subtask.id}"


def _title_from(task: str) -> str:
    line = " ".join(task.split())
    return line if len(line) <= 80 else line[:77] + "..."


def _describe(error: BaseException) -> str:
    text = redact(str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


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
        elif isinstance(item, Mapping) and "description" in item:
            subtasks.append(SubTask.from_dict({"id": f"subtask_{index + 1}", **item}))
        elif isinstance(item, str) and item.strip():
            subtasks.append(SubTask(id=f"subtask_{index + 1}", description=item.strip()))
        else:
            raise PlanError(f"decompose_task item {index} is not a SubTask: {item!r}"[:300])
    return subtasks
