"""``BaseOrchestrator``: decompose -> execute subtasks as a graph -> synthesize.

Subclasses implement three async hooks; the framework does the rest: validation of the
plan, critical-path scheduling under the concurrency cap, per-subtask timeouts, retries
with backoff, the fallback model chain, budget reservations, cost accounting,
cancellation, durable runs that resume after a crash, record and replay, and one ordered
event stream that the result is computed from.

Model calls go through :meth:`BaseOrchestrator.call_llm`, which attributes tokens and
cost to the agent that made them.  A subclass that calls its provider directly (as the
seed README's example does, ``self.provider.complete(...)``) is metered the same way:
``self.provider`` is a view of the provider object that admits every call against the
budget and bills it to the agent (:mod:`orchestration.metered`).  A cost reported in
``AgentResult.cost`` is added to the bill only for an agent none of whose calls were
metered (e.g. a client the hook holds itself).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
import uuid
from collections.abc import Container, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .admission import carry_in_flight, check_prices
from .budget import Budget
from .config import OrchestratorConfig
from .engine import leases
from .engine.callbacks import StreamCallback, StreamCallbacks, as_callbacks
from .engine.driver import WorkflowDriver, title_from
from .engine.eventlog import EventLog
from .engine.leases import new_owner
from .engine.run import RunContext, attributed, current_scope
from .engine.state import RunState
from .errors import ConfigError, RunLeasedError, RunNotFoundError, describe
from .events import EventType
from .llm import Completion, CompletionRequest, Provider, as_provider
from .metered import MeteredProvider, MissingProvider
from .modelcall import EXHAUSTED, call_model
from .models import AgentResult, OrchestratorResult, SubTask, SynthesisResult, TaskStatus
from .pricing import PriceTable
from .replay import RecordedProvider, Recording
from .retry import RetryPolicy, is_retryable
from .stores import default_store
from .stores.base import RunStore
from .stores.ledger import ledger_of

if TYPE_CHECKING:
    from .guardrails import Guardrails

__all__ = ["BaseOrchestrator", "RunContext", "RunLeasedError"]


_POLL_SECONDS = 0.5


class BaseOrchestrator(abc.ABC):
    """Base class for every orchestrator.

    Args:
        config: an :class:`OrchestratorConfig` (or a pattern's subclass of it).
        provider: a :class:`~orchestration.llm.Provider`, or any object with
            ``complete(messages, **kwargs)`` / ``chat(...)``; kept as ``self.provider``.
        store: where runs' events go (default: ``$ORCHESTRATION_DATABASE_URL`` if set, else
            the SQLite file ``.orchestration/runs.db`` under the working directory).
        prices: the price table used for cost (default: the built-in, dated table).
        guardrails: guardrail policies enforced before and after every model call.
        labels: run labels (e.g. ``{"tenant": "acme"}``) recorded with every run and
            used by tenant-scoped guardrails.
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
        guardrails: Guardrails | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, OrchestratorConfig):
            raise ConfigError(f"config must be an OrchestratorConfig, got {type(self.config).__name__}")
        errors = self.config.validate()
        if errors:
            raise ConfigError(errors)
        if self.config.generate_documents:
            _require_reports()
        self.provider = provider  # kept as a metered view (see the property)
        self.store: RunStore = store if store is not None else default_store()
        self.prices = prices if prices is not None else PriceTable()
        self.guardrails = guardrails
        self.labels = dict(labels or {})
        self._runs: dict[str, RunContext] = {}

    @property
    def provider(self) -> Any:
        """The provider object, as a metered view: calls through it are budgeted and billed
        to the current agent like :meth:`call_llm` (``.unwrapped`` is the object itself)."""
        return self._metered

    @provider.setter
    def provider(self, provider: Any) -> None:
        # A provider is needed only when a model call is made: without one, that call fails.
        self.llm: Provider = as_provider(provider) if provider is not None else MissingProvider()
        self._metered = MeteredProvider(self, provider)

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
        Returns True if anything was cancelled.  To cancel a run another process drives,
        use ``await store.request_cancel(run_id)`` (``orchestrate cancel RUN_ID``).
        """
        if run_id is None:
            runs = list(self._runs.values())
        else:
            runs = [self._runs[run_id]] if run_id in self._runs else []
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
        stream_callback: StreamCallbacks | None = None,
        *,
        run_id: str | None = None,
    ) -> OrchestratorResult:
        """Run the whole workflow and return its result (never raises for agent failures).

        ``stream_callback`` (sync or async, or a list of them) receives every event in
        ``seq`` order, through its own queue: one that raises, takes longer than
        ``config.callback_timeout_seconds`` on an event or falls too far behind is reported
        as a ``callback_error`` event and gets no more events; the run goes on and returns
        on time.  Sync callbacks run in a thread of their own (see
        :mod:`orchestration.engine.callbacks`).
        """
        run_id, callbacks = await self._admit_new_run(task, context, stream_callback, run_id, self._runs)
        owner = await self._take_lease(run_id, wait=False)
        run = self._new_run(run_id, task, title or title_from(task), dict(context or {}), callbacks)
        return await self._execute(run, owner, resumed=False)

    async def resume(
        self, run_id: str, stream_callback: StreamCallbacks | None = None, *, wait: bool = False
    ) -> OrchestratorResult:
        """Continue an interrupted (or paused) run from its stored events.

        The plan and every completed subtask come from the store; only unfinished work
        runs, and model calls that were already paid for are answered from the run's
        recording.  A FAILED or PARTIAL run runs its failed and never-run subtasks again
        (and the synthesis); any other finished run just returns its result.  If another process holds the
        run's lease, raises :class:`RunLeasedError` (with ``wait=True``, waits up to one
        lease period for it to expire, e.g. after that process crashed).
        """
        callbacks = as_callbacks(stream_callback)
        if await self.store.get_run(run_id) is None:
            raise RunNotFoundError(f"no run {run_id!r} in the store")
        if run_id in self._runs:
            raise RunLeasedError(f"run {run_id!r} is already in progress in this process")
        owner = await self._take_lease(run_id, wait=wait)  # before reading: the run is ours now
        try:
            state = await self.load_state(run_id)
            aborted = (state.error or "").startswith("aborted:")  # a guardrail's or a lost lease's verdict
            if state.status.is_terminal and (state.status not in _RERUNNABLE or aborted):
                await self.store.release_lease(run_id, owner)
                return state.to_result()
            events = await self.store.events(run_id)
            start = next((e for e in events if e.event_type is EventType.WORKFLOW_START), None)
            context = dict(start.data.get("context") or {}) if start is not None else {}
            run = self._new_run(run_id, state.task, state.title, context, callbacks, state=state)
            run.recording = Recording(events)
            carry_in_flight(run, events)
            await self.store.clear_cancel(run_id)  # resuming is a decision to go on
        except BaseException:
            await self.store.release_lease(run_id, owner)
            raise
        return await self._execute(run, owner, resumed=True)

    async def replay(
        self,
        run_id: str,
        *,
        live: bool = False,
        task: str | None = None,
        context: dict[str, Any] | None = None,
        stream_callback: StreamCallbacks | None = None,
    ) -> OrchestratorResult:
        """Run a recorded run again with zero provider calls (a new run id).

        Every model request is answered from the recorded run's responses, so the same
        routing decisions and outputs come back.  A request that is not in the recording
        raises :class:`~orchestration.replay.ReplayMismatchError` inside the run (the run
        reports it), unless ``live=True`` sends it to this orchestrator's provider.  A
        changed ``task`` or ``context`` forks the run: what is unchanged is replayed,
        what changed goes live (``live`` is implied).
        """
        callbacks = as_callbacks(stream_callback)
        events = await self.store.events(run_id)
        start = next((e for e in events if e.event_type is EventType.WORKFLOW_START), None)
        if start is None:
            raise RunNotFoundError(f"no run {run_id!r} in the store")
        forked = task is not None or context is not None
        provider = RecordedProvider(
            Recording(events), live=self.llm if (live or forked) else None, run_id=run_id
        )
        new_id = uuid.uuid4().hex[:16]
        owner = await self._take_lease(new_id, wait=False)
        run = self._new_run(
            new_id,
            task if task is not None else str(start.data.get("task", "")),
            str(start.data.get("title", "")),
            dict(context if context is not None else start.data.get("context") or {}),
            callbacks,
        )
        run.llm = provider
        run.replay_of = {"run_id": run_id, "live": live or forked, "forked": forked}
        result = await self._execute(run, owner, resumed=False)
        return replace(
            result,
            metadata={
                **result.metadata,
                "replay_of": run_id,
                "served_from_recording": provider.served,
                "live_calls": provider.live_calls,
            },
        )

    async def load_state(self, run_id: str) -> RunState:
        """A stored run's state (from its latest snapshot plus the events after it)."""
        snapshot = await self.store.load_snapshot(run_id)
        if snapshot is not None:
            seq, data = snapshot
            return RunState.from_snapshot(data, await self.store.events(run_id, after_seq=seq))
        events = await self.store.events(run_id)
        if not events:
            raise RunNotFoundError(f"no run {run_id!r} in the store")
        return RunState.from_events(run_id, events)

    async def _admit_new_run(
        self,
        task: str,
        context: Mapping[str, Any] | None,
        stream_callback: StreamCallbacks | None,
        run_id: str | None,
        in_progress: Container[str],
    ) -> tuple[str, list[StreamCallback]]:
        """Check a new run's arguments; its run id and callbacks.  A run id in progress here
        (``in_progress``) or already in the store is refused, as are prices the cap needs."""
        if not isinstance(task, str) or not task.strip():
            raise ConfigError("task must be a non-empty string describing what to do")
        if context is not None and not isinstance(context, Mapping):
            raise ConfigError(f"context must be a dict, got {type(context).__name__}")
        callbacks = as_callbacks(stream_callback)
        run_id = run_id or uuid.uuid4().hex[:16]
        if run_id in in_progress:
            raise ConfigError(f"run {run_id!r} is already in progress")
        if await self.store.get_run(run_id) is not None:
            raise ConfigError(
                f"run {run_id!r} already exists in the store; continue it with resume({run_id!r}) "
                "or start a new run with another run_id"
            )
        check_prices(self.config, self.prices, self.llm)
        return run_id, callbacks

    def _new_run(
        self,
        run_id: str,
        task: str,
        title: str,
        context: dict[str, Any],
        callbacks: Sequence[StreamCallback],
        *,
        state: RunState | None = None,
    ) -> RunContext:
        durable = getattr(self.store, "durable", True)
        log = EventLog(
            run_id,
            self.store,
            callbacks,
            state=state,
            durable=durable,
            callback_timeout_seconds=self.config.callback_timeout_seconds,
            callback_queue_size=self.config.callback_queue_size,
        )
        budget = Budget(self.config.max_total_cost)
        if state is not None:
            budget.charge(state.total_cost)  # a resumed run's cap counts what was spent before
        return RunContext(
            run_id=run_id,
            task=task,
            title=title,
            context=context,
            log=log,
            budget=budget,
            subtask_policy=self._retry_policy(subtask_level=True),
            call_policy=self._retry_policy(subtask_level=False),
            llm=self.llm,
            guardrails=self.guardrails,
            labels=self.labels,
            started_at=time.monotonic(),
            ledger=ledger_of(self.store),
        )

    async def _execute(self, run: RunContext, owner: str, *, resumed: bool) -> OrchestratorResult:
        """Drive ``run`` (whose lease ``owner`` holds) to its end and return its result."""
        self._runs[run.run_id] = run
        run.log.fence = owner  # an append after another process took the run over is refused
        run.owner = owner
        driver = WorkflowDriver(self)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(run.log.dispatch())
                run.body = group.create_task(driver.drive(run, resumed=resumed))
                watcher = group.create_task(self._watch(run, owner))
                try:
                    await asyncio.wait([run.body])
                finally:
                    watcher.cancel()
                    run.log.close()
        except BaseException:  # cancelled (or broken): keep what happened, then honour it
            await run.log.deliver_pending()
            raise
        finally:
            self._runs.pop(run.run_id, None)
            with contextlib.suppress(Exception):
                await self.store.release_lease(run.run_id, owner)
        return run.state.to_result(run.results, run.plan.subtasks if run.plan is not None else None)

    async def _take_lease(self, run_id: str, *, wait: bool) -> str:
        """Take the run's lease for this process (every store, memory ones too); returns the owner."""
        owner = new_owner()
        await self._acquire_lease(run_id, owner, wait=wait)
        return owner

    async def _acquire_lease(self, run_id: str, owner: str, *, wait: bool) -> None:
        await leases.acquire(self.store, run_id, owner, self.config.lease_seconds, wait=wait)

    async def _watch(self, run: RunContext, owner: str) -> None:
        """Honour cancellation requested through the store, and renew ``owner``'s lease."""
        renew_every = self.config.lease_seconds / 3
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(min(_POLL_SECONDS, renew_every))
            try:
                if await self.store.cancel_requested(run.run_id):
                    self.cancel(run.run_id)
                    return
                if time.monotonic() - last_renewal >= renew_every:
                    if not await self.store.renew_lease(run.run_id, owner, self.config.lease_seconds):
                        self._lost_lease(run)
                        return
                    last_renewal = time.monotonic()
            except Exception as error:  # the store is unwell: the run goes on; its log says so
                run.warn_once("store-watch", f"could not poll the store for cancellation: {describe(error)}")

    def _lost_lease(self, run: RunContext) -> None:
        """Another process took the run over (this one stalled past its lease): stop now."""
        if run.abort_reason is None:
            run.abort_reason = (
                "lost the run's lease to another process (this process stalled for longer than "
                "lease_seconds); that process now drives the run"
            )
            run.cancel_requested = True
            if run.body is not None:
                run.body.cancel()

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
        tracked = run.state.usage_for(synthesis.agent_id)
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
        scope = current_scope()
        primary = (
            model
            or (scope.model if scope is not None else None)
            or self.config.primary_model
            or getattr(self.llm, "model", None)
        )
        request = CompletionRequest(
            messages=messages,
            model=primary,
            max_tokens=max_tokens or self.config.max_tokens,
            temperature=temperature if temperature is not None else self.config.temperature,
            options=options,
        )
        fallbacks = self.config.fallback_model  # usually None: skip building the chain
        chain = (
            [primary, *[m for m in self.config.fallback_models if m != primary]] if fallbacks else [primary]
        )
        policy = None if scope is not None else self._retry_policy(subtask_level=False)
        return await call_model(
            scope.run.llm if scope is not None else self.llm,
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

        ``status`` can only make the engine's verdict worse (COMPLETED < PARTIAL <
        PAUSED < FAILED; never over a budget stop or a cancellation); ``error`` is added to the result's error; ``metadata`` is merged into
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


#: Finished runs that ``resume`` takes up again: what did not complete runs once more.
_RERUNNABLE = (TaskStatus.FAILED, TaskStatus.PARTIAL)


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
