"""The live context of one run, and which run/agent the current task works for."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ..budget import Budget
from ..events import EventType
from ..llm import Provider
from ..models import AgentResult, TaskStatus
from ..replay import Recording
from ..retry import RetryPolicy
from .eventlog import EventLog
from .graph import Plan
from .state import RunState

if TYPE_CHECKING:
    from ..guardrails import CallStats, Guardrails
    from ..stores.ledger import Ledger

__all__ = ["RunContext", "Scope", "attributed", "current_scope"]


@dataclass
class RunContext:
    """The live state of one run (one per ``execute_workflow`` call).

    Everything durable is in ``log`` (events folded into ``state``); the rest is
    in-flight machinery: the budget, retry policies, the task running the workflow body.
    """

    run_id: str
    task: str
    title: str
    context: dict[str, Any]
    log: EventLog
    budget: Budget
    subtask_policy: RetryPolicy
    call_policy: RetryPolicy
    llm: Provider
    recording: Recording | None = None  # calls already paid for (resume)
    guardrails: Guardrails | None = None
    labels: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0
    replay_of: dict[str, Any] = field(default_factory=dict)
    stop_message: str | None = None
    abort_reason: str | None = None
    latency_ms: float = 0.0
    reserved_tokens: tuple[int, int] = (0, 0)  # input, output of guarded calls in flight
    plan: Plan | None = None
    max_call: CallStats | None = None  # the largest single call so far
    results: dict[str, AgentResult] = field(default_factory=dict)
    cancel_requested: bool = False
    stop_reason: TaskStatus | None = None
    body: asyncio.Task[None] | None = None
    warned: set[str] = field(default_factory=set)
    outcome_status: TaskStatus | None = None
    outcome_error: str | None = None
    outcome_metadata: dict[str, Any] = field(default_factory=dict)
    ledger: Ledger | None = None  # the store's shared budgets (the run's and its labels' accounts)
    owner: str = ""  # the lease owner driving the run in this process

    @property
    def state(self) -> RunState:
        """The run's state (a fold of its events)."""
        return self.log.state

    def emit(
        self, kind: EventType, data: Mapping[str, Any] | None = None, agent_id: str | None = None
    ) -> None:
        """Append an event to this run."""
        self.log.emit(kind, data, agent_id)

    def warn_once(self, key: str, message: str) -> None:
        """Emit a ``warning`` event the first time ``key`` is seen in this run."""
        if key not in self.warned:
            self.warned.add(key)
            self.emit(EventType.WARNING, {"message": message})


class Scope(NamedTuple):
    """The run and agent that model calls made in the current task are billed to."""

    run: RunContext
    agent_id: str
    model: str | None = None  # the subtask's own model, if it names one


_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("orchestration_scope", default=None)


def current_scope() -> Scope | None:
    """The scope of the current task, or None outside a run."""
    return _scope.get()


class attributed:
    """Bill model calls made inside the block to ``agent_id`` of ``run``."""

    __slots__ = ("_scope", "_token")

    def __init__(self, run: RunContext, agent_id: str, model: str | None = None) -> None:
        self._scope = Scope(run, agent_id, model)
        self._token: contextvars.Token[Scope | None] | None = None

    def __enter__(self) -> Scope:
        self._token = _scope.set(self._scope)
        return self._scope

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _scope.reset(self._token)
