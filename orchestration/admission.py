"""Holding a model call against the run's budget and guardrails, and settling it after.

Every model call of a run goes through here, whether it is made with ``call_llm`` or
directly on ``self.provider`` (the metered view): :func:`hold_call` before the call is
sent, then :func:`finish_call` with its answer or :func:`release_call` if it failed.

- The worst case (prompt counted off the event loop, ``max_tokens`` out, at the model's
  price) is admitted by the budget; a call that does not fit waits for calls in flight to
  settle, and one that could not fit even with nothing in flight is refused with what
  would make it fit (a lower ``max_tokens``, a larger budget).
- With a cap, a model without a price is refused: its calls could not be held to the cap.
- With a cap, the reservation is an event (``call_reserved``), written to the store
  before the call is sent, so a resumed run counts calls that were in flight when the
  process died.  Without a cap nothing is written on this path.
- Then the call is held on the store's shared accounts (:mod:`._ledger_admission`): the
  run's budget and its labels' totals as every process sharing the store counts them.
  The events that end the call (``cost_update``, ``call_released``) name its hold, and
  the store settles it in the same transaction as it writes them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ._ledger_admission import accounts_of, reserve
from .budget import Reservation, unsettled_reservations
from .config import OrchestratorConfig
from .engine import guard
from .engine.run import RunContext
from .errors import BudgetExceededError, ConfigError
from .events import EventType, StreamEvent
from .llm import Completion, CompletionRequest
from .pricing import ModelPrice, PriceTable
from .tokens import count_message_tokens, count_message_tokens_async, count_tokens, count_tokens_async
from .usage import Usage
from .utils import format_usd

__all__ = [
    "Held",
    "carry_in_flight",
    "check_prices",
    "finish_call",
    "finish_call_now",
    "hold_call",
    "hold_call_now",
    "release_call",
    "unpriced_message",
]

logger = logging.getLogger("orchestration")


@dataclass(frozen=True, slots=True)
class Held:
    """What one admitted call holds until it settles."""

    reservation: Reservation
    prompt_tokens: int
    max_tokens: int
    guarded: bool
    reserved_seq: int | None  # the seq of its ``call_reserved`` event (runs with a cap)
    started: float
    hold: str | None = None  # its hold in the store's ledger
    charge_to: tuple[str, ...] = ()  # ledger accounts billed afterwards (a call that could not hold)


async def hold_call(
    run: RunContext, request: CompletionRequest, prices: PriceTable, agent_id: str | None
) -> Held | None:
    """Admit ``request`` (waiting for calls in flight if it does not fit yet), durably.

    Returns None when the run has neither a cap nor guardrails (nothing to hold).
    """
    budget = run.budget
    guarded = run.guardrails is not None
    if budget.cap is None and not guarded:
        return None
    prompt = (await count_message_tokens_async(request.counted_messages, request.model)).tokens
    worst = _worst_cost(run, request, prices, prompt)
    max_tokens = request.max_tokens or 0
    ready = None
    if guarded:

        def ready() -> bool:
            return guard.before_call(run, worst, prompt, max_tokens, agent_id)

    try:
        reservation = await budget.admit(worst, ready)
    except BudgetExceededError as error:
        raise _refusal(run, error, request, prices, prompt) from None
    if guarded:
        guard.hold(run, prompt, max_tokens)
    try:
        hold = await reserve(run, worst, prompt, max_tokens, agent_id)
    except BaseException as error:
        budget.release(reservation)
        if guarded:
            guard.release(run, prompt, max_tokens)
        if isinstance(error, BudgetExceededError):
            raise _refusal(run, error, request, prices, prompt, shared=True) from None
        raise
    held = _held(run, reservation, request, prompt, guarded, agent_id, hold)
    if held.reserved_seq is not None and run.log.durable:
        try:
            await run.log.flush()  # the reservation is in the store before the call is sent
        except BaseException:
            release_call(run, held)
            raise
    return held


def hold_call_now(
    run: RunContext, request: CompletionRequest, prices: PriceTable, agent_id: str | None
) -> Held | None:
    """:func:`hold_call` for a blocking call made on the event loop thread.

    It cannot wait: a call that does not fit while others are in flight is refused (they
    cannot settle while the loop is blocked), and the reservation is written with the
    next batch rather than before the call.
    """
    budget = run.budget
    guarded = run.guardrails is not None
    if budget.cap is None and not guarded:
        return None
    prompt = count_message_tokens(request.counted_messages, request.model).tokens
    worst = _worst_cost(run, request, prices, prompt)
    max_tokens = request.max_tokens or 0
    try:
        if guarded and not guard.before_call(run, worst, prompt, max_tokens, agent_id):
            reservation = None
        else:
            reservation = budget.try_reserve(worst)
    except BudgetExceededError as error:
        raise _refusal(run, error, request, prices, prompt) from None
    if reservation is None:
        raise BudgetExceededError(
            f"this call does not fit the budget while {budget.in_flight} other calls are in flight, and a "
            "blocking provider call on the event loop cannot wait for them; use `await self.call_llm(...)`, "
            "an async provider, or `await asyncio.to_thread(self.provider.complete, ...)`",
            cap=budget.cap or 0.0,
            spent=budget.spent,
            requested=worst,
        )
    if guarded:
        guard.hold(run, prompt, max_tokens)
    # A blocking call cannot wait for the store: it is billed to the shared accounts afterwards.
    return _held(run, reservation, request, prompt, guarded, agent_id, None, accounts_of(run))


def release_call(run: RunContext, held: Held) -> None:
    """The held call failed: free what it held (it is billed nothing)."""
    run.budget.release(held.reservation)
    if held.guarded:
        guard.release(run, held.prompt_tokens, held.max_tokens)
    if held.reserved_seq is not None or held.hold is not None:
        data: dict[str, Any] = {}
        if held.reserved_seq is not None:
            data["reservation"] = held.reserved_seq
        if held.hold is not None:
            data["hold"] = {"id": held.hold}
        run.emit(EventType.CALL_RELEASED, data)


async def finish_call(
    run: RunContext | None,
    held: Held | None,
    request: CompletionRequest,
    completion: Completion,
    agent_id: str | None,
    *,
    config: OrchestratorConfig,
    prices: PriceTable,
    llm: Any,
    fingerprint: str = "",
    started_at: float | None = None,
) -> Completion:
    """Price ``completion``, settle what the call held, bill it to ``agent_id`` (a
    ``cost_update`` event, durable before the answer is used) and apply the guardrails.

    ``started_at`` (wall-clock seconds) is when the call was first sent: with the event's
    own time it gives the call's span in traces.  Usage numbers that cannot be right (a
    provider's own negative, NaN or infinite counts) are counted offline instead, off the
    event loop, and reported (warning event and log).
    """
    if completion.usage.impossible():
        estimate = Usage(
            input_tokens=(await count_message_tokens_async(request.counted_messages, request.model)).tokens,
            output_tokens=(await count_tokens_async(completion.content, request.model)).tokens,
        )
        completion = _repaired(completion, estimate)
    completion = finish_call_now(
        run,
        held,
        request,
        completion,
        agent_id,
        config=config,
        prices=prices,
        llm=llm,
        fingerprint=fingerprint,
        started_at=started_at,
    )
    if run is not None:
        if run.log.durable:
            await run.log.flush()  # a paid-for answer is durable before the run relies on it
        if held is not None and held.guarded:
            latency = (time.monotonic() - held.started) * 1000
            guard.after_call(run, completion.usage, latency, agent_id)
    return completion


def finish_call_now(
    run: RunContext | None,
    held: Held | None,
    request: CompletionRequest,
    completion: Completion,
    agent_id: str | None,
    *,
    config: OrchestratorConfig,
    prices: PriceTable,
    llm: Any,
    fingerprint: str = "",
    guard_after: bool = False,
    started_at: float | None = None,
) -> Completion:
    """:func:`finish_call` without the awaits (the event is written with the next batch)."""
    if completion.usage.impossible():
        estimate = Usage(
            input_tokens=count_message_tokens(request.counted_messages, request.model).tokens,
            output_tokens=count_tokens(completion.content, request.model).tokens,
        )
        completion = _repaired(completion, estimate)
    tracking = config.enable_cost_tracking
    model: str = completion.model or request.model or str(getattr(llm, "name", "unknown"))
    if completion.rejected_usage:
        _report_rejected(run, completion.provider or str(getattr(llm, "name", model)), model, completion)
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
        data: dict[str, Any] = {
            "model": model,
            "usage": usage.to_dict(),
            "cost": usage.cost_usd,
            "total_cost": run.state.total_cost + usage.cost_usd,
            "provider": completion.provider,
            "request_hash": fingerprint,
            "response": completion.content,
            "finish_reason": completion.finish_reason,
        }
        if completion.tool_calls:  # recorded, so a replayed call asks for the same tools
            data["tool_calls"] = [call.to_dict() for call in completion.tool_calls]
        if started_at is not None:
            data["started_at"] = started_at
        if held is not None:
            run.budget.settle(held.reservation, usage.cost_usd)
            if held.guarded:
                guard.release(run, held.prompt_tokens, held.max_tokens, observe=False)  # after_call observes
            if held.reserved_seq is not None:
                data["reservation"] = held.reserved_seq
            settlement = _settlement(held)
            if settlement is not None:
                data["hold"] = settlement
        elif tracking:
            run.budget.charge(usage.cost_usd)
        run.emit(EventType.COST_UPDATE, data, agent_id)
        if guard_after and held is not None and held.guarded:
            guard.after_call(run, usage, (time.monotonic() - held.started) * 1000, agent_id)
    return replace(completion, usage=usage, model=model)


def _repaired(completion: Completion, estimate: Usage) -> Completion:
    """``completion`` with its impossible usage numbers replaced (see :meth:`Usage.repaired`)."""
    return replace(
        completion,
        usage=completion.usage.repaired(estimate),
        rejected_usage=completion.rejected_usage + completion.usage.impossible(),
    )


def _report_rejected(run: RunContext | None, provider: str, model: str, completion: Completion) -> None:
    """Say, once per run and provider (a warning event and the log), which usage numbers
    the provider reported that were not believed."""
    message = (
        f"{provider} reported usage for {model} that cannot be right ({', '.join(completion.rejected_usage)}); "
        "those numbers were ignored: counts are estimated offline and costs come from the price table"
    )
    if run is None:
        logger.warning("%s", message)
        return
    key = f"rejected-usage:{provider}"
    if key not in run.warned:
        logger.warning("run %s: %s", run.run_id, message)
        run.warn_once(key, message)


def _held(
    run: RunContext,
    reservation: Reservation,
    request: CompletionRequest,
    prompt: int,
    guarded: bool,
    agent_id: str | None,
    hold: str | None,
    charge_to: tuple[str, ...] = (),
) -> Held:
    max_tokens = request.max_tokens or 0
    seq = None
    if run.budget.cap is not None:
        data: dict[str, Any] = {
            "amount": reservation.amount,
            "model": request.model,
            "prompt_tokens": prompt,
            "max_tokens": max_tokens,
        }
        if hold is not None:
            data["hold"] = hold
        seq = run.log.emit(EventType.CALL_RESERVED, data, agent_id).seq
    started = time.monotonic() if guarded else 0.0
    return Held(reservation, prompt, max_tokens, guarded, seq, started, hold, charge_to)


def _settlement(held: Held) -> dict[str, Any] | None:
    """What a ``cost_update`` tells the store's ledger: the hold it settles (or the accounts
    it is billed to) and the call's latency (for guardrails on ``latency_ms``)."""
    if held.hold is None and not held.charge_to:
        return None
    latency = (time.monotonic() - held.started) * 1000 if held.started else 0.0
    if held.hold is not None:
        return {"id": held.hold, "latency_ms": latency}
    return {"accounts": list(held.charge_to), "latency_ms": latency}


