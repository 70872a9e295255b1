"""Where a graph run resumed after its process stopped picks up, for readers of its log.

A run's log falls into *segments*, each driven by one process: from its start, or from
the resume of a paused run, to a pause or its end.  Every resume records a
``workflow_resumed`` event: after a pause it opens a new segment; after a process that
died without a word (which ends its segment without an event) it says which segment it
continues and which visits were open when the other stopped.  Tracing (:mod:`orchestration.backends.otel`) needs nothing
else to continue the same spans deterministically, in any process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..events import EventType, StreamEvent
from .core import GraphState, NodeState

__all__ = ["resume_marker"]


def resume_marker(stored: Sequence[StreamEvent], state: GraphState, *, after: str) -> dict[str, Any]:
    """The data of the ``workflow_resumed`` event a resumed graph run records.

    ``after``: ``"paused"`` (the run paused and goes on: this event opens a new segment)
    or ``"stopped"`` (its process stopped without a word: this event continues that
    segment).  For ``"stopped"``, ``segment`` is the seq of the event that opened the
    segment (0: the run's start), ``segment_started_at`` its time, and ``open`` each visit
    that was running, by node, as ``[seq, timestamp]`` of its ``graph_node_started``.
    """
    first = stored[0].data if stored else {}
    names = {"title": str(first.get("title") or ""), "orchestrator": str(first.get("orchestrator") or "")}
    if after == "paused":
        return {"from_seq": stored[-1].seq if stored else 0, "after": after, **names}
    segment, started_at = 0, stored[0].timestamp if stored else 0.0
    started: dict[str, tuple[int, float]] = {}
    for event in stored:
        kind = event.event_type
        if kind is EventType.WORKFLOW_RESUMED and event.data.get("after") == "paused":
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
        "after": after,
        "segment": segment,
        "segment_started_at": started_at,
        "open": active,
        **names,
    }
