"""A node's handler, run on a worker: the same ``NodeContext`` as a local run's.

The workflow holds the graph state; an activity gets what its node needs of it (its
input, its inputs by source, the payload, its attributed context, the answers to its
questions, the changes an earlier try of this visit made) and runs the handler with the
usual :class:`~orchestration.graph.NodeContext`.  What the handler does comes back as
an *outcome* (its output or error, the routes a switch chose, the graph changes it made),
which the workflow folds.  Model calls (``ctx.call_llm``) go through the framework here,
and their events are appended to the run's log as they happen.

Differences from a local run, because the graph lives in the workflow: a graph change a
handler makes is checked by the workflow when the node finishes (an invalid one fails
the node, rather than raising inside the handler), nodes it makes ready start once the
node finishes, ``ctx.graph.state()`` and ``ctx.artifact()`` are not available.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ...engine.core import GraphEvent, Node, NodeKind, NodeState
from ...engine.core.context import ArtifactRef, AttributedContext
from ...engine.core.events import NodeRemoved
from ...errors import GraphError
from ...events import TERMINAL_EVENTS, EventType, StreamEvent
from ...graph import CancellationToken, GraphHandle, NodeContext
from .targets import Handler, Program
from .wire import decode_context, encode

__all__ = ["NodeRun", "RemoteContext", "failed", "outcome_of"]


class _Record:
    """The part of a node's record its context reads: answers, and earlier changes."""

    __slots__ = ("answers", "made")

    def __init__(self, answers: tuple[Any, ...], made: tuple[GraphEvent, ...]) -> None:
        self.answers = answers
        self.made = made


class _State:
    """The part of the graph state a remote handler may read."""

    def __init__(self, payload: Any, node_id: str, record: _Record) -> None:
        self.payload = payload
        self.nodes = {node_id: record}

    def state_of(self, node_id: str) -> NodeState:
        raise GraphError(
            "ctx.graph.state() is not available to nodes running on Temporal workers (the graph "
            "lives in the workflow); pass what a node needs through its inputs"
        )

    def descendants(self, node_id: str) -> list[Any]:
        raise GraphError("cascade removal is worked out by the workflow")


class NodeRun:
    """Stands in for a ``GraphRun`` under one node's handler on a worker.

    Collects the graph changes the handler makes and the run events its model calls
    emit (``emit_stream``); ``flushed`` appends those through ``write``.
    """

    def __init__(
        self,
        run_id: str,
        program: Program,
        node: Node,
        *,
        payload: Any,
        inputs: Mapping[str, Any],
        answers: tuple[Any, ...],
        made: tuple[GraphEvent, ...],
        title: str,
        write: Any,
        owner: str = "",
    ) -> None:
        self.run_id = run_id
        #: The workflow's lease owner, whose name the node's model calls carry.
        self._owner = owner
        #: No store here: the workflow owns the run's log (the node's events go through
        #: ``write``), so model calls are admitted against this worker's budget copy only.
        self.store: Any = None
        self.title = title
        self.program = program
        self.state = _State(payload, node.id, _Record(answers, made))
        self.token = CancellationToken()
        self.models: Any = None
        self.changes: list[dict[str, Any]] = []
        self.aborted: str | None = None
        #: The run's closing event a handler emitted (an orchestrator's verdict), if any.
        self.terminal: dict[str, Any] | None = None
        #: The store's failure under one of this node's appends (the node is tried again).
        self.store_error: BaseException | None = None
        #: Stops the handler (set by the activity running it).
        self.on_abort: Callable[[], Any] | None = None
        self._inputs = dict(inputs)
        self._buffer: list[StreamEvent] = []
        self._write = write
        self._cascade = False

    # -- what NodeContext and GraphHandle use of a run -------------------------------

    def inputs_of(self, node_id: str) -> dict[str, Any]:
        return dict(self._inputs)

    def _handler(self, node: Node) -> Handler | None:
        return self.program.handler(node)

    def record(self, event: GraphEvent) -> None:
        """A graph change the handler made (the workflow checks and folds it)."""
        cascade, self._cascade = self._cascade, False
        self.changes.append({"event": encode(event), "cascade": cascade})

    def dispatch(self) -> None:
        """Nodes a change made ready start when this node finishes (the workflow schedules)."""

    # -- what model calls use of a run ------------------------------------------------

    def emit_stream(
        self, kind: EventType, data: Mapping[str, Any], agent_id: str | None = None, progress: float = 0.0
    ) -> StreamEvent:
        event = StreamEvent(kind, self.run_id, 0, time.time(), data, agent_id, progress)
        if kind in TERMINAL_EVENTS:
            # An orchestrator's verdict: written after the graph's own end (the workflow does).
            self.terminal = {"kind": kind.value, "data": encode(data), "agent_id": agent_id}
        else:
            self._buffer.append(event)
        return event

    async def flushed(self) -> None:
        """Append what the model calls emitted so far (numbered after the run's last event)."""
        if self._buffer:
            batch, self._buffer = self._buffer, []
            await self._write(batch)

    def abort(self, reason: str) -> None:
        """A budget or guardrail stops the run (the workflow ends it as failed)."""
        if self.aborted is None:
            self.aborted = reason
            self.token.cancel(reason)
            if self.on_abort is not None:
                self.on_abort()


