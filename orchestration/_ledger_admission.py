"""Holding a model call on the store's shared accounts, so caps hold across processes.

:mod:`.admission` first admits a call against the run's own numbers in this process (its
:class:`~orchestration.budget.Budget` and guardrails); :func:`reserve` then holds it in
the store's ledger (:mod:`orchestration.stores.ledger`) on

- the run's account, when the run has a cap (``max_total_cost``): every process making
  the run's calls (a resumed driver, workers) counts against one budget;
- one account per run label (``tenant``, ``user``...), when the run has guardrails: the
  label-scoped policies are decided on totals over every run of every process sharing
  the store.

The check and the hold are one transaction.  A call that fits only once calls in flight
settle (in this process or any other) waits: it is asked again when a call of this run
settles, and otherwise at growing intervals (polling the store, up to half a second); a
hold of a process on this machine that died is reaped while it waits.  A call that does
not fit even with nothing in flight is refused as the local check would refuse it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .engine import guard
from .engine.eventlog import EventLog
from .engine.leases import is_dead_here
from .errors import BudgetExceededError, LeaseLostError
from .events import EventType
from .guardrails import CallStats, Decision, RunTotals
from .stores.ledger import LEASE_LOST, WAIT, AccountTotals, Charge, Decide, Hold, label_account, run_account

if TYPE_CHECKING:
    from .engine.run import RunContext

__all__ = ["accounts_of", "reserve"]

_EPSILON = 1e-12  # as the local budget: a cap of 0.3 admits 0.1 + 0.2
_FIRST_POLL = 0.01
_LAST_POLL = 0.5


@dataclass(frozen=True, slots=True)
class _CapReached:
    """The run's shared account cannot fit the call even with nothing in flight."""

    spent: float


def accounts_of(run: RunContext) -> tuple[str, ...]:
    """The ledger accounts a call of ``run`` is held on (none without a ledger)."""
    if run.ledger is None:
        return ()
    accounts = [run_account(run.run_id)] if run.budget.cap is not None else []
    if run.guardrails is not None:
        accounts.extend(label_account(label, value) for label, value in sorted(run.labels.items()))
    return tuple(accounts)


async def reserve(
    run: RunContext, worst: float, prompt: int, max_tokens: int, agent_id: str | None
) -> str | None:
    """Hold the call on the run's shared accounts, waiting while only calls in flight keep
    it from fitting; returns the hold's id (None without a ledger or accounts).

    Raises :class:`BudgetExceededError` (``spent``: the run's spending in every process)
    when the run's cap cannot fit it, :class:`LeaseLostError` when another process took
    the run over, and acts on a label guardrail's decision (raises).
    """
    ledger = run.ledger
    accounts = accounts_of(run)
    if ledger is None or not accounts:
        return None
    hold = Hold(
        hold_id=uuid.uuid4().hex,
        run_id=run.run_id,
        owner=run.owner,
        accounts=accounts,
        worst=Charge(worst, prompt, max_tokens),
        iterations=run.state.iterations,
        agents_failed=run.state.agents_failed,
        wall_time_s=time.monotonic() - run.started_at if run.started_at else 0.0,
    )
    decide = _decider(run, worst, prompt, max_tokens)
    try:
        verdict = await ledger.reserve(hold, decide, dead=is_dead_here)
        if verdict is WAIT:  # this process's own settlements may not be in the store yet
            await _written(run)
            verdict = await ledger.reserve(hold, decide, dead=is_dead_here)
        delay = _FIRST_POLL
        while verdict is WAIT:
            if await _settled_within(run, delay):
                await _written(run)
                delay = _FIRST_POLL
            else:
                delay = min(delay * 2, _LAST_POLL)
            verdict = await ledger.reserve(hold, decide, dead=is_dead_here)
    except BaseException:
        # Cancelled (or the store failed) while the hold may have been written: give it
        # back; releasing a hold that was never written does nothing.
        run.emit(EventType.CALL_RELEASED, {"hold": {"id": hold.hold_id}}, agent_id)
        raise
    if verdict is None:
        return hold.hold_id
    if verdict is LEASE_LOST:
        raise LeaseLostError(
            f"run {run.run_id}: this process no longer holds the run's lease (another process took the "
            "run over), so it makes no more model calls for it"
        )
    if isinstance(verdict, _CapReached):
        cap = run.budget.cap or 0.0
        raise BudgetExceededError(
            f"budget of {cap} cannot fit this call", cap=cap, spent=verdict.spent, requested=worst
        )
    assert isinstance(verdict, Decision)
    guard.enforce_before_call(run, verdict, agent_id)
    raise AssertionError("unreachable: a guardrail decision before a call raises")


