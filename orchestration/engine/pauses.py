"""Guardrail pauses in graph and workflow runs: a pause becomes a question to a person.

A ``pause_run`` policy that fires before a node's model call stops that call, and the
node asks (:meth:`NodeContext.interrupt`) what the guardrail found and what to do::

    guardrail 'checkpoint' (run: calls >= 3) -> pause_run: calls = 3 (already breached).
    Go on past this guardrail (true) or stop the run (false)?

The question's schema is boolean and names the policy (``x-orchestration-guardrail``), so
the answer paths every question uses (Python, ``orchestrate answer`` or ``resume
--answer``, the HTTP API, the live page) continue it: ``true`` waives that policy's pauses
for the rest of the run (its other actions still hold) and the node makes its call;
``false`` stops the run (failed, saying who stopped it at which guardrail).  Every node
waiting on the same guardrail gets the same answer (:func:`~.answers.answers_for`).  The
waivers are in the log as answers, so a resumed run (another process) keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..guardrails import CallStats, Decision, Guardrails, RunTotals
from .answers import GUARDRAIL_KEY
from .core import GraphEvent
from .core.events import InterruptAnswered, NodeInterrupted

if TYPE_CHECKING:
    from .graphcalls import ModelAccess

__all__ = ["AskingGuardrails", "question", "waivers"]


class AskingGuardrails(Guardrails):
    """A run's guardrails less the pauses a person waived; remembers each pause it decided
    (by its reason, which is what the paused call raises) so the node can ask about it."""

    def __init__(self, base: Guardrails, waived: Iterable[str] = ()) -> None:
        self.base = base
        self.waived = frozenset(waived)
        kept = [p for p in base.policies if not (p.action == "pause_run" and p.name in self.waived)]
        super().__init__(kept, base.ledger)
        self.pauses: dict[str, Decision] = {}

    def check_before_call(self, run_view: RunTotals, predicted: CallStats | None = None) -> Decision | None:
        """As :meth:`Guardrails.check_before_call`, noting a pause."""
        decision = super().check_before_call(run_view, predicted)
        if decision is not None and decision.action == "pause_run":
            self.pauses[decision.reason] = decision
        return decision

    def check_shared(self, *args: Any, **kwargs: Any) -> Decision | None:
        """The shared-ledger check for label policies, where the guardrails have one, noting
        a pause like :meth:`check_before_call` (resolved at call time: older guardrails lack it)."""
        check = getattr(super(), "check_shared", None)
        decision: Decision | None = check(*args, **kwargs) if check is not None else None
        if decision is not None and decision.action == "pause_run":
            self.pauses[decision.reason] = decision
        return decision

    def waive(self, policy: str) -> AskingGuardrails:
        """These guardrails with ``policy``'s pauses waived too."""
        waived = AskingGuardrails(self.base, self.waived | {policy})
        waived.pauses = self.pauses
        return waived


def install(models: ModelAccess, guardrails: Guardrails, waived: Iterable[str] = ()) -> None:
    """Enforce ``guardrails`` on the run's model calls, with ``waived`` pauses waived."""
    base = guardrails.base if isinstance(guardrails, AskingGuardrails) else guardrails
    models.context.guardrails = AskingGuardrails(base, waived)


def paused(models: ModelAccess, reason: str) -> Decision | None:
    """The pause decision a paused call's ``RunPausedError`` stands for."""
    guardrails = models.context.guardrails
    return guardrails.pauses.get(reason) if isinstance(guardrails, AskingGuardrails) else None


def waive(models: ModelAccess, policy: str) -> None:
    """A person said go on past ``policy``: it pauses this run no more."""
    guardrails = models.context.guardrails
    if isinstance(guardrails, AskingGuardrails) and policy not in guardrails.waived:
        models.context.guardrails = guardrails.waive(policy)


def question(decision: Decision) -> tuple[str, dict[str, Any]]:
    """The question a node asks about a pause, and its schema (boolean, naming the policy)."""
    text = f"{decision.reason}. Go on past this guardrail (true) or stop the run (false)?"
    schema = {
        "type": "boolean",
        "title": f"guardrail {decision.policy!r} paused the run",
        GUARDRAIL_KEY: decision.policy,
    }
    return text, schema


def waivers(events: Iterable[GraphEvent]) -> set[str]:
    """The policies a run's log says a person waived (answered ``true`` to their question)."""
    asked: dict[tuple[str, int], str] = {}
    waived: set[str] = set()
    for event in events:
        if isinstance(event, NodeInterrupted):
            policy = event.schema.get(GUARDRAIL_KEY) if event.schema else None
            if policy is not None:
                asked[(event.node, event.index)] = str(policy)
            else:
                asked.pop((event.node, event.index), None)
        elif isinstance(event, InterruptAnswered) and event.answer is True:
            policy = asked.get((event.node, event.index))
            if policy is not None:
                waived.add(policy)
    return waived
