"""The pure graph core: typed events, their fold into graph state, and the scheduler.

No asyncio, no I/O, no clock, no randomness: the same events always give the same graph,
node states, outputs and ready set, so resume is a replay of the log and the core can run
inside a deterministic workflow engine.  The shell (:mod:`orchestration.engine.graphrun`)
executes nodes and records what happened as events; the core decides what that means.

- :mod:`.spec`: ``Node``, ``Edge``, ``Contract``, ``NodeKind``, ``NodeState``;
- :mod:`.events`: one frozen type per event kind, and their codec to ``StreamEvent``;
- :mod:`.state`: :class:`GraphState`, the fold (readiness, skipping, loops, quorum);
- :mod:`.mutations`: validation and folding of graph changes;
- :mod:`.scheduler`: :func:`schedule`, the ordered ready nodes;
- :mod:`.context`: attributed context (critical, summary, artifacts) with provenance.
"""

from __future__ import annotations

from .context import ArtifactRef, AttributedContext, ContextEntry, attributed_context, resolve
from .events import (
    EdgeAdded,
    EdgeRemoved,
    GraphEvent,
    NodeAdded,
    NodeCancelled,
    NodeCompleted,
    NodeEdited,
    NodeFailed,
    NodeReady,
    NodeRemoved,
    NodeRequeued,
    NodeSkipped,
    NodeSplit,
    NodeStarted,
    ReworkInserted,
    RouteChosen,
    RunFinished,
    RunStarted,
    decode,
    is_graph_event,
    wrap,
)
from .scheduler import schedule
from .spec import Contract, Edge, Node, NodeKind, NodeState
from .state import GraphState, fold

__all__ = (
    "ArtifactRef",
    "AttributedContext",
    "Contract",
    "ContextEntry",
    "Edge",
    "EdgeAdded",
    "EdgeRemoved",
    "GraphEvent",
    "GraphState",
    "Node",
    "NodeAdded",
    "NodeCancelled",
    "NodeCompleted",
    "NodeEdited",
    "NodeFailed",
    "NodeKind",
    "NodeReady",
    "NodeRemoved",
    "NodeRequeued",
    "NodeSkipped",
    "NodeSplit",
    "NodeStarted",
    "NodeState",
    "ReworkInserted",
    "RouteChosen",
    "RunFinished",
    "RunStarted",
    "attributed_context",
    "decode",
    "fold",
    "is_graph_event",
    "resolve",
    "schedule",
    "wrap",
)
