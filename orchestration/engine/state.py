"""Run state as a fold over the run's events.

:class:`RunState` is the only place run state lives.  The live run applies each event
as it is emitted; a stored run is rebuilt with :meth:`RunState.from_events`; both go
through the same :meth:`RunState.apply`, so results, totals and progress never diverge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..events import EventType, StreamEvent, status_after
from ..models import (
    AgentResult,
    GeneratedDocument,
    OrchestratorResult,
    SubTask,
    SynthesisResult,
    TaskStatus,
)
from ..usage import Usage

__all__ = ["RunState"]

_TERMINAL = (
    EventType.WORKFLOW_COMPLETE,
    EventType.WORKFLOW_ERROR,
    EventType.WORKFLOW_CANCELLED,
    EventType.WORKFLOW_PAUSED,
)

# Progress milestones (percent): decomposition 0-10, agents 10-90, synthesis 90-100.
_AGENTS_START = 10.0
_AGENTS_SPAN = 80.0


class RunState:
    """Everything known about a run, derived from its events."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.task = ""
        self.title = ""
        self.orchestrator = ""
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.status = TaskStatus.PENDING
        self.error: str | None = None
        self.subtasks: dict[str, dict[str, Any]] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.syntheses: list[dict[str, Any]] = []
        self.final_synthesis: str | None = None
        self.documents: list[dict[str, Any]] = []
        self._total = _Tally()
        self._by_agent: dict[str, _Tally] = {}
        self._by_model: dict[str, _Tally] = {}
        self.metadata: dict[str, Any] = {}
        self.progress = 0.0
        self.last_seq = 0
        self.iterations = 0
        self.agents_failed = 0
        self._planned = 0
        self._finished_agents = 0

    @property
    def total_cost(self) -> float:
        """USD spent so far."""
        return self._total.cost_usd

    @property
    def usage(self) -> Usage:
        """Tokens and cost of every call so far."""
        return self._total.freeze()

    @property
    def usage_by_agent(self) -> dict[str, Usage]:
        """Usage per agent id (``planner``, ``synthesizer`` and each subtask's agent)."""
        return {key: tally.freeze() for key, tally in self._by_agent.items()}

    @property
    def usage_by_model(self) -> dict[str, Usage]:
        """Usage per model id."""
        return {key: tally.freeze() for key, tally in self._by_model.items()}

    def usage_for(self, agent_id: str) -> Usage | None:
        """One agent's usage, or None if it made no calls."""
        tally = self._by_agent.get(agent_id)
        return tally.freeze() if tally is not None else None

    @classmethod
    def from_events(cls, run_id: str, events: Iterable[StreamEvent]) -> RunState:
        """Rebuild a run's state from its stored events."""
        state = cls(run_id)
        for event in events:
            state.apply(event.event_type, event.data, event.agent_id, event.timestamp)
            state.last_seq = event.seq
        return state

    def apply(
        self, kind: EventType, data: Mapping[str, Any], agent_id: str | None, timestamp: float
    ) -> float:
        """Fold one event into the state; returns the run's progress percentage after it."""
        if kind is EventType.COST_UPDATE:
            usage = data["usage"]
            self._total.add(usage)
            key = agent_id or "run"
            tally = self._by_agent.get(key)
            if tally is None:
                tally = self._by_agent[key] = _Tally()
            tally.add(usage)
            model = str(data.get("model") or "unknown")
            tally = self._by_model.get(model)
            if tally is None:
                tally = self._by_model[model] = _Tally()
            tally.add(usage)
        elif kind in (EventType.AGENT_COMPLETE, EventType.AGENT_ERROR, EventType.AGENT_SKIPPED):
            result = data["result"]
            previous = self.results.get(result["subtask_id"])
            if previous is None:
                self._finished_agents += 1
            elif previous["status"] == TaskStatus.FAILED:
                self.agents_failed -= 1  # a resumed run is trying it again
            if result["status"] == TaskStatus.FAILED:
                self.agents_failed += 1
            self.results[result["subtask_id"]] = result
            if self._planned:
                self._advance(_AGENTS_START + _AGENTS_SPAN * self._finished_agents / self._planned)
        elif kind is EventType.WORKFLOW_START:
            self.task = str(data.get("task", ""))
            self.title = str(data.get("title", ""))
            self.orchestrator = str(data.get("orchestrator", ""))
            self.started_at = timestamp
            self.status = TaskStatus(status_after(kind, data) or self.status)
            self.metadata.update(data.get("metadata") or {})
        elif kind is EventType.DECOMPOSITION_START:
            self._advance(2.0)
        elif kind is EventType.DECOMPOSITION_COMPLETE:
            for subtask in data.get("subtasks", ()):
                self.subtasks[subtask["id"]] = subtask
            self._planned = len(self.subtasks) - len(self.results)
            self._finished_agents = 0
            self._advance(_AGENTS_START)
        elif kind is EventType.SYNTHESIS_START:
            self._advance(_AGENTS_START + _AGENTS_SPAN)
        elif kind is EventType.SYNTHESIS_COMPLETE:
            synthesis = data["synthesis"]
            self.syntheses.append(synthesis)
            if data.get("final", True):
                self.final_synthesis = synthesis["content"]
                self._advance(97.0)
        elif kind is EventType.ITERATION_START or kind is EventType.ITERATION_COMPLETE:
            if kind is EventType.ITERATION_START:
                self.iterations += 1
            total = data.get("max_iterations")
            number = data.get("iteration")
            if isinstance(total, int) and isinstance(number, int) and total > 0:
                done = number if kind is EventType.ITERATION_COMPLETE else number - 1
                self._advance(100.0 * done / total * 0.95)
        elif kind is EventType.DOCUMENT_GENERATION_COMPLETE:
            self.documents.extend(data.get("documents", ()))
        elif kind is EventType.DOCUMENT_ERROR:  # the result says which reports are missing, and why
            failure = f"{data.get('format', 'report')}: {data.get('error', 'not written')}"
            self.metadata["document_errors"] = [*self.metadata.get("document_errors", ()), failure]
        elif kind is EventType.WORKFLOW_RESUMED or kind is EventType.GRAPH_RUN_RESUMED:
            self.status = TaskStatus(status_after(kind, data) or self.status)
            self.error = None
            self.ended_at = None
        elif kind in _TERMINAL:
            self.status = TaskStatus(status_after(kind, data) or self.status)
            self.error = data.get("error")
            self.ended_at = timestamp
            self.metadata.update(data.get("metadata") or {})
            if kind is not EventType.WORKFLOW_PAUSED:
                self.progress = 100.0
        return self.progress

    def to_snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of the state, so loading a long run need not replay it all."""
        return {
            "run_id": self.run_id,
            "task": self.task,
            "title": self.title,
            "orchestrator": self.orchestrator,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "status": str(self.status),
            "error": self.error,
            "subtasks": self.subtasks,
            "results": self.results,
            "syntheses": self.syntheses,
            "final_synthesis": self.final_synthesis,
            "documents": self.documents,
            "usage": self.usage.to_dict(),
            "usage_by_agent": {k: v.to_dict() for k, v in self.usage_by_agent.items()},
            "usage_by_model": {k: v.to_dict() for k, v in self.usage_by_model.items()},
            "metadata": self.metadata,
            "progress": self.progress,
            "last_seq": self.last_seq,
            "iterations": self.iterations,
            "agents_failed": self.agents_failed,
            "planned": self._planned,
            "finished_agents": self._finished_agents,
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any], events: Iterable[StreamEvent] = ()) -> RunState:
        """Rebuild from :meth:`to_snapshot` output, then fold the ``events`` after it."""
        state = cls(str(data["run_id"]))
        state.task = data["task"]
        state.title = data["title"]
        state.orchestrator = data["orchestrator"]
        state.started_at = data["started_at"]
        state.ended_at = data["ended_at"]
        state.status = TaskStatus(data["status"])
        state.error = data["error"]
        state.subtasks = dict(data["subtasks"])
        state.results = dict(data["results"])
        state.syntheses = list(data["syntheses"])
        state.final_synthesis = data["final_synthesis"]
        state.documents = list(data["documents"])
        state._total = _Tally.of(data["usage"])
        state._by_agent = {k: _Tally.of(v) for k, v in data["usage_by_agent"].items()}
        state._by_model = {k: _Tally.of(v) for k, v in data["usage_by_model"].items()}
        state.metadata = dict(data["metadata"])
        state.progress = float(data["progress"])
        state.last_seq = int(data["last_seq"])
        state.iterations = int(data.get("iterations", 0))
        state.agents_failed = int(data.get("agents_failed", 0))
        state._planned = int(data["planned"])
        state._finished_agents = int(data["finished_agents"])
        for event in events:
            state.apply(event.event_type, event.data, event.agent_id, event.timestamp)
            state.last_seq = event.seq
        return state

    def _advance(self, value: float) -> None:
        if value > self.progress:
            self.progress = min(value, 99.0)

    def _ordered(self, live: Mapping[str, AgentResult]) -> list[AgentResult]:
        if len(live) != len(self.results):  # not the objects behind these events
            return self.agent_results()
        ordered = [live[i] for i in self.subtasks if i in live]
        return ordered + [r for i, r in live.items() if i not in self.subtasks]

    def agent_results(self) -> list[AgentResult]:
        """Agent results in plan order (subtasks the plan did not list come last)."""
        ordered = [self.results[i] for i in self.subtasks if i in self.results]
        ordered += [r for i, r in self.results.items() if i not in self.subtasks]
        return [AgentResult.from_dict(r) for r in ordered]

    def to_result(
        self,
        live_results: Mapping[str, AgentResult] | None = None,
        live_subtasks: Sequence[SubTask] | None = None,
    ) -> OrchestratorResult:
        """The run's :class:`OrchestratorResult`, totals computed from the cost events.

        ``live_results`` and ``live_subtasks`` are the objects the events were made from
        (the live run passes them to skip re-parsing its own events); they must be
        exactly those.
        """
        elapsed = 0.0
        if self.started_at is not None:
            elapsed = (self.ended_at or self.started_at) - self.started_at
        return OrchestratorResult(
            task_id=self.run_id,
            title=self.title,
            status=self.status,
            agent_results=self._ordered(live_results) if live_results is not None else self.agent_results(),
            final_synthesis=self.final_synthesis,
            execution_time=elapsed,
            total_cost=self._total.cost_usd,
            synthesis_results=[SynthesisResult.from_dict(s) for s in self.syntheses],
            subtasks=(
                live_subtasks
                if live_subtasks is not None and len(live_subtasks) == len(self.subtasks)
                else [SubTask.from_dict(s) for s in self.subtasks.values()]
            ),
            error=self.error,
            usage=self.usage,
            cost_by_agent=self.usage_by_agent,
            cost_by_model=self.usage_by_model,
            generated_documents=[GeneratedDocument.from_dict(d) for d in self.documents],
            metadata=dict(self.metadata),
        )


class _Tally:
    """A running sum of usage dicts (mutable, so folding a cost event allocates nothing)."""

    __slots__ = (
        "cache_write_tokens",
        "cached_input_tokens",
        "calls",
        "cost_usd",
        "estimated",
        "input_tokens",
        "output_tokens",
        "reasoning_tokens",
    )

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_input_tokens = 0
        self.cache_write_tokens = 0
        self.reasoning_tokens = 0
        self.cost_usd = 0.0
        self.calls = 0
        self.estimated = False

    @classmethod
    def of(cls, usage: Mapping[str, Any]) -> _Tally:
        tally = cls()
        tally.add(usage)
        return tally

    def add(self, usage: Mapping[str, Any]) -> None:
        get = usage.get
        self.input_tokens += get("input_tokens", 0)
        self.output_tokens += get("output_tokens", 0)
        self.cached_input_tokens += get("cached_input_tokens", 0)
        self.cache_write_tokens += get("cache_write_tokens", 0)
        self.reasoning_tokens += get("reasoning_tokens", 0)
        self.cost_usd += get("cost_usd", 0.0)
        self.calls += get("calls", 0)
        self.estimated = self.estimated or bool(get("estimated", False))

    def freeze(self) -> Usage:
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.cached_input_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.cost_usd,
            self.calls,
            self.estimated,
        )
