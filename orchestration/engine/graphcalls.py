"""Model calls from graph nodes, through the framework: budget, retries, fallbacks, the bill.

A graph run given a provider (``graph.run(handlers, provider=..., config=...)``) lets
its handlers call ``await ctx.call_llm(prompt)``: the same path as
``BaseOrchestrator.call_llm`` (admission against the run's budget before the call is
sent, retries and the fallback chain of ``config``, real usage priced and settled), with
tokens and cost billed to the node.  The call's events (``cost_update``,
``model_fallback``, warnings) go into the graph run's one ordered log, beside its graph
events, so stores, SSE, resume and the bill see them like any other run's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..admission import carry_in_flight
from ..budget import Budget
from ..config import OrchestratorConfig
from ..errors import StoreError, describe
from ..events import EventType, StreamEvent
from ..llm import Completion, CompletionRequest, as_provider
from ..modelcall import call_model
from ..pricing import PriceTable
from ..replay import Recording
from ..retry import RetryPolicy, is_retryable
from ..stores.ledger import ledger_of
from ..toolcalls import OutputSchema, ToolSpec
from ..usage import Usage
from .run import RunContext, attributed
from .state import RunState

if TYPE_CHECKING:
    from .core import Node
    from .graphrun import GraphRun

__all__ = ["GraphLog", "ModelAccess"]

_EMPTY: Mapping[str, Any] = {}


class GraphLog:
    """The face of an event log that model calls use, over a graph run's one log.

    ``state`` folds the non-graph events (costs, fallbacks, warnings) the way orchestrator
    runs fold them, so the graph run's bill is computed by the same rules.
    """

    def __init__(self, run: GraphRun) -> None:
        self._run = run
        self.state = RunState(run.run_id)
        self.durable = True
        self.store_error: BaseException | None = None

    def emit(
        self, kind: EventType, data: Mapping[str, Any] | None = None, agent_id: str | None = None
    ) -> StreamEvent:
        """Record one event in the graph run's log (folded into :attr:`state` first)."""
        payload = _EMPTY if data is None else data
        progress = self.state.apply(kind, payload, agent_id, time.time())
        return self._run.emit_stream(kind, payload, agent_id, progress)

    def replay(self, events: Sequence[StreamEvent]) -> None:
        """Fold stored non-graph events (a resumed run's earlier costs)."""
        for event in events:
            self.state.apply(event.event_type, event.data, event.agent_id, event.timestamp)

    async def flush(self) -> None:
        """Wait until everything emitted so far is stored (a call's reservation is durable
        before the call is sent)."""
        await self._run.flushed()

    async def writable(self) -> None:
        """:meth:`flush`, then raise StoreError if the store failed."""
        await self.flush()
        if self.store_error is not None:
            raise StoreError(
                f"the run's store failed ({describe(self.store_error)}); no more model calls are made"
            )


class _Body:
    """What a guard or the admission sees as the run's task: stopping it stops the graph run."""

    def __init__(self, run: GraphRun) -> None:
        self._run = run

    def cancel(self, msg: Any = None) -> bool:
        context = self._run.models.context if self._run.models is not None else None
        reason = (context.abort_reason if context is not None else None) or str(msg or "stopped")
        self._run.abort(reason)
        return True

    def get_loop(self) -> Any:
        import asyncio

        return asyncio.get_running_loop()


class ModelAccess:
    """A graph run's provider, settings and budget, and the context its model calls run in."""

    def __init__(
        self,
        run: GraphRun,
        provider: Any,
        config: OrchestratorConfig | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self.config = config if config is not None else OrchestratorConfig()
        self.prices = prices if prices is not None else PriceTable()
        self.log = GraphLog(run)
        policy = RetryPolicy(
            max_retries=self.config.max_retries,
            base_delay=self.config.retry_base_delay,
            max_delay=self.config.retry_max_delay,
            retry_if=is_retryable,
        )
        self.context = RunContext(
            run_id=run.run_id,
            task=run.title,
            title=run.title,
            context={},
            log=self.log,  # type: ignore[arg-type]  # the part of EventLog model calls use
            budget=Budget(self.config.max_total_cost),
            subtask_policy=policy,
            call_policy=policy,
            llm=as_provider(provider),
            started_at=time.monotonic(),
        )
        self.context.body = _Body(run)  # type: ignore[assignment]
        self.context.owner = run._owner
        self._run = run

    def resume(self, events: Sequence[StreamEvent]) -> None:
        """Pick a stored run up: count what it spent (its cap covers the whole run), hold
        calls that were in flight at their worst case, and answer the calls it already paid
        for from its recording (a node that runs again after a crash or an answer asks the
        same things: they are not paid twice, and an approval applies to what was shown)."""
        self.log.replay(events)
        self.context.budget.charge(self.log.state.total_cost)
        self.context.recording = Recording(events)
        carry_in_flight(self.context, events)

    @property
    def usage(self) -> Usage:
        """Tokens and cost of every call so far."""
        return self.log.state.usage

    async def call(
        self,
        node: Node,
        prompt: str | Sequence[Mapping[str, Any]],
        *,
        system: str | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stream: bool = False,
        tools: Sequence[ToolSpec | Mapping[str, Any]] = (),
        tool_choice: str | None = None,
        parallel_tool_calls: bool | None = None,
        response_format: OutputSchema | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Completion:
        """One model call billed to ``node`` (see the module docstring).

        ``tools`` (:class:`~orchestration.toolcalls.ToolSpec` objects, or dicts in OpenAI's
        or Anthropic's shape), ``tool_choice``, ``parallel_tool_calls`` and
        ``response_format`` are those of :class:`~orchestration.llm.CompletionRequest`: the
        answer's ``tool_calls`` (recorded, so a resumed run gets the same ones back
        without paying again) or its validated ``parsed`` value.
        """
        config = self.config
        if (
            self.context.ledger is None and self._run.store is not None
        ):  # the store is known once the run runs
            self.context.ledger = ledger_of(self._run.store)
        messages: list[Mapping[str, Any]] = (
            [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
        )
        if system:
            messages.insert(0, {"role": "system", "content": system})
        primary = model or node.model or config.primary_model or getattr(self.context.llm, "model", None)
        request = CompletionRequest(
            messages=messages,
            model=primary,
            max_tokens=max_tokens or config.max_tokens,
            temperature=temperature if temperature is not None else config.temperature,
            options=options,
            tools=tuple(tools),  # type: ignore[arg-type]  # dicts become ToolSpecs in the request
            tool_choice=tool_choice,
            parallel_tool_calls=parallel_tool_calls,
            response_format=response_format,  # type: ignore[arg-type]  # a dict becomes an OutputSchema
        )
        chain = (
            [primary, *[m for m in config.fallback_models if m != primary]]
            if config.fallback_model
            else [primary]
        )
        with attributed(self.context, node.id, node.model):
            return await call_model(
                self.context.llm, request, chain, config=config, prices=self.prices, stream=stream
            )
