"""Where a graph run resumed after its process stopped picks up, for readers of its log.

A run's log falls into *segments*, each driven by one process: from its start, or from a
``graph_run_resumed`` (a paused run going on), to a pause or its end.  A process that
dies ends its segment without an event, and the process that resumes the run records a
``workflow_resumed`` event saying which segment it continues and which visits were open
when the other stopped.  Tracing (:mod:`orchestration.backends.otel`) needs nothing
else to continue the same spans deterministically, in any process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..events import EventType, StreamEvent
from .core import GraphState, NodeState

__all__ = ["resume_marker"]


def resume_marker(stored: Sequence[StreamEvent], state: GraphState) -> dict[str, Any]:
    """The data of the ``workflow_resumed`` event of a run resumed after its process stopped.

    ``segment``: the seq of the event that opened the segment being continued (0: the
    run's start) and ``segment_started_at`` its time; ``open``: each visit that was running,
    by node, as ``[seq, timestamp]`` of its ``graph_node_started``.
    """
    segment, started_at = 0, stored[0].timestamp if stored else 0.0
    started: dict[str, tuple[int, float]] = {}
    for event in stored:
        kind = event.event_type
        if kind is EventType.GRAPH_RUN_RESUMED or (
            kind is EventType.WORKFLOW_RESUMED and event.data.get("after") == "paused"
        ):
            segment, started_at = event.seq, event.timestamp
        elif kind is EventType.GRAPH_NODE_STARTED:
            started[str(event.data.get("node"))] = (event.seq, event.timestamp)
    active = {
        node_id: list(started[node_id])
        for node_id, rec in state.nodes.items()
        if rec.state == NodeState.ACTIVE and node_id in started
    }
    return {
        "from_seq": stored[-1].seq if stored else 0,
        "after": "stopped",
        "segment": segment,
        "segment_started_at": started_at,
        "open": active,
        "title": str(stored[0].data.get("title") or "") if stored else "",
    }