def _price(run: RunContext, request: CompletionRequest, prices: PriceTable) -> ModelPrice | None:
    price = prices.lookup(request.model)
    if price is None and run.budget.cap is not None:
        raise BudgetExceededError(
            unpriced_message(request.model, run.budget.cap), cap=run.budget.cap, spent=0.0
        )
    return price


def unpriced_message(model: str | None, cap: float) -> str:
    """Why a run with a cap refuses ``model``, and how to give it a price."""
    if not model:
        return (
            f"the call names no model, so its cost cannot be held to the budget of {format_usd(cap)}; "
            "set config.primary_model (or the call's model=) to a model with a price"
        )
    return (
        f"model {model!r} has no price, so its calls cannot be held to the budget of {format_usd(cap)}; "
        f"give it one: prices=PriceTable({{{model!r}: ModelPrice(input=..., output=...)}}) "
        "(USD per million tokens), or run without a budget"
    )


def _worst_cost(run: RunContext, request: CompletionRequest, prices: PriceTable, prompt: int) -> float:
    price = _price(run, request, prices)
    if price is None:
        return 0.0
    return price.cost(Usage(input_tokens=prompt, output_tokens=request.max_tokens or 0))


def _refusal(
    run: RunContext,
    error: BudgetExceededError,
    request: CompletionRequest,
    prices: PriceTable,
    prompt: int,
    *,
    shared: bool = False,
) -> BudgetExceededError:
    """The budget's refusal, saying what would make the call fit (``shared``: refused by
    the run's account in the store, which counts the run's calls in every process)."""
    budget = run.budget
    cap = error.cap
    spent = error.spent
    max_tokens = request.max_tokens or 0
    price = prices.lookup(request.model)
    worst = error.requested
    fixes = []
    if price is not None and price.output > 0:
        prompt_cost = price.cost(Usage(input_tokens=prompt))
        fitting = math.floor((cap - spent - prompt_cost) / price.output * 1_000_000 * (1 - 1e-9))
        if 1 <= fitting < max_tokens:
            fixes.append(f"a max_tokens of at most {fitting}")
    fixes.append(f"a budget of at least {format_usd(spent + worst, up=True)}")
    if shared:
        carried = " by the run's calls in every process sharing its store"
    elif budget.carried:
        carried = f" ({format_usd(budget.carried)} of it by calls in flight when the run was interrupted)"
    else:
        carried = ""
    message = (
        f"budget of {format_usd(cap)} cannot fit this call even with nothing else in flight: "
        f"{format_usd(spent)} spent{carried}, this call may cost up to {format_usd(worst)} "
        f"({prompt} prompt tokens + max_tokens={max_tokens} on {request.model}); "
        f"it would fit with {' or '.join(fixes)}"
    )
    return BudgetExceededError(message, cap=cap, spent=spent, requested=worst)


def check_prices(config: OrchestratorConfig, prices: PriceTable, provider: Any) -> None:
    """With a cap, refuse to start when a configured model has no price (its calls could
    not be held to the cap); models only known at call time are checked then."""
    cap = config.max_total_cost
    if cap is None:
        return
    primary = config.primary_model or getattr(provider, "model", None)
    for model in [primary, *config.fallback_models]:
        if isinstance(model, str) and model and prices.lookup(model) is None:
            raise ConfigError(unpriced_message(model, cap))


def carry_in_flight(run: RunContext, events: Sequence[StreamEvent]) -> None:
    """On resume: calls that were in flight when the run was interrupted, with no recorded
    answer, may have been billed by the vendor, so they count as spent at their worst case."""
    carried, calls = unsettled_reservations(events)
    if not calls:
        return
    run.budget.charge(carried)
    run.budget.carried = carried
    message = (
        f"{calls} model calls were in flight when the run was interrupted and have no recorded "
        f"answer: they count as {format_usd(carried)} spent (their worst case) against the budget"
    )
    logger.warning("run %s: %s", run.run_id, message)
    run.warn_once("carried-reservations", message)
