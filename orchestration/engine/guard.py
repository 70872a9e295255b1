"""Enforcing guardrail policies around model calls.

:class:`~orchestration.guardrails.Guardrails` decides (pure); this module gathers the
run's totals, asks before and after each call, emits a ``guardrail`` event for every
decision, and acts: a rejected execution raises :class:`GuardrailRejectedError` (that
call's subtask fails), a paused run stops scheduling new work and ends ``PAUSED``
(``resume`` continues it), an aborted run is stopped at once and ends ``FAILED``.

Before a call the totals include every reservation in flight plus this call's worst
case, so a cost policy holds however many calls run at once.  Policies on spend admit
work the way the budget does: a call that breaches a policy only because of the calls in
flight waits for them to settle (:func:`before_call` returns False) and is asked again;
the policy acts only when the call would breach it even with nothing in flight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import OrchestrationError
from ..events import EventType
from ..models import TaskStatus
from ..usage import Usage

if TYPE_CHECKING:
    from ..guardrails import Decision, RunTotals
    from .run import RunContext

__all__ = [
    "GuardrailRejectedError",
    "RunPausedError",
    "after_call",
    "before_call",
    "enforce_before_call",
    "hold",
    "release",
]


class GuardrailRejectedError(OrchestrationError):
    """A guardrail rejected this model call (its subtask fails with the policy's reason)."""


class RunPausedError(OrchestrationError):
    """A guardrail paused the run before this call; the subtask runs again on resume."""


def totals(run: RunContext, *, include_reserved: bool) -> RunTotals:
    """What the guardrails see of ``run`` now."""
    from ..guardrails import CallStats, RunTotals

    usage = run.state.usage
    cost = run.budget.spent + (run.budget.reserved if include_reserved else 0.0)
    in_flight_in, in_flight_out = run.reserved_tokens if include_reserved else (0, 0)
    return RunTotals(
        cost_usd=cost,
        tokens_used=usage.total_tokens + in_flight_in + in_flight_out,
        input_tokens=usage.input_tokens + in_flight_in,
        output_tokens=usage.output_tokens + in_flight_out,
        calls=usage.calls,
        iterations=run.state.iterations,
        agents_failed=run.state.agents_failed,
        wall_time_s=_elapsed(run),
        labels=dict(run.labels),
        run_id=run.run_id,
        latency_ms=run.latency_ms,
        max_call=run.max_call if run.max_call is not None else CallStats(),
    )


def before_call(
    run: RunContext, worst_cost: float, input_tokens: int, max_tokens: int, agent_id: str | None
) -> bool:
    """May the call start now?  True if so; False if only the calls in flight stand in the
    way (wait for one to settle, then ask again); otherwise acts on the decision (raises)."""
    from ..guardrails import CallStats

    guardrails = run.guardrails
    if guardrails is None:
        return True
    predicted = CallStats(
        cost_usd=worst_cost,
        tokens_used=input_tokens + max_tokens,
        input_tokens=input_tokens,
        output_tokens=max_tokens,
    )
    decision = guardrails.check_before_call(totals(run, include_reserved=True), predicted)
    if decision is None:
        return True
    if run.budget.in_flight and (
        guardrails.check_before_call(totals(run, include_reserved=False), predicted) is None
    ):
        return False
    _enforce(run, decision, agent_id, before=True)
    raise AssertionError("unreachable: a decision before a call always raises")


def enforce_before_call(run: RunContext, decision: Decision, agent_id: str | None) -> None:
    """Act on a decision taken before a call on totals kept elsewhere (the store's ledger,
    for label policies across processes); raises."""
    _enforce(run, decision, agent_id, before=True)


def hold(run: RunContext, input_tokens: int, max_tokens: int) -> None:
    """The call goes ahead (its cost is reserved in the budget): count its worst-case tokens
    too until it settles, and show other runs of the same tenant what is in flight."""
    reserved_in, reserved_out = run.reserved_tokens
    run.reserved_tokens = (reserved_in + input_tokens, reserved_out + max_tokens)
    if run.guardrails is not None:
        run.guardrails.observe(totals(run, include_reserved=True))


def release(run: RunContext, input_tokens: int, max_tokens: int, *, observe: bool = True) -> None:
    """The call that held these tokens finished or failed: stop counting them."""
    reserved_in, reserved_out = run.reserved_tokens
    run.reserved_tokens = (max(0, reserved_in - input_tokens), max(0, reserved_out - max_tokens))
    if observe and run.guardrails is not None:
        run.guardrails.observe(totals(run, include_reserved=True))


def after_call(run: RunContext, usage: Usage, latency_ms: float, agent_id: str | None) -> None:
    """Record the call in the run's guardrail totals and act on any decision."""
    from ..guardrails import CallStats

    call = CallStats(
        cost_usd=usage.cost_usd,
        tokens_used=usage.total_tokens,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        latency_ms=latency_ms,
    )
    guardrails = run.guardrails
    if guardrails is None:
        return
    run.latency_ms += latency_ms
    run.max_call = call if run.max_call is None else run.max_call.largest(call)
    view = totals(run, include_reserved=False)
    guardrails.observe(totals(run, include_reserved=True))  # other runs see what is in flight
    decision = guardrails.check_after_call(view, call)
    if decision is not None:
        _enforce(run, decision, agent_id, before=False)


def _enforce(run: RunContext, decision: Decision, agent_id: str | None, *, before: bool) -> None:
    run.emit(EventType.GUARDRAIL, decision.to_dict(), agent_id)
    if decision.action == "reject_execution":
        raise GuardrailRejectedError(decision.reason)
    if decision.action == "pause_run":
        if run.stop_reason is None:
            run.stop_reason = TaskStatus.PAUSED
            run.stop_message = decision.reason
        if before:
            raise RunPausedError(decision.reason)
        return
    # abort_run.  Before a call the cap is not crossed yet: this call is not made, no new
    # work starts, and calls already in flight (reserved within the cap) finish.  After a
    # call it was crossed: everything stops now, keeping what was obtained.
    if run.abort_reason is None:
        run.abort_reason = decision.reason
        if run.stop_reason is None:
            run.stop_reason = TaskStatus.FAILED
        if not before:
            run.cancel_requested = True
            if run.body is not None:
                run.body.cancel()
    raise GuardrailRejectedError(decision.reason)


def _elapsed(run: RunContext) -> float:
    import time

    return time.monotonic() - run.started_at if run.started_at else 0.0