def _decider(run: RunContext, worst: float, prompt: int, max_tokens: int) -> Decide:
    """``decide`` for the ledger: only immutable numbers taken now (SQLite runs it on the
    store's thread)."""
    cap = run.budget.cap
    own = run_account(run.run_id)
    guardrails = run.guardrails
    labels = dict(run.labels) if guardrails is not None else {}
    label_keys = {label_account(label, value): label for label, value in labels.items()}
    run_view = guard.totals(run, include_reserved=True) if guardrails is not None else RunTotals()
    predicted = CallStats(
        cost_usd=worst, tokens_used=prompt + max_tokens, input_tokens=prompt, output_tokens=max_tokens
    )

    def decide(accounts: Mapping[str, AccountTotals]) -> object | None:
        wait = False
        mine = accounts.get(own)
        if cap is not None and mine is not None:
            if mine.cost_usd + worst > cap + _EPSILON:
                return _CapReached(mine.cost_usd)
            wait = mine.cost_usd + mine.held_cost_usd + worst > cap + _EPSILON
        if guardrails is not None and label_keys:
            found = {label_keys[k]: a for k, a in accounts.items() if k in label_keys}
            held = {label: _label_totals(a, run_view, held=True) for label, a in found.items()}
            decision = guardrails.check_shared(run_view, held, predicted)
            if decision is not None:
                settled = {label: _label_totals(a, run_view, held=False) for label, a in found.items()}
                in_flight = any(a.holds for a in found.values())
                if not in_flight or guardrails.check_shared(run_view, settled, predicted) is not None:
                    return decision
                wait = True
        return WAIT if wait else None

    return decide


def _label_totals(account: AccountTotals, run: RunTotals, *, held: bool) -> RunTotals:
    """What a label policy sees: the label's totals over every run (this run's own run
    metrics added to the others'), with or without the calls in flight (each counted as a
    call, at its worst case)."""
    held_in = account.held_input_tokens if held else 0.0
    held_out = account.held_output_tokens if held else 0.0
    input_tokens = round(account.input_tokens + held_in)
    output_tokens = round(account.output_tokens + held_out)
    return RunTotals(
        cost_usd=account.cost_usd + (account.held_cost_usd if held else 0.0),
        tokens_used=input_tokens + output_tokens,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        calls=account.calls + (account.holds if held else 0),
        iterations=round(account.iterations) + run.iterations,
        agents_failed=round(account.agents_failed) + run.agents_failed,
        wall_time_s=account.wall_time_s + run.wall_time_s,
        labels=run.labels,
        run_id=run.run_id,
        latency_ms=account.latency_ms,
        max_call=CallStats(
            cost_usd=account.max_cost_usd,
            tokens_used=round(account.max_tokens_used),
            input_tokens=round(account.max_input_tokens),
            output_tokens=round(account.max_output_tokens),
            latency_ms=account.max_latency_ms,
        ),
    )


async def _settled_within(run: RunContext, seconds: float) -> bool:
    """Wait until one of this run's calls settles (True) or ``seconds`` pass (False)."""
    settlement = run.budget.next_settlement()
    done, _ = await asyncio.wait([settlement], timeout=seconds)
    if not done:
        settlement.cancel()
    return bool(done)


async def _written(run: RunContext) -> None:
    """Wait until what the run emitted (its settlements) is in the store."""
    if isinstance(run.log, EventLog):
        await run.log.flush(always=True)
    else:
        await run.log.flush()
