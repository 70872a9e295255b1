"""Typed graph events: one frozen type per kind, and their codec to the run's event log.

Every change to a graph run is one of these events, and a run's graph state is nothing
but their fold (:mod:`.state`).  Two families:

- **Decisions** the shell records (what happened outside the core): :class:`RunStarted`
  (carrying the initial graph), :class:`NodeStarted`, :class:`NodeCompleted`,
  :class:`NodeFailed`, :class:`RouteChosen`, :class:`NodeCancelled`,
  :class:`RunFinished`, and the mutations (:class:`NodeAdded`, :class:`NodeEdited`,
  :class:`NodeRemoved`, :class:`EdgeAdded`, :class:`EdgeRemoved`, :class:`NodeSplit`,
  :class:`ReworkInserted`), each with an optional ``reason`` and, when a handler made
  it, ``by`` (its node: a visit that runs again after a crash or a question does not
  make its changes twice, see :class:`~orchestration.engine.core.state.NodeRecord`).
- **Consequences** the fold derives (:class:`NodeReady`, :class:`NodeSkipped`): the fold
  emits them itself, the shell stores them so the log reads completely, and folding them
  again is a no-op (they are confirmations, never inputs).

Events are ``msgspec.Struct(frozen=True, gc=False)``: cheap to build and invisible to the
garbage collector.  They also behave as read-only mappings (``keys``, ``[]``, ``get``),
so an event is the ``data`` of the :class:`~orchestration.events.StreamEvent` that
carries it through every existing store without a copy: the memory store keeps the
struct itself, the SQL stores ``dict()`` it into JSON, and :func:`decode` turns stored
JSON back into the typed event (``kind`` is the discriminator).  ``RunStarted`` travels
as ``WORKFLOW_START`` and ``RunFinished`` as ``WORKFLOW_COMPLETE``/``ERROR``/``CANCELLED``,
so run listings and summaries read graph runs like any other run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, cast

import msgspec

from ...events import EventType, StreamEvent
from .spec import Edge, Node

__all__ = [
    "EVENT_TYPES",
    "GraphEvent",
    "EdgeAdded",
    "InterruptAnswered",
    "EdgeRemoved",
    "NodeAdded",
    "NodeCancelled",
    "NodeCompleted",
    "NodeEdited",
    "NodeFailed",
    "NodeInterrupted",
    "NodeReady",
    "NodeRemoved",
    "NodeRequeued",
    "NodeSkipped",
    "NodeSplit",
    "NodeStarted",
    "ReworkInserted",
    "RouteChosen",
    "RunFinished",
    "RunResumed",
    "RunStarted",
    "decode",
    "event_type",
    "is_graph_event",
    "to_builtins",
    "wrap",
]


def _encode_unknown(value: Any) -> Any:
    """Outputs are user values: mappings and sequences become JSON, anything else its str."""
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def to_builtins(value: Any) -> Any:
    """``value`` as JSON-ready builtins (what a SQL store writes)."""
    return msgspec.to_builtins(value, enc_hook=_encode_unknown, str_keys=True)


class GraphEvent(msgspec.Struct, frozen=True, gc=False, tag_field="kind"):
    """Base of every graph event; a read-only mapping of its fields (plus ``kind``)."""

    def keys(self) -> tuple[str, ...]:
        """Field names, ``kind`` first (what ``dict(event)`` iterates)."""
        return ("kind", *self.__struct_fields__)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __contains__(self, key: object) -> bool:
        return key == "kind" or key in self.__struct_fields__

    def __len__(self) -> int:
        return len(self.__struct_fields__) + 1

    def __getitem__(self, key: str) -> Any:
        if key == "kind":
            return self.__struct_config__.tag
        if key not in self.__struct_fields__:
            raise KeyError(key)
        return to_builtins(getattr(self, key))

    def get(self, key: str, default: Any = None) -> Any:
        """``self[key]``, or ``default`` when the event has no such field."""
        try:
            return self[key]
        except KeyError:
            return default


# -- decisions ---------------------------------------------------------------------------


class RunStarted(GraphEvent, tag="run_started", frozen=True, gc=False):
    """A graph run began with this graph and payload."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    entry: str | None = None
    payload: Any = None
    title: str = ""
    task: str = ""
    orchestrator: str = "graph"


