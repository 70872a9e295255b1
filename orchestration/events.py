"""Typed events: the single source of truth for everything a run does.

Each event has the run's id, a per-run ``seq`` that increases by one with every event,
a timestamp, the ``agent_id`` it concerns (where one applies), the run's ``progress``
percentage at that moment, and a JSON-ready ``data`` payload.  Streaming, progress,
cost totals, reports and resume all read the same sequence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = ["TERMINAL_EVENTS", "EventType", "StreamEvent"]

_NO_DATA: Mapping[str, Any] = MappingProxyType({})


class EventType(StrEnum):
    """What happened.  Values are stable strings (they are stored and sent over SSE)."""

    WORKFLOW_START = "workflow_start"
    WORKFLOW_COMPLETE = "workflow_complete"
    WORKFLOW_ERROR = "workflow_error"
    WORKFLOW_CANCELLED = "workflow_cancelled"
    WORKFLOW_RESUMED = "workflow_resumed"
    WORKFLOW_PAUSED = "workflow_paused"
    DECOMPOSITION_START = "decomposition_start"
    DECOMPOSITION_COMPLETE = "decomposition_complete"
    AGENT_START = "agent_start"
    AGENT_PROGRESS = "agent_progress"
    AGENT_COMPLETE = "agent_complete"
    AGENT_ERROR = "agent_error"
    AGENT_SKIPPED = "agent_skipped"
    AGENT_RETRY = "agent_retry"
    MODEL_RETRY = "model_retry"
    MODEL_FALLBACK = "model_fallback"
    TOKEN_DELTA = "token_delta"
    TOOL_CALL = "tool_call"  # a tool ran: its name, call id, timing, ok or error_type (no arguments)
    COST_UPDATE = "cost_update"
    CALL_RESERVED = "call_reserved"  # a call's worst case, held (durably) before it is sent
    CALL_RELEASED = "call_released"  # a reserved call failed: its reservation costs nothing
    BUDGET_EXCEEDED = "budget_exceeded"
    SYNTHESIS_START = "synthesis_start"
    SYNTHESIS_COMPLETE = "synthesis_complete"
    ITERATION_START = "iteration_start"
    ITERATION_COMPLETE = "iteration_complete"
    BRANCH_SELECTED = "branch_selected"
    DOCUMENT_GENERATION_START = "document_generation_start"
    DOCUMENT_GENERATION_COMPLETE = "document_generation_complete"
    DOCUMENT_ERROR = "document_error"  # a report that could not be written, and why
    GUARDRAIL = "guardrail"
    CALLBACK_ERROR = "callback_error"
    WARNING = "warning"
    # graph runs (orchestration.engine.core.events): one member per graph event kind
    GRAPH_NODE_STARTED = "graph_node_started"
    GRAPH_NODE_COMPLETED = "graph_node_completed"
    GRAPH_NODE_FAILED = "graph_node_failed"
    GRAPH_ROUTE_CHOSEN = "graph_route_chosen"
    GRAPH_NODE_CANCELLED = "graph_node_cancelled"
    GRAPH_NODE_ADDED = "graph_node_added"
    GRAPH_NODE_EDITED = "graph_node_edited"
    GRAPH_NODE_REMOVED = "graph_node_removed"
    GRAPH_EDGE_ADDED = "graph_edge_added"
    GRAPH_EDGE_REMOVED = "graph_edge_removed"
    GRAPH_NODE_SPLIT = "graph_node_split"
    GRAPH_REWORK_INSERTED = "graph_rework_inserted"
    GRAPH_NODE_READY = "graph_node_ready"
    GRAPH_NODE_SKIPPED = "graph_node_skipped"
    GRAPH_NODE_REQUEUED = "graph_node_requeued"
    GRAPH_NODE_INTERRUPTED = "graph_node_interrupted"
    GRAPH_INTERRUPT_ANSWERED = "graph_interrupt_answered"
    GRAPH_RUN_RESUMED = "graph_run_resumed"


TERMINAL_EVENTS = frozenset(
    {
        EventType.WORKFLOW_COMPLETE,
        EventType.WORKFLOW_ERROR,
        EventType.WORKFLOW_CANCELLED,
        EventType.WORKFLOW_PAUSED,
    }
)


class StreamEvent(NamedTuple):
    """One thing that happened in a run (immutable; a named tuple, so making one is cheap)."""

    event_type: EventType
    run_id: str
    seq: int
    timestamp: float
    data: Mapping[str, Any] = _NO_DATA
    agent_id: str | None = None
    progress: float = 0.0

    @property
    def task_id(self) -> str:
        """The run's id, under the seed README's name."""
        return self.run_id

    @property
    def is_terminal(self) -> bool:
        """True for the event that ends a run (its outcome: nothing runs after it)."""
        return self.event_type in TERMINAL_EVENTS

    @property
    def is_last(self) -> bool:
        """True for a run's last event: its terminal event, unless reports are written after
        it (``"reports_pending"`` in its data), then the ``document_generation_complete``
        that lists them (``"ends_run"`` in its data).  Streams end here."""
        data = self.data if isinstance(self.data, Mapping) else _NO_DATA  # graph events: structs
        if self.event_type in TERMINAL_EVENTS:
            return not data.get("reports_pending")
        return self.event_type is EventType.DOCUMENT_GENERATION_COMPLETE and bool(data.get("ends_run"))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "event_type": str(self.event_type),
            "run_id": self.run_id,
            "seq": self.seq,
            "timestamp": self.timestamp,
            "agent_id": self.agent_id,
            "progress": self.progress,
            "data": dict(self.data),
        }

    def to_json(self) -> str:
        """Compact JSON (non-ASCII kept as is)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"), default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamEvent:
        """Inverse of :meth:`to_dict`."""
        return cls(
            event_type=EventType(data["event_type"]),
            run_id=data["run_id"],
            seq=int(data["seq"]),
            timestamp=float(data["timestamp"]),
            data=dict(data.get("data") or {}),
            agent_id=data.get("agent_id"),
            progress=float(data.get("progress") or 0.0),
        )


_IN_PROGRESS_EVENTS = frozenset(
    {EventType.WORKFLOW_START, EventType.WORKFLOW_RESUMED, EventType.GRAPH_RUN_RESUMED}
)


def status_after(kind: EventType, data: Mapping[str, Any]) -> str | None:
    """The run status an event sets, or None if it leaves the status alone.

    The one rule every fold of a run's status uses (the engine's run state and the
    stores' run summaries), so a listing never disagrees with the run: ``workflow_start``
    and ``workflow_resumed`` make a run in progress, a terminal event sets the status it
    carries (failed if it carries none).
    """
    if kind in _IN_PROGRESS_EVENTS:
        return "in_progress"
    if kind in TERMINAL_EVENTS:
        return str(data.get("status") or "failed")
    return None
