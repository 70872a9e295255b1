"""One model call through the framework: budget, retries, fallback chain, events, cost.

For each model in the chain (primary, then fallbacks): reserve the call's worst-case
cost (prompt tokens counted offline + ``max_tokens``, at the model's prices), call the
provider with retries (each attempt under the configured timeout), price the real usage,
settle the reservation and emit a ``cost_update`` event billed to the current agent.
When a model fails for good the next one is tried (``model_fallback`` event).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .budget import Reservation
from .config import OrchestratorConfig
from .engine import guard
from .engine.run import RunContext, current_scope
from .errors import BudgetExceededError, StoreError, describe
from .events import EventType
from .llm import Completion, CompletionRequest, Provider
from .pricing import PriceTable
from .retry import RetryPolicy, retry_call
from .tokens import count_message_tokens, count_tokens
from .usage import Usage

__all__ = ["EXHAUSTED", "call_model"]

#: Attribute set on an error that already went through the call-level retries and
#: fallbacks, so the subtask-level retry does not multiply them.
EXHAUSTED = "orchestration_exhausted"


async def call_model(
    llm: Provider,
    request: CompletionRequest,
    models: Sequence[str | None],
    *,
    config: OrchestratorConfig,
    prices: PriceTable,
    default_policy: RetryPolicy | None = None,
    stream: bool = False,
) -> Completion:
    """Answer ``request`` with the first model of ``models`` that succeeds.

    Inside a run the run's retry policy applies (and every phase of a run has its own
    timeout); outside one, ``default_policy`` and ``config.timeout_seconds`` do.
    """
    scope = current_scope()
    run = scope.run if scope is not None else None
    agent_id = scope.agent_id if scope is not None else None
    last_error: BaseException | None = None
    for index, model in enumerate(models):
        attempt_request = request if request.model == model else replace(request, model=model)
        policy = run.call_policy if run is not None else default_policy or RetryPolicy(max_retries=0)
        try:
            return await _call_one(
                llm,
                attempt_request,
                run,
                agent_id,
                config=config,
                prices=prices,
                policy=policy,
                stream=stream,
            )
        except (
            BudgetExceededError,
            asyncio.CancelledError,
            guard.GuardrailRejectedError,
            guard.RunPausedError,
            StoreError,
        ):
            raise  # a decision about the run, not a failure of this model: no fallback
        except Exception as error:
            last_error = error
            if index + 1 < len(models):
                if run is not None:
                    run.emit(
                        EventType.MODEL_FALLBACK,
                        {"from_model": model, "to_model": models[index + 1], "error": describe(error)},
                        agent_id,
                    )
                continue
            _mark_exhausted(error)
            raise
    raise AssertionError(f"no model to call (last error: {last_error!r})")  # models is never empty


async def _call_one(
    llm: Provider,
    request: CompletionRequest,
    run: RunContext | None,
    agent_id: str | None,
    *,
    config: OrchestratorConfig,
    prices: PriceTable,
    policy: RetryPolicy,
    stream: bool,
) -> Completion:
    tracking = config.enable_cost_tracking
    fingerprint = request.fingerprint() if run is not None else ""
    if run is not None and run.recording is not None:
        recorded = run.recording.take(fingerprint)
        if recorded is not None:  # paid for before the interruption: its event is in the log already
            return recorded
    if run is not None:
        try:
            await run.log.writable()  # never pay for a call while the store cannot keep the run's events
        except StoreError:
            _abort(run)
            raise
    reservation: Reservation | None = None
    prompt_tokens = 0
    guarded = run is not None and run.guardrails is not None
    max_tokens = request.max_tokens or 0
    if run is not None and (run.budget.cap is not None or guarded):
        worst, prompt_tokens = _worst_case(request, prices)
        if guarded:  # decide first (nothing is held yet), then hold: no await in between
            guard.before_call(run, worst, prompt_tokens, max_tokens, agent_id)
        reservation = run.budget.reserve(worst)
        if guarded:
            guard.hold(run, prompt_tokens, max_tokens)
    started = time.monotonic() if guarded else 0.0

    try:
        try:  # the first attempt runs without the retry machinery: the common path stays cheap
            if run is not None and not stream:
                completion = await llm.complete(request)
            else:
                completion = await _attempt(llm, request, run, agent_id, config, stream)
        except Exception as error:
            completion = await _retry(llm, request, run, agent_id, config, stream, policy, error)
    except BaseException:
        if reservation is not None and run is not None:
            run.budget.release(reservation)
            if guarded:
                guard.release(run, prompt_tokens, max_tokens)
        raise
    model = completion.model or request.model or getattr(llm, "name", "unknown")
    usage = completion.usage
    if tracking and usage.cost_usd == 0:
        cost = prices.cost(model, usage)
        if cost is None:
            cost = 0.0
            if run is not None:
                run.warn_once(
                    f"price:{model}",
                    f"model {model!r} has no price in the price table; its calls are billed at $0 "
                    "(add it with PriceTable({...}))",
                )
        usage = usage.with_cost(cost)
    elif not tracking or usage.calls == 0:
        usage = usage.with_cost(usage.cost_usd if tracking else 0.0)
    if run is not None:
        if reservation is not None:
            run.budget.settle(reservation, usage.cost_usd)
            if guarded:
                guard.release(run, prompt_tokens, max_tokens, observe=False)  # after_call observes
        elif tracking:
            run.budget.charge(usage.cost_usd)
        run.emit(
            EventType.COST_UPDATE,
            {
                "model": model,
                "usage": usage.to_dict(),
                "cost": usage.cost_usd,
                "total_cost": run.state.total_cost + usage.cost_usd,
                "provider": completion.provider,
                "request_hash": fingerprint,
                "response": completion.content,
                "finish_reason": completion.finish_reason,
            },
            agent_id,
        )
        if run.log.durable:
            await run.log.flush()  # a paid-for answer is durable before the run relies on it
        if guarded:
            guard.after_call(run, usage, (time.monotonic() - started) * 1000, agent_id)
    return Completion(
        completion.content, usage, model, completion.finish_reason, completion.request_id, completion.provider
    )


async def _attempt(
    llm: Provider,
    request: CompletionRequest,
    run: RunContext | None,
    agent_id: str | None,
    config: OrchestratorConfig,
    stream: bool,
) -> Completion:
    """One attempt; outside a run it carries its own timeout (inside, the phase's applies)."""
    if run is None:
        async with asyncio.timeout(config.timeout_seconds):
            return await _one_call(llm, request, run, agent_id, stream)
    return await _one_call(llm, request, run, agent_id, stream)


async def _one_call(
    llm: Provider, request: CompletionRequest, run: RunContext | None, agent_id: str | None, stream: bool
) -> Completion:
    if stream and hasattr(llm, "stream"):
        return await _streamed(llm, request, run, agent_id)
    return await llm.complete(request)


async def _retry(
    llm: Provider,
    request: CompletionRequest,
    run: RunContext | None,
    agent_id: str | None,
    config: OrchestratorConfig,
    stream: bool,
    policy: RetryPolicy,
    first_error: Exception,
) -> Completion:
    """Retry after a failed first attempt, emitting a ``model_retry`` event before each wait."""

    def on_retry(number: int, error: BaseException, wait: float) -> None:
        if run is not None:
            run.emit(
                EventType.MODEL_RETRY,
                {"model": request.model, "attempt": number, "error": describe(error), "wait_seconds": wait},
                agent_id,
            )

    return await retry_call(
        lambda: _attempt(llm, request, run, agent_id, config, stream),
        policy,
        on_retry=on_retry,
        first_error=first_error,
    )


async def _streamed(
    llm: Provider, request: CompletionRequest, run: RunContext | None, agent_id: str | None
) -> Completion:
    parts: list[str] = []
    usage: Usage | None = None
    model: str | None = None
    finish: str | None = None
    stream = llm.stream(request)  # type: ignore[attr-defined]
    try:
        async for chunk in stream:
            if chunk.delta:
                parts.append(chunk.delta)
                if run is not None:
                    run.emit(EventType.TOKEN_DELTA, {"delta": chunk.delta}, agent_id)
            usage = chunk.usage or usage
            model = chunk.model or model
            finish = chunk.finish_reason or finish
    except Exception as error:
        if parts:  # content was already delivered: a retry would bill and show it twice
            _set(error, "no_retry", True)
        raise
    content = "".join(parts)
    if usage is None:
        usage = Usage(
            input_tokens=count_message_tokens(request.messages, request.model).tokens,
            output_tokens=count_tokens(content, request.model).tokens,
            calls=1,
            estimated=True,
        )
    return Completion(
        content=content,
        usage=usage,
        model=model or request.model,
        finish_reason=finish,
        provider=getattr(llm, "name", None),
    )


def _worst_case(request: CompletionRequest, prices: PriceTable) -> tuple[float, int]:
    """The most this call can cost (prompt counted, ``max_tokens`` out) and its prompt tokens."""
    prompt = count_message_tokens(request.messages, request.model).tokens
    price = prices.lookup(request.model)
    if price is None:
        return 0.0, prompt
    return price.cost(Usage(input_tokens=prompt, output_tokens=request.max_tokens or 0)), prompt


def _abort(run: RunContext) -> None:
    """Stop the whole run now (as a lost lease does): its store failed; ``_end`` says how."""
    if run.abort_reason is None:
        run.abort_reason = "the run's store stopped accepting events, so no more model calls are made"
        run.cancel_requested = True
        if run.body is not None:
            run.body.cancel()


def _set(error: BaseException, name: str, value: Any) -> None:
    with contextlib.suppress(AttributeError):  # some built-in exceptions refuse attributes
        setattr(error, name, value)


def _mark_exhausted(error: BaseException) -> None:
    _set(error, EXHAUSTED, True)