class _RemoteHandle(GraphHandle):
    """``ctx.graph`` on a worker: changes are recorded for the workflow to fold."""

    def remove_node(self, node_id: str, *, cascade: bool = False, reason: str = "") -> None:
        """Remove a node (with every descendant when ``cascade``, worked out by the workflow)."""
        run = self._run
        if isinstance(run, NodeRun):
            run._cascade = cascade
        self._change(NodeRemoved((node_id,), reason))


class RemoteContext(NodeContext):
    """The :class:`NodeContext` a handler gets on a worker (see the module docstring)."""

    __slots__ = ("_remote_context",)

    def __init__(
        self, run: NodeRun, node: Node, visit: int, value: Any, context: Mapping[str, Any] | None
    ) -> None:
        super().__init__(run, node, visit, value)  # type: ignore[arg-type]  # a GraphRun's stand-in
        self._remote_context = context

    @property
    def context(self) -> AttributedContext:
        """One entry per contributing ancestor, as the workflow computed it when the node started."""
        if self._context is None:
            self._context = decode_context(self._remote_context)
        return self._context

    def artifact(self, ref: ArtifactRef) -> Any:
        """Not available on Temporal workers: artifacts live in the workflow's state."""
        raise GraphError(
            f"ctx.artifact() is not available to nodes running on Temporal workers ({ref.node!r}'s "
            "outputs live in the workflow); read them through ctx.input or ctx.inputs()"
        )

    @property
    def graph(self) -> GraphHandle:
        """A handle to change the run's graph (checked by the workflow when the node ends)."""
        if self._graph is None:
            self._graph = _RemoteHandle(self._run, self.node.id)  # type: ignore[arg-type]
        return self._graph


def outcome_of(node: Node, value: Any, context: NodeContext, duration: float) -> dict[str, Any]:
    """A handler's return value as the outcome the workflow folds (as a local run reads it)."""
    from ...graph import NodeOutput

    if value is context:
        value = context.input
    if node.kind is NodeKind.SWITCH:
        routes = (value,) if isinstance(value, str) else value
        if type(value) is not str and (
            not isinstance(routes, list | tuple) or not all(isinstance(r, str) for r in routes)
        ):
            return failed(
                f"switch {node.id!r} must return a route (a target id) or a list of them, "
                f"not {type(value).__name__}",
                "GraphError",
            )
        return {"status": "completed", "output": encode(value), "routes": list(routes), "duration": duration}
    if isinstance(value, NodeOutput):
        return {
            "status": "completed",
            "output": encode(value.output),
            "summary": value.summary,
            "critical": encode(dict(value.critical)) if value.critical is not None else None,
            "artifacts": encode(dict(value.artifacts)) if value.artifacts is not None else None,
            "duration": duration,
        }
    return {"status": "completed", "output": encode(value), "duration": duration}


def failed(error: str, error_type: str) -> dict[str, Any]:
    """The outcome of a handler that raised."""
    return {"status": "failed", "error": error, "error_type": error_type}
