"""The data a run is made of: subtasks, agent results, syntheses and the final result.

All models are frozen dataclasses with ``to_dict``/``from_dict`` that round-trip through
JSON.  They construct exactly as the seed README shows, e.g.
``SubTask(id='task-1', description='Analyze data', agent_type=AgentType.ANALYST,
priority=1, dependencies=['task-0'])``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from .usage import Usage

__all__ = [
    "AgentResult",
    "AgentType",
    "GeneratedDocument",
    "OrchestratorResult",
    "SubTask",
    "SynthesisResult",
    "TaskStatus",
    "resume_hint",
    "without_resume_hint",
]


class TaskStatus(StrEnum):
    """Where a subtask or a run stands.

    A run is ``COMPLETED`` only when every subtask and the synthesis succeeded.  ``PARTIAL``
    means some agents failed but a result was still produced; ``BUDGET_EXCEEDED`` means
    ``max_total_cost`` stopped the run (results so far are kept); ``PAUSED`` means a
    guardrail paused the run and ``resume`` continues it.
    """

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    BUDGET_EXCEEDED = "budget_exceeded"
    PAUSED = "paused"

    @property
    def is_terminal(self) -> bool:
        """True for statuses of a finished run or subtask (``resume`` re-runs what a
        FAILED or PARTIAL run did not complete)."""
        return self not in (TaskStatus.PENDING, TaskStatus.IN_PROGRESS, TaskStatus.PAUSED)


def resume_hint(run_id: str) -> str:
    """How Python code continues a paused run: what its error ends with."""
    return f"continue it with await orchestrator.resume({run_id!r})"


def without_resume_hint(error: str, run_id: str) -> str:
    """``error`` without :func:`resume_hint` (an interface that words its own, the CLI)."""
    hint = resume_hint(run_id)
    return error.removesuffix(hint).removesuffix("; ")


class AgentType(StrEnum):
    """The role an agent plays; patterns use their own (belter, drummer, camina...)."""

    RESEARCHER = "researcher"
    ANALYST = "analyst"
    SYNTHESIZER = "synthesizer"
    WRITER = "writer"
    REVIEWER = "reviewer"
    CODER = "coder"
    PLANNER = "planner"
    SEARCHER = "searcher"
    WORKER = "worker"
    BELTER = "belter"
    DRUMMER = "drummer"
    CAMINA = "camina"
    CUSTOM = "custom"


def _tuple(value: Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _frozen_dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value) if value else {}


@dataclass(frozen=True, slots=True)
class SubTask:
    """One unit of work in a run's graph.

    ``dependencies`` are ids of subtasks that must complete first; their results reach
    this subtask in ``context["dependency_results"]``.  Among ready subtasks the one with
    the longest chain of dependents runs first, then the higher ``priority``.
    ``model`` and ``timeout_seconds`` override the config for this subtask only.
    """

    id: str
    description: str
    agent_type: AgentType = AgentType.WORKER
    priority: int = 0
    dependencies: Sequence[str] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    timeout_seconds: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dependencies", _tuple(self.dependencies))
        object.__setattr__(self, "metadata", _frozen_dict(self.metadata))
        object.__setattr__(self, "agent_type", _agent_type(self.agent_type))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "description": self.description,
            "agent_type": str(self.agent_type),
            "priority": self.priority,
            "dependencies": list(self.dependencies),
            "metadata": self.metadata,  # already this object's own copy
            "model": self.model,
            "timeout_seconds": self.timeout_seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubTask:
        """Inverse of :meth:`to_dict`."""
        return cls(**_known(cls, data))


def _agent_type(value: AgentType | str) -> AgentType | str:
    if type(value) is AgentType:
        return value
    try:
        return AgentType(value)
    except ValueError:
        return str(value)  # a pattern's own role name is kept as given


def _status(value: TaskStatus | str) -> TaskStatus:
    return value if type(value) is TaskStatus else TaskStatus(value)


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True, slots=True)
class AgentResult:
    """What one agent produced for one subtask.

    ``cost`` is in USD.  For model calls made through the framework it is filled in from
    the run's cost events; an orchestrator that calls its provider directly reports it
    here and the framework adds it to the run's bill.
    """

    agent_id: str
    agent_type: AgentType | str
    subtask_id: str
    content: str
    status: TaskStatus = TaskStatus.COMPLETED
    execution_time: float = 0.0
    cost: float = 0.0
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    attempts: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", _status(self.status))
        object.__setattr__(self, "agent_type", _agent_type(self.agent_type))
        object.__setattr__(self, "metadata", _frozen_dict(self.metadata))
        if isinstance(self.usage, Mapping):
            object.__setattr__(self, "usage", Usage.from_dict(dict(self.usage)))

    @property
    def succeeded(self) -> bool:
        """True when the agent completed its subtask."""
        return self.status is TaskStatus.COMPLETED

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "agent_id": self.agent_id,
            "agent_type": str(self.agent_type),
            "subtask_id": self.subtask_id,
            "content": self.content,
            "status": str(self.status),
            "execution_time": self.execution_time,
            "cost": self.cost,
            "error": self.error,
            "usage": self.usage.to_dict(),
            "model": self.model,
            "attempts": self.attempts,
            "metadata": self.metadata,  # already this object's own copy
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentResult:
        """Inverse of :meth:`to_dict`."""
        return cls(**_known(cls, data))


@dataclass(frozen=True, slots=True)
class SynthesisResult:
    """A synthesis over agent results; ``level`` 1 is the first tier above the agents."""

    content: str
    level: int = 1
    source_ids: Sequence[str] = ()
    agent_id: str = "synthesizer"
    model: str | None = None
    cost: float = 0.0
    execution_time: float = 0.0
    usage: Usage = field(default_factory=Usage)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "source_ids", _tuple(self.source_ids))
        object.__setattr__(self, "metadata", _frozen_dict(self.metadata))
        if isinstance(self.usage, Mapping):
            object.__setattr__(self, "usage", Usage.from_dict(dict(self.usage)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "content": self.content,
            "level": self.level,
            "source_ids": list(self.source_ids),
            "agent_id": self.agent_id,
            "model": self.model,
            "cost": self.cost,
            "execution_time": self.execution_time,
            "usage": self.usage.to_dict(),
            "metadata": self.metadata,  # already this object's own copy
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SynthesisResult:
        """Inverse of :meth:`to_dict`."""
        return cls(**_known(cls, data))


@dataclass(frozen=True, slots=True)
class GeneratedDocument:
    """A report file a run wrote."""

    format: str
    path: str
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"format": self.format, "path": self.path, "size_bytes": self.size_bytes}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratedDocument:
        """Inverse of :meth:`to_dict`."""
        return cls(**_known(cls, data))


@dataclass(frozen=True, slots=True)
class OrchestratorResult:
    """The outcome of a run: every agent's result, the synthesis, and the bill.

    ``task_id`` is the run id (also available as ``run_id``).  ``cost_by_agent`` and
    ``cost_by_model`` map to :class:`Usage` totals and sum to ``usage``/``total_cost``.
    """

    task_id: str
    title: str
    status: TaskStatus
    agent_results: Sequence[AgentResult] = ()
    final_synthesis: str | None = None
    execution_time: float = 0.0
    total_cost: float = 0.0
    synthesis_results: Sequence[SynthesisResult] = ()
    subtasks: Sequence[SubTask] = ()
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_by_agent: Mapping[str, Usage] = field(default_factory=dict)
    cost_by_model: Mapping[str, Usage] = field(default_factory=dict)
    generated_documents: Sequence[GeneratedDocument] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", _status(self.status))
        object.__setattr__(self, "agent_results", tuple(self.agent_results))
        object.__setattr__(self, "synthesis_results", tuple(self.synthesis_results))
        object.__setattr__(self, "subtasks", tuple(self.subtasks))
        object.__setattr__(self, "generated_documents", tuple(self.generated_documents))
        object.__setattr__(self, "metadata", _frozen_dict(self.metadata))
        object.__setattr__(self, "cost_by_agent", dict(self.cost_by_agent))
        object.__setattr__(self, "cost_by_model", dict(self.cost_by_model))

    @property
    def run_id(self) -> str:
        """The run's id (same as ``task_id``)."""
        return self.task_id

    @property
    def succeeded(self) -> bool:
        """True only for a fully successful run."""
        return self.status is TaskStatus.COMPLETED

    @property
    def failed_agents(self) -> list[AgentResult]:
        """Agent results that did not complete."""
        return [r for r in self.agent_results if r.status is not TaskStatus.COMPLETED]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "task_id": self.task_id,
            "title": self.title,
            "status": str(self.status),
            "agent_results": [r.to_dict() for r in self.agent_results],
            "final_synthesis": self.final_synthesis,
            "execution_time": self.execution_time,
            "total_cost": self.total_cost,
            "synthesis_results": [s.to_dict() for s in self.synthesis_results],
            "subtasks": [s.to_dict() for s in self.subtasks],
            "error": self.error,
            "usage": self.usage.to_dict(),
            "cost_by_agent": {k: v.to_dict() for k, v in self.cost_by_agent.items()},
            "cost_by_model": {k: v.to_dict() for k, v in self.cost_by_model.items()},
            "generated_documents": [d.to_dict() for d in self.generated_documents],
            "metadata": self.metadata,  # already this object's own copy
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OrchestratorResult:
        """Inverse of :meth:`to_dict`."""
        known = _known(cls, data)
        known["agent_results"] = [AgentResult.from_dict(r) for r in data.get("agent_results", ())]
        known["synthesis_results"] = [SynthesisResult.from_dict(s) for s in data.get("synthesis_results", ())]
        known["subtasks"] = [SubTask.from_dict(s) for s in data.get("subtasks", ())]
        known["generated_documents"] = [
            GeneratedDocument.from_dict(d) for d in data.get("generated_documents", ())
        ]
        if "usage" in data:
            known["usage"] = Usage.from_dict(data["usage"])
        for key in ("cost_by_agent", "cost_by_model"):
            if key in data:
                known[key] = {k: Usage.from_dict(v) for k, v in data[key].items()}
        return cls(**known)