class NodeStarted(GraphEvent, tag="node_started", frozen=True, gc=False):
    """A READY node's handler began its ``visit`` (1 for the first).

    On a board (``orchestration.graph.board``) an agent claimed it: ``agent`` says who and
    ``lease_until`` (a wall-clock time the shell chose) when the claim lapses.
    """

    node: str
    visit: int
    agent: str = ""
    lease_until: float | None = None


class NodeCompleted(GraphEvent, tag="node_completed", frozen=True, gc=False):
    """A visit finished with ``output`` (and the optional attributed-context channels).

    ``duration`` (seconds, measured by the shell) weights the critical path; it is part
    of the event so that replaying the log gives the same schedule.
    """

    node: str
    visit: int
    output: Any = None
    summary: str | None = None
    critical: dict[str, Any] | None = None
    artifacts: dict[str, Any] | None = None
    duration: float | None = None


class NodeFailed(GraphEvent, tag="node_failed", frozen=True, gc=False):
    """A visit raised (or timed out, or chose an unknown route)."""

    node: str
    visit: int
    error: str
    error_type: str = ""


class RouteChosen(GraphEvent, tag="route_chosen", frozen=True, gc=False):
    """A SWITCH's visit chose these routes (target node ids); its NodeCompleted follows."""

    node: str
    visit: int
    routes: tuple[str, ...]


class NodeCancelled(GraphEvent, tag="node_cancelled", frozen=True, gc=False):
    """A node that had not finished was cancelled (the run was stopped)."""

    node: str
    visit: int = 0
    reason: str = ""


class NodeRequeued(GraphEvent, tag="node_requeued", frozen=True, gc=False):
    """A visit that was running when its process stopped goes back to READY (resume re-runs it)."""

    node: str
    visit: int
    reason: str = ""


class RunFinished(GraphEvent, tag="run_finished", frozen=True, gc=False):
    """The run ended: ``status`` is completed, failed or cancelled, or paused (nodes are
    waiting for answers; :class:`RunResumed` continues it)."""

    status: str
    reason: str = ""


class NodeInterrupted(GraphEvent, tag="node_interrupted", frozen=True, gc=False):
    """A running node asked a question (its ``index``-th of this visit) and waits for the answer.

    ``schema`` is the answer's JSON schema (None: any JSON value).  The node stops; once
    answered it runs its visit again from the start, and the questions it already asked
    get their recorded answers at once.
    """

    node: str
    visit: int
    index: int
    question: str
    schema: dict[str, Any] | None = None


class InterruptAnswered(GraphEvent, tag="interrupt_answered", frozen=True, gc=False):
    """The answer to a waiting node's question (from a person, an API call or a policy)."""

    node: str
    index: int
    answer: Any = None
    by: str = ""


class RunResumed(GraphEvent, tag="run_resumed", frozen=True, gc=False):
    """A paused run continues."""

    reason: str = ""


# -- mutations -----------------------------------------------------------------------------


class NodeAdded(GraphEvent, tag="node_added", frozen=True, gc=False):
    """A node joined the graph, with edges to or from it."""

    node: Node
    edges: tuple[Edge, ...] = ()
    reason: str = ""
    by: str = ""


class NodeEdited(GraphEvent, tag="node_edited", frozen=True, gc=False):
    """A node that has not started got a new definition (same id)."""

    node: Node
    reason: str = ""
    by: str = ""


class NodeRemoved(GraphEvent, tag="node_removed", frozen=True, gc=False):
    """Nodes left the graph (one, or one with its descendants), with their edges."""

    nodes: tuple[str, ...]
    reason: str = ""
    by: str = ""


class EdgeAdded(GraphEvent, tag="edge_added", frozen=True, gc=False):
    """An edge joined the graph (``refine`` adds a dependency this way)."""

    edge: Edge
    reason: str = ""
    by: str = ""


class EdgeRemoved(GraphEvent, tag="edge_removed", frozen=True, gc=False):
    """The edge ``source -> target`` left the graph."""

    source: str
    target: str
    reason: str = ""
    by: str = ""


class NodeSplit(GraphEvent, tag="node_split", frozen=True, gc=False):
    """A node that had not started became parallel ``parts`` feeding a ``join``.

    Each part takes the node's inputs; the join takes its outputs.
    """

    node: str
    parts: tuple[Node, ...]
    join: Node
    reason: str = ""
    by: str = ""


class ReworkInserted(GraphEvent, tag="rework_inserted", frozen=True, gc=False):
    """``node`` now sits between completed ``source`` and ``consumer``, which runs again."""

    source: str
    consumer: str
    node: Node
    reason: str = ""
    by: str = ""


# -- consequences (derived by the fold, stored for readers) --------------------------------


class NodeReady(GraphEvent, tag="node_ready", frozen=True, gc=False):
    """The node's inputs are resolved: ``visit`` may start."""

    node: str
    visit: int


class NodeSkipped(GraphEvent, tag="node_skipped", frozen=True, gc=False):
    """The node will not run: no route reached it, or an input failed."""

    node: str
    reason: str = ""


_ALL: tuple[type[GraphEvent], ...] = (
    RunStarted,
    NodeStarted,
    NodeCompleted,
    NodeFailed,
    RouteChosen,
    NodeCancelled,
    NodeRequeued,
    RunFinished,
    NodeInterrupted,
    InterruptAnswered,
    RunResumed,
    NodeAdded,
    NodeEdited,
    NodeRemoved,
    EdgeAdded,
    EdgeRemoved,
    NodeSplit,
    ReworkInserted,
    NodeReady,
    NodeSkipped,
)

#: Graph event class -> the EventType its StreamEvent carries.
EVENT_TYPES: Mapping[type[GraphEvent], EventType] = {
    cls: EventType(f"graph_{cls.__struct_config__.tag}")
    for cls in _ALL
    if cls not in (RunStarted, RunFinished)
} | {RunStarted: EventType.WORKFLOW_START}

_FINISHED_TYPES = {
    "completed": EventType.WORKFLOW_COMPLETE,
    "partial": EventType.WORKFLOW_COMPLETE,  # ended with a result, short of the whole task
    "cancelled": EventType.WORKFLOW_CANCELLED,
    "paused": EventType.WORKFLOW_PAUSED,
}
_GRAPH_TYPES = frozenset(EVENT_TYPES.values())
_DECODER: Any = msgspec.convert
_UNION: Any = _ALL[0]
for _cls in _ALL[1:]:
    _UNION = _UNION | _cls


def event_type(event: GraphEvent) -> EventType:
    """The EventType a graph event is stored and streamed under."""
    if isinstance(event, RunFinished):
        return _FINISHED_TYPES.get(event.status, EventType.WORKFLOW_ERROR)
    return EVENT_TYPES[type(event)]


def is_graph_event(event: StreamEvent) -> bool:
    """True when ``event`` carries a graph event (see :func:`decode`)."""
    if event.event_type in _GRAPH_TYPES or event.is_terminal:
        return isinstance(event.data, GraphEvent) or "kind" in event.data
    return False


def wrap(event: GraphEvent, run_id: str, seq: int, timestamp: float) -> StreamEvent:
    """The StreamEvent that stores and streams ``event`` (the event itself is its data)."""
    cls = type(event)
    kind = EVENT_TYPES[cls] if cls is not RunFinished else event_type(event)
    node = getattr(event, "node", None)
    # tuple.__new__ skips the named tuple's Python-level __new__: one per event adds up.
    fields = (kind, run_id, seq, timestamp, event, node if type(node) is str else None, 0.0)
    return cast(StreamEvent, _new_tuple(StreamEvent, fields))


_new_tuple: Any = tuple.__new__


def decode(event: StreamEvent) -> GraphEvent:
    """The typed graph event a stored StreamEvent carries (raises GraphError if malformed)."""
    data = event.data
    if isinstance(data, GraphEvent):
        return data
    try:
        return cast(GraphEvent, _DECODER(dict(data), _UNION))
    except (msgspec.ValidationError, TypeError) as error:
        from ...errors import GraphError

        raise GraphError(
            f"run {event.run_id}: stored graph event seq {event.seq} is malformed ({error})"
        ) from error
