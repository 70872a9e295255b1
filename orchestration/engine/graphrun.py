"""Running a graph locally: the shell around the pure core.

The core (:mod:`orchestration.engine.core`) decides; this module acts.  A
:class:`GraphRun` folds each thing that happens into the run's
:class:`~orchestration.engine.core.GraphState` as a typed event, asks
:func:`~orchestration.engine.core.schedule` which READY nodes to start, and runs their
handlers as tasks of one ``asyncio.TaskGroup`` (an ``asyncio.timeout`` only for nodes
with a ``timeout``): no fire-and-forget, nothing outlives the run.

Per node the work is deliberately small: a ``NodeStarted`` event, one task, a
``NodeCompleted`` event (plus the derived ``NodeReady``).  Completion is handled at the
end of the node's own task (no central loop to wake), and events reach the store in
batches: a flusher task appends whatever accumulated since its last write, then hands
the batch to the subscribers' own queues (:mod:`orchestration.engine.callbacks`: a time
limit per event, so no subscriber can hold up the run).  Events are
``gc=False`` structs carried as the ``data`` of a ``StreamEvent``, so the memory store
keeps them without a copy and the collector never scans them.

Resume: ``GraphRun(..., run_id=...)`` on a store that holds that run folds its events
and carries on; visits that were running when the process stopped are requeued
(``NodeRequeued``) and run again, finished runs are returned as they ended.  A run whose
task is cancelled from outside (not :meth:`GraphRun.cancel`: a shutdown, a timeout
around it) is interrupted, not ended: its running visits are requeued, what it recorded
is stored, and it resumes like a crashed one.  A visit that runs again does not repeat
the graph changes it made the first time (see :attr:`NodeContext.graph`).

One process drives a run at a time: it holds the run's lease (taken over at once from a
dead holder on this machine), renews it, and fences every append with it.  Handlers call
models through :mod:`orchestration.engine.graphcalls` (the run's budget, retries and
fallbacks, billed to the node) when the run has a provider; ``capacity`` and ``headroom``
callables feed the scheduler's rate-limit lanes and budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import types
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ..config import OrchestratorConfig
from ..errors import ConfigError, GraphError, GraphMutationError, SequenceConflictError, redact
from ..events import EventType, StreamEvent
from ..llm import Completion
from ..pricing import PriceTable
from ..stores.base import RunStore
from ..usage import Usage
from . import leases
from .callbacks import CallbackDelivery, CallbackFailure, StreamCallback, StreamCallbacks, as_callbacks
from .core import (
    AttributedContext,
    Edge,
    EdgeAdded,
    EdgeRemoved,
    GraphEvent,
    GraphState,
    Node,
    NodeAdded,
    NodeCancelled,
    NodeCompleted,
    NodeEdited,
    NodeFailed,
    NodeKind,
    NodeRemoved,
    NodeRequeued,
    NodeSplit,
    NodeStarted,
    NodeState,
    ReworkInserted,
    RouteChosen,
    RunFinished,
    RunStarted,
    attributed_context,
    decode,
    is_graph_event,
    resolve,
    wrap,
)
from .core.context import ArtifactRef
from .core.events import InterruptAnswered, NodeInterrupted, RunResumed
from .leases import new_owner

if TYPE_CHECKING:
    from .graphcalls import ModelAccess
from .core.scheduler import take
from .core.spec import Contract
from .core.state import NodeRecord

__all__ = ["CancellationToken", "GraphHandle", "GraphResult", "GraphRun", "NodeContext", "NodeOutput"]

Handler = Callable[..., Any]

_CANCEL_POLL_SECONDS = 0.5
#: A store that is not durable (the memory store) gets events in batches of this many
#: when nobody subscribes: it dies with the process, so waiting loses nothing.
_LAZY_BATCH = 1024
_DONE_STATE = NodeState.COMPLETED
_INTERRUPTED = "interrupted: the task running the graph was cancelled"
_COROUTINE = types.CoroutineType


@dataclass(frozen=True, slots=True)
class NodeOutput:
    """What a handler returns to fill the attributed-context channels as well.

    ``output`` is the node's result (what its consumers get as input); ``summary`` reaches
    two hops, ``critical`` and ``artifacts`` every descendant (artifacts by reference).
    """

    output: Any = None
    summary: str | None = None
    critical: Mapping[str, Any] | None = None
    artifacts: Mapping[str, Any] | None = None


class CancellationToken:
    """The run's cancellation, for handlers: check :attr:`cancelled` or ``await wait()``."""

    __slots__ = ("_event", "reason")

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        """True once the run was cancelled."""
        return self.reason is not None

    def raise_if_cancelled(self) -> None:
        """Raise RunCancelledError once the run was cancelled."""
        if self.reason is not None:
            from ..errors import RunCancelledError

            raise RunCancelledError(self.reason)

    async def wait(self) -> str:
        """Return (the reason) once the run is cancelled."""
        if self.reason is None:
            if self._event is None:
                self._event = asyncio.Event()
            await self._event.wait()
        return self.reason or ""

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel (the first reason wins)."""
        if self.reason is None:
            self.reason = reason
            if self._event is not None:
                self._event.set()


class NodeContext(Mapping[str, Any]):
    """What a handler receives.  As a mapping it reads the node's input (seed 003's shape).

    Attributes: ``node`` (the Node), ``node_id``, ``visit`` (1 for the first), ``input``
    (the run payload for a node without inputs; one input's output; or ``{source:
    output}`` for several), ``payload`` (the run's payload), ``context`` (the attributed
    context, computed on first access), ``cancel`` (the run's token), ``graph`` (a handle
    to change the running graph), ``run_id``.
    """

    __slots__ = ("_asks", "_context", "_graph", "_run", "input", "node", "visit")

    def __init__(self, run: GraphRun, node: Node, visit: int, value: Any) -> None:
        self._run = run
        self._asks = 0
        self._context: AttributedContext | None = None
        self._graph: GraphHandle | None = None
        self.node = node
        self.visit = visit
        self.input = value

    @property
    def node_id(self) -> str:
        """The node's id."""
        return self.node.id

    @property
    def payload(self) -> Any:
        """The run's payload."""
        return self._run.state.payload

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._run.run_id

    @property
    def context(self) -> AttributedContext:
        """One entry per contributing ancestor, in three channels, with provenance."""
        if self._context is None:
            self._context = attributed_context(self._run.state, self.node.id)
        return self._context

    async def call_llm(
        self,
        prompt: str | Sequence[Mapping[str, Any]],
        *,
        system: str | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stream: bool = False,
        **options: Any,
    ) -> Completion:
        """Call a model through the framework (budget, retries, fallbacks), billed to this node.

        ``model`` defaults to the node's ``model``, then the run's ``config.primary_model``.
        The run needs a provider: ``graph.run(handlers, provider=..., config=...)``.
        """
        models = self._run.models
        if models is None:
            raise ConfigError(
                f"node {self.node.id!r} called a model, but the run has no provider: "
                "pass provider= (and config=) to graph.run(...)"
            )
        return await models.call(
            self.node,
            prompt,
            system=system,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            stream=stream,
            **options,
        )

    async def interrupt(self, question: str, schema: Any = None) -> Any:
        """Ask ``question`` and wait, durably, for the answer; returns it.

        The first time, the node stops here and the run goes on with other work, then
        pauses (the process may exit).  Once the answer arrives (``GraphRun.answer``,
        :func:`answer`, ``orchestrate answer``, the HTTP API), the node runs this visit
        again from the start and each question it already asked returns its recorded
        answer at once: code before an ``interrupt`` may run more than once.

        ``schema``: a type the answer must convert to (``bool``, ``int``, a dataclass, a
        msgspec Struct...) or a JSON-schema dict shown to whoever answers.  An answer that
        does not fit the type asks again, saying why.
        """
        if not isinstance(question, str) or not question.strip():
            raise GraphError("interrupt() needs a question: a non-empty string")
        answers = self._run.state.nodes[self.node.id].answers
        while True:
            index = self._asks
            self._asks += 1
            if index >= len(answers):
                raise _Interrupt(question, _json_schema(schema))
            answer = answers[index]
            if schema is None or isinstance(schema, dict):
                return answer
            try:
                return msgspec.convert(answer, schema, strict=False)
            except msgspec.ValidationError as error:
                question = (
                    f"{question.split(' (the answer ')[0]} (the answer {answer!r} did not fit: {error})"
                )

    def inputs(self) -> dict[str, Any]:
        """Each completed input's contribution by source node id (always a dict, unlike
        :attr:`input`); out of a switch only the routes it chose count."""
        return self._run.inputs_of(self.node.id)

    def artifact(self, ref: ArtifactRef) -> Any:
        """The value an artifact reference in :attr:`context` points at."""
        return resolve(self._run.state, ref)

    @property
    def cancel(self) -> CancellationToken:
        """The run's cancellation token."""
        return self._run.token

    @property
    def graph(self) -> GraphHandle:
        """A handle to change the run's graph; the changes are recorded as this node's.

        When this visit runs again (after a crash, or once a question is answered), the
        changes it made the first time are already in the graph: each is skipped instead of
        being made twice, so a handler need not check what it did before.
        """
        if self._graph is None:
            self._graph = GraphHandle(self._run, self.node.id)
        return self._graph

    def _mapping(self) -> Mapping[str, Any]:
        return self.input if isinstance(self.input, Mapping) else {}

    def __getitem__(self, key: str) -> Any:
        return self._mapping()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def __repr__(self) -> str:
        return f"NodeContext(node={self.node.id!r}, visit={self.visit})"


class _Interrupt(BaseException):
    """Stops a handler at :meth:`NodeContext.interrupt` (a BaseException, so a handler's
    ``except Exception`` cannot swallow it)."""

    def __init__(self, question: str, schema: dict[str, Any] | None) -> None:
        super().__init__(question)
        self.question = question
        self.schema = schema


def _interrupt_in(caught: BaseException) -> _Interrupt | None:
    """The question a handler asked, also from inside its own TaskGroup (an exception group)."""
    if isinstance(caught, _Interrupt):
        return caught
    if isinstance(caught, BaseExceptionGroup):
        group = caught.subgroup(_Interrupt)
        if group is not None:
            first = group.exceptions[0]
            return _interrupt_in(first)
    return None


def _json_schema(schema: Any) -> dict[str, Any] | None:
    if schema is None or isinstance(schema, dict):
        return schema
    try:
        return dict(msgspec.json.schema(schema))
    except (TypeError, ValueError) as error:
        raise GraphError(f"interrupt(schema=...) must be a type or a JSON-schema dict: {error}") from None


class GraphHandle:
    """Change a running graph.  Each change is validated, then recorded as one event.

    Refused changes raise :class:`~orchestration.errors.GraphMutationError` (or
    GraphError) and change nothing.  Usable from handlers (``ctx.graph``, whose changes
    are recorded ``by`` their node) and from outside the run (``GraphRun.graph``).
    """

    __slots__ = ("_calls", "_made", "_origin", "_run")

    def __init__(self, run: GraphRun, origin: str | None = None) -> None:
        self._run = run
        self._origin = origin
        self._calls = 0
        #: What the origin's visit changed before it ran again (see NodeContext.graph).
        self._made = run.state.nodes[origin].made if origin is not None else ()

    def _change(self, event: GraphEvent) -> None:
        if self._origin is not None:
            event = msgspec.structs.replace(event, by=self._origin)
            index = self._calls
            self._calls += 1
            if index < len(self._made):
                _check_replayed(self._origin, self._made[index], event)
                return  # made before this visit ran again: already in the graph
        new: list[Node] = []
        if isinstance(event, NodeAdded | ReworkInserted):
            new.append(event.node)
        elif isinstance(event, NodeSplit):
            new.extend((*event.parts, event.join))
        for node in new:
            if self._run._handler(node) is None:
                raise GraphError(
                    f"no handler for node {node.id!r} ({node.kind.name}); add one to the run's handlers"
                )
        self._run.record(event)
        self._run.dispatch()

    def state(self, node_id: str) -> NodeState:
        """A node's state now."""
        return self._run.state.state_of(node_id)

    def add_node(self, node: Node, edges: Iterable[Edge] = (), *, reason: str = "") -> None:
        """Add ``node`` with edges to or from it."""
        self._change(NodeAdded(node, tuple(edges), reason))

    def add_edge(
        self, source: str, target: str, *, contract: Contract | None = None, reason: str = ""
    ) -> None:
        """Add the edge ``source -> target`` (a dependency, or a loop's back-edge)."""
        self._change(EdgeAdded(Edge(source=source, target=target, contract=contract), reason))

    def refine(
        self, node_id: str, depends_on: str, *, contract: Contract | None = None, reason: str = ""
    ) -> None:
        """Make a node that has not started wait for ``depends_on`` too."""
        self.add_edge(depends_on, node_id, contract=contract, reason=reason)

    def remove_edge(self, source: str, target: str, *, reason: str = "") -> None:
        """Remove the edge ``source -> target``."""
        self._change(EdgeRemoved(source, target, reason))

    def remove_node(self, node_id: str, *, cascade: bool = False, reason: str = "") -> None:
        """Remove a node (with every descendant when ``cascade``); never an ACTIVE one."""
        if cascade and node_id in self._run.state.nodes:
            ids = tuple(rec.spec.id for rec in self._run.state.descendants(node_id))
        else:
            ids = (node_id,)
        self._change(NodeRemoved(ids, reason))

    def edit_node(self, node: Node, *, reason: str = "") -> None:
        """Replace the definition of a node that has not started (same id)."""
        self._change(NodeEdited(node, reason))

    def split(
        self, node_id: str, parts: Sequence[Node], join: Node | None = None, *, reason: str = ""
    ) -> None:
        """Replace a pending node by parallel ``parts`` feeding ``join`` (default: an AGGREGATE)."""
        join = join or Node(id=f"{node_id}.join", kind=NodeKind.AGGREGATE)
        self._change(NodeSplit(node_id, tuple(parts), join, reason))

    def rework(self, source: str, consumer: str, node: Node, *, reason: str = "") -> None:
        """Insert ``node`` between completed ``source`` and ``consumer``; the consumer runs again."""
        self._change(ReworkInserted(source, consumer, node, reason))


def _subject(event: GraphEvent) -> tuple[Any, ...]:
    """What a change is about: a re-run visit's change must match the one it replays."""
    if isinstance(event, NodeAdded | NodeEdited):
        return (type(event), event.node.id)
    if isinstance(event, NodeRemoved):
        return (type(event), event.nodes[0])  # a cascade's descendants are found anew
    if isinstance(event, EdgeAdded):
        return (type(event), event.edge.source, event.edge.target)
    if isinstance(event, EdgeRemoved):
        return (type(event), event.source, event.target)
    if isinstance(event, NodeSplit):
        return (type(event), event.node)
    if isinstance(event, ReworkInserted):
        return (type(event), event.source, event.consumer, event.node.id)
    return (type(event),)


def _check_replayed(node_id: str, before: GraphEvent, now: GraphEvent) -> None:
    if _subject(before) != _subject(now):
        raise GraphMutationError(
            f"node {node_id!r} ran its visit again and changed the graph differently: "
            f"{_describe_change(now)} where it first made {_describe_change(before)}; "
            "a handler must make the same changes each time it runs"
        )


def _describe_change(event: GraphEvent) -> str:
    subject = _subject(event)
    return f"{type(event).__name__}({', '.join(repr(part) for part in subject[1:])})"


@dataclass(frozen=True)
class GraphResult:
    """How a graph run ended: per node its outputs by visit and final state."""

    run_id: str
    status: str
    outputs: Mapping[str, Mapping[int, Any]]
    states: Mapping[str, NodeState]
    errors: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    total_cost: float = 0.0
    #: For a paused run: the question each waiting node asks (answer them to go on).
    questions: Mapping[str, str] = field(default_factory=dict)
    #: Tokens and cost of the nodes' model calls (``ctx.call_llm``), the whole run.
    usage: Usage = field(default_factory=Usage)

    def output(self, node_id: str) -> Any:
        """The node's last output (None if it never completed)."""
        visits = self.outputs.get(node_id) or {}
        return visits[max(visits)] if visits else None

    @property
    def visits(self) -> Mapping[str, int]:
        """How many visits each node completed."""
        return {node_id: len(v) for node_id, v in self.outputs.items()}


def _result(run_id: str, state: GraphState, usage: Usage | None = None) -> GraphResult:
    outputs: dict[str, dict[int, Any]] = {}
    errors: dict[str, str] = {}
    for node_id, rec in state.nodes.items():
        completions = rec.completions
        if len(completions) == 1:  # most nodes: one visit (no comprehension to run)
            outputs[node_id] = {completions[0].visit: completions[0].output}
        else:
            outputs[node_id] = {c.visit: c.output for c in completions}
        if rec.error is not None:
            errors[node_id] = rec.error
    questions = {node_id: asked.question for node_id, asked in state.waiting().items()}
    return GraphResult(
        run_id,
        state.status or "in_progress",
        outputs,
        state.states(),
        errors,
        state.error,
        total_cost=usage.cost_usd if usage is not None else 0.0,
        questions=questions,
        usage=usage if usage is not None else Usage(),
    )


class GraphRun:
    """One run of a graph (new, or resumed from ``store`` when it holds ``run_id``).

    Args:
        nodes, edges, entry: the graph (ignored when resuming: the stored graph is used).
        handlers: node id -> callable, or NodeKind -> callable (sync or async; each gets a
            :class:`NodeContext`).  A SWITCH returns its route(s): target node ids.
        payload: the input of nodes without inputs (JSON-ready to survive a resume).
        store: a :class:`~orchestration.stores.RunStore` (default: ``default_store()``).
        concurrency: at most this many handlers at once.
        capacity, headroom: optional callables the scheduler asks for per-model capacity
            and budget left (seams for rate limits and budgets).
        stream_callback: called with every StreamEvent once it is stored (one callable or
            a list; each through its own bounded queue with a time limit per event, see
            :mod:`orchestration.engine.callbacks`; ``config`` sets the limits).
        task, orchestrator: recorded with the run (listings show them).
        outcome: decides how a run that ran to its end finished, from its final state:
            ``(status, reason)`` (e.g. ``("partial", "stopped at the node cap")``), or None
            for the usual verdict (failed if a node failed, else completed).  A front end
            whose nodes may fail without failing the run (a planner that replans) sets it.
    """

    def __init__(
        self,
        nodes: Sequence[Node],
        edges: Sequence[Edge],
        handlers: Mapping[Any, Handler],
        *,
        entry: str | None = None,
        payload: Any = None,
        store: RunStore | None = None,
        run_id: str | None = None,
        concurrency: int = 100,
        stream_callback: StreamCallbacks | None = None,
        capacity: Callable[[], Mapping[str, int]] | None = None,
        headroom: Callable[[], float | None] | None = None,
        title: str = "",
        clock: Callable[[], float] = time.time,
        provider: Any = None,
        config: OrchestratorConfig | None = None,
        prices: PriceTable | None = None,
        lease_seconds: float = 30.0,
        task: str = "",
        orchestrator: str = "graph",
        outcome: Callable[[GraphState], tuple[str, str] | None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise GraphError(f"concurrency must be at least 1, not {concurrency!r}")
        self._spec = RunStarted(
            tuple(nodes), tuple(edges), entry, payload, title=title, task=task, orchestrator=orchestrator
        )
        self._decide = outcome
        self.handlers = dict(handlers)
        self.store = store
        self.run_id = run_id or uuid.uuid4().hex
        self.concurrency = concurrency
        self.state = GraphState()
        self.token = CancellationToken()
        self.graph = GraphHandle(self)
        self._capacity = capacity
        self._headroom = headroom
        self._clock = clock
        limits = config or OrchestratorConfig  # the class holds the defaults
        self._delivery = CallbackDelivery(
            as_callbacks(stream_callback),
            timeout_seconds=limits.callback_timeout_seconds,
            queue_size=limits.callback_queue_size,
            on_failure=self._callback_failed,
            run_id=self.run_id,
        )
        self._buffer: list[StreamEvent] = []
        self._seq = 0
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._stopping: str | None = None
        self._aborted: str | None = None
        self._interrupted = False
        self._eager = True
        self._written = 0
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        if not lease_seconds > 0:
            raise GraphError(f"lease_seconds must be > 0, not {lease_seconds!r}")
        self.lease_seconds = float(lease_seconds)
        self._owner = new_owner()  # the run's lease holder while this process drives it
        self._fenced = False
        self.title = title
        #: Model calls for handlers (``ctx.call_llm``), when the run was given a provider.
        self.models: ModelAccess | None = None
        if provider is not None:
            from .graphcalls import ModelAccess

            self.models = ModelAccess(self, provider, config, prices)

    def subscribe(self, event_type: EventType, callback: StreamCallback) -> None:
        """Call ``callback`` with each stored event of ``event_type`` (besides the stream callback)."""
        self._delivery.add(callback, only=event_type)
        self._eager = True

    def answer(self, node_id: str, value: Any, *, by: str = "") -> None:
        """Answer the question ``node_id`` waits on, in this running process."""
        if node_id not in self.state.nodes:
            raise GraphError(f"no node {node_id!r} in run {self.run_id}")
        rec = self.state.nodes[node_id]
        self.record(InterruptAnswered(node_id, len(rec.answers), value, by))
        self.dispatch()

    def abort(self, reason: str) -> None:
        """Stop the run as failed (a budget or guardrail decision): like cancel, status failed."""
        if self._aborted is None:
            self._aborted = reason
        self._stop(reason)

    def emit_stream(
        self, kind: EventType, data: Mapping[str, Any], agent_id: str | None = None, progress: float = 0.0
    ) -> StreamEvent:
        """Append a non-graph event (a model call's cost, a warning) to the run's log."""
        self._seq += 1
        event = StreamEvent(kind, self.run_id, self._seq, self._clock(), data, agent_id, progress)
        self._buffer.append(event)
        wake = self._wake
        if wake is not None:
            wake.set()
        return event

    async def flushed(self) -> None:
        """Wait until every event recorded so far is in the store."""
        target = self._seq
        if self._written >= target or self._wake is None:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append((target, future))
        self._wake.set()
        await future

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop the run: running handlers are cancelled, nothing new starts."""
        self.token.cancel(reason)
        self._stop(reason)

    # -- recording -------------------------------------------------------------------

    def record(self, event: GraphEvent) -> None:
        """Fold ``event`` (raises, recording nothing, if it does not fit) and queue it for the store."""
        state = self.state
        state.apply(event)
        now = self._clock()
        run_id = self.run_id
        buffer = self._buffer
        seq = self._seq + 1
        buffer.append(wrap(event, run_id, seq, now))
        emitted = state.emitted
        if emitted:
            state.emitted = []
            for derived in emitted:
                seq += 1
                buffer.append(wrap(derived, run_id, seq, now))
        self._seq = seq
        wake = self._wake
        if wake is not None and (self._eager or len(self._buffer) >= _LAZY_BATCH or state.status is not None):
            wake.set()

    async def _flusher(self, store: RunStore) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            if not self._buffer:
                if self.state.status is not None:
                    return
                wake.clear()
                await wake.wait()
                continue
            batch, self._buffer = self._buffer, []
            try:
                await self._append(store, batch)
            except asyncio.CancelledError:
                self._buffer[:0] = batch  # perhaps not stored: _save_tail finds out
                raise
            self._written = batch[-1].seq
            if self._delivery:
                self._delivery.offer(batch)
            if self._flush_waiters:
                self._release_flushed()

    def _release_flushed(self) -> None:
        keep = []
        for target, future in self._flush_waiters:
            if target <= self._written:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((target, future))
        self._flush_waiters = keep

    def _callback_failed(self, failure: CallbackFailure) -> None:
        self.emit_stream(EventType.CALLBACK_ERROR, failure.to_data())

    async def _settle_callbacks(self, store: RunStore) -> None:
        """Give the callbacks at most their time limit to take what is queued; a callback
        dropped meanwhile adds its ``callback_error``, which is stored and delivered too."""
        while True:
            await self._delivery.drain()
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, []
            await store.append(self.run_id, batch)
            self._written = batch[-1].seq
            self._delivery.offer(batch)

    # -- running ---------------------------------------------------------------------

    async def run(self) -> GraphResult:
        """Run (or resume) to the end; the result of every node."""
        if self.store is None:
            from ..stores import default_store

            self.store = default_store()
        store = self.store
        await leases.acquire(store, self.run_id, self._owner, self.lease_seconds)  # before reading
        self._fenced = "fence" in inspect.signature(store.append).parameters
        try:
            return await self._drive(store)
        finally:
            with contextlib.suppress(Exception):
                await store.release_lease(self.run_id, self._owner)

    async def _drive(self, store: RunStore) -> GraphResult:
        stored = await store.events(self.run_id)
        graph_events = [decode(e) for e in stored if is_graph_event(e)]
        self._seq = self._written = stored[-1].seq if stored else 0
        if self.models is not None and stored:
            self.models.resume([e for e in stored if not is_graph_event(e)])
        if graph_events:
            for event in graph_events:
                self.state.apply(event)
            self.state.emitted.clear()
            if self.state.status == "paused" and self.state.ready_count:
                self.record(RunResumed("answers arrived"))  # answered: go on
            elif self.state.status is not None:
                return _result(self.run_id, self.state, self._usage())
        if not graph_events:
            self.record(self._spec)  # validates the graph before anything is stored
        self._check_handlers()
        for rec in list(self.state.nodes.values()):
            if rec.state == NodeState.ACTIVE:  # running when the last process stopped
                self.record(NodeRequeued(rec.spec.id, rec.visits, "resumed"))
        self._eager = bool(getattr(store, "durable", True)) or bool(self._delivery)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(self._flusher(store))
                self._delivery.start()
                watcher = group.create_task(self._watch_cancel(store))
                self.dispatch()
                try:
                    await self._idle.wait()
                except asyncio.CancelledError:
                    if self._stopping is None:  # not run.cancel(): the task running us was
                        self._interrupted = True
                        self._stopping = _INTERRUPTED
                    raise
                self.record(RunFinished(*self._outcome()))
                watcher.cancel()
            await self._settle_callbacks(store)
        except BaseExceptionGroup as errors:
            if len(errors.exceptions) == 1:  # the one failure (a store error), not a group
                raise errors.exceptions[0] from None
            raise
        except asyncio.CancelledError:
            await self._save_tail(store)  # what happened so far, so that a resume goes on from it
            raise
        finally:
            self._group = None
            await self._delivery.close()
        return _result(self.run_id, self.state, self._usage())

    async def _save_tail(self, store: RunStore) -> None:
        """Store the events an interruption kept from the flusher (those not stored yet)."""
        if not self._buffer:
            return
        stored = await store.events(self.run_id, after_seq=self._written)
        last = stored[-1].seq if stored else self._written
        tail = [event for event in self._buffer if event.seq > last]
        self._buffer = []
        if tail:
            await self._append(store, tail)
        self._written = tail[-1].seq if tail else last

    async def _append(self, store: RunStore, batch: list[StreamEvent]) -> None:
        """One append, fenced by this driver's lease (refused once another took the run over)."""
        if self._fenced:
            await store.append(self.run_id, batch, fence=self._owner)
        else:
            await store.append(self.run_id, batch)

    def _usage(self) -> Usage | None:
        return self.models.usage if self.models is not None else None

    def _outcome(self) -> tuple[str, str]:
        state = self.state
        if self._aborted is not None:
            return "failed", self._aborted
        if self.token.reason is not None:
            return "cancelled", self.token.reason
        if state.error is not None:
            return "failed", state.error
        decided = self._decide(state) if self._decide is not None else None
        if decided is not None:
            return decided
        failed = [node_id for node_id, rec in state.nodes.items() if rec.state == NodeState.FAILED]
        if failed:
            return "failed", f"node(s) {failed[:10]} failed"
        waiting = state.waiting()
        if waiting:
            return "paused", f"waiting for answers: {', '.join(sorted(waiting)[:10])}"
        return "completed", ""

    async def _watch_cancel(self, store: RunStore) -> None:
        """Cancellation from other processes arrives through the store's cancel flag; the
        run's lease is renewed every third of its length (losing it stops the run)."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(min(_CANCEL_POLL_SECONDS, self.lease_seconds / 3))
            if await store.cancel_requested(self.run_id):
                self.cancel("cancellation requested through the store")
                return
            if time.monotonic() - renewed >= self.lease_seconds / 3:
                if not await store.acquire_lease(self.run_id, self._owner, self.lease_seconds):
                    self.abort("lost the run's lease to another process, which drives the run now")
                    return
                renewed = time.monotonic()

    def _check_handlers(self) -> None:
        missing = [
            f"{rec.spec.id!r} ({rec.spec.kind.name})"
            for rec in self.state.nodes.values()
            if rec.state < _DONE_STATE and self._handler(rec.spec) is None
        ]
        if missing:
            raise GraphError(
                f"no handler for node(s) {', '.join(missing[:10])}; pass handlers={{id: fn}} or {{NodeKind.X: fn}}"
            )

    def _handler(self, node: Node) -> Handler | None:
        handlers = self.handlers
        found = handlers.get(node.handler or node.id) or handlers.get(node.kind)
        if found is None and node.kind in (NodeKind.TERMINAL, NodeKind.AGGREGATE):
            return _passthrough
        return found

    def _stop(self, reason: str) -> None:
        if self._stopping is not None:
            return
        self._stopping = reason
        for task in list(self._tasks.values()):
            task.cancel(reason)
        self._check_idle()

    def _check_idle(self) -> None:
        idle = self._idle
        if idle is not None and not idle.is_set():
            state = self.state
            if state.active == 0 and (state.ready_count == 0 or self._stopping is not None or state.error):
                idle.set()

    def dispatch(self) -> None:
        """Start the best READY nodes the concurrency cap allows."""
        self._start_ready(False)

    def _start_ready(self, reuse: bool) -> tuple[Node, int, NodeContext] | None:
        """Start READY nodes; with ``reuse``, hand the first back for the calling task to run."""
        state = self.state
        group = self._group
        if group is None:
            return None
        if state.error is not None and self._stopping is None:
            self._stop(state.error)
            return None
        kept: tuple[Node, int, NodeContext] | None = None
        if self._stopping is None:
            slots = self.concurrency - state.active
            if slots > 0 and state.ready_count:
                capacity = self._capacity() if self._capacity is not None else None
                headroom = self._headroom() if self._headroom is not None else None
                nodes = state.nodes
                for node_id in take(state, slots, capacity=capacity, headroom=headroom):
                    rec = nodes[node_id]
                    visit = rec.visits + 1
                    context = NodeContext(self, rec.spec, visit, self._input(rec))
                    self.record(NodeStarted(node_id, visit))
                    if reuse and kept is None:
                        kept = (rec.spec, visit, context)
                    else:
                        self._tasks[node_id] = group.create_task(self._execute(rec.spec, visit, context))
        if state.active == 0:
            self._check_idle()
        return kept

    def _input(self, rec: NodeRecord) -> Any:
        """What the node gets as input: see :class:`NodeContext`."""
        nodes = self.state.nodes
        if rec.trigger is not None and rec.trigger in nodes:
            return self._data(nodes[rec.trigger])
        inn = rec.inn
        if not inn:
            return self.state.payload
        node_id = rec.spec.id
        if len(inn) == 1:
            source = nodes[inn[0].source]
            if source.state == _DONE_STATE and (source.routes is None or node_id in source.routes):
                if source.spec.kind is not NodeKind.SWITCH and source.completions:
                    return source.completions[-1].output  # what _data gives, without the call
                return self._data(source)
            return {}
        sources = [nodes[e.source] for e in inn]
        done = [s for s in sources if s.state == _DONE_STATE and (s.routes is None or node_id in s.routes)]
        if len(done) == 1:
            return self._data(done[0])
        return {s.spec.id: self._data(s) for s in done}

    def inputs_of(self, node_id: str) -> dict[str, Any]:
        """What each completed input passed to ``node_id``, by source id (see NodeContext.inputs)."""
        nodes = self.state.nodes
        found: dict[str, Any] = {}
        for edge in nodes[node_id].inn:
            source = nodes[edge.source]
            if source.state == _DONE_STATE and (source.routes is None or node_id in source.routes):
                found[edge.source] = self._data(source)
        return found

    def _data(self, rec: NodeRecord) -> Any:
        """What a completed node passes on: its output, or for a switch, its own input."""
        if rec.spec.kind is NodeKind.SWITCH:
            return self._passed_on(rec)
        return rec.completions[-1].output if rec.completions else None

    def _passed_on(self, switch: NodeRecord) -> Any:
        """A switch's input as it ran: its sources' latest outputs (a loop may have reset a
        source to PENDING since, e.g. the node a back-edge re-enters: its last output stays)."""
        if switch.trigger is not None and switch.trigger in self.state.nodes:
            return self._data(self.state.nodes[switch.trigger])
        if not switch.inn:
            return self.state.payload
        nodes = self.state.nodes
        sources = [nodes[e.source] for e in switch.inn]
        done = [s for s in sources if s.completions and (s.routes is None or switch.spec.id in s.routes)]
        if len(switch.inn) == 1:
            return self._data(done[0]) if done else {}
        if len(done) == 1:
            return self._data(done[0])
        return {s.spec.id: self._data(s) for s in done}

    async def _execute(self, node: Node, visit: int, context: NodeContext) -> None:
        """Run a node, then (in the same task) the next one it made ready, while there is one.

        Reusing the task for a successor saves a task, its scheduling and the task
        group's bookkeeping per step of a chain or a loop.
        """
        task = asyncio.current_task()
        tasks = self._tasks
        while True:
            handler = self._handler(node)
            started = self._clock()
            try:
                if handler is None:  # handlers changed under the run
                    raise GraphError(f"no handler for node {node.id!r} ({node.kind.name})")
                if node.approve_before is not None and not await context.interrupt(node.approve_before, bool):
                    raise GraphError(f"not approved: {node.approve_before}")
                if node.timeout is None:
                    value = handler(context)
                    if type(value) is _COROUTINE or inspect.isawaitable(value):
                        value = await value
                else:
                    async with asyncio.timeout(node.timeout):
                        value = handler(context)
                        if inspect.isawaitable(value):
                            value = await value
            except asyncio.CancelledError:
                tasks.pop(node.id, None)
                if self._interrupted:  # not a decision about the node: it runs again on resume
                    self.record(NodeRequeued(node.id, visit, _INTERRUPTED))
                else:
                    self.record(NodeCancelled(node.id, visit, self._stopping or "cancelled"))
                self._check_idle()
                raise
            except (_Interrupt, BaseExceptionGroup) as caught:
                asked = _interrupt_in(caught)
                if asked is None:  # a handler's own task group failed: a failure, not a question
                    tasks.pop(node.id, None)
                    self.record(NodeFailed(node.id, visit, redact(str(caught)), type(caught).__name__))
                else:
                    tasks.pop(node.id, None)
                    index = len(self.state.nodes[node.id].asked)
                    self.record(NodeInterrupted(node.id, visit, index, asked.question, asked.schema))
            except TimeoutError:
                tasks.pop(node.id, None)
                self.record(NodeFailed(node.id, visit, f"timed out after {node.timeout}s", "TimeoutError"))
            except Exception as error:
                tasks.pop(node.id, None)
                self.record(
                    NodeFailed(
                        node.id, visit, redact(str(error)) or type(error).__name__, type(error).__name__
                    )
                )
            else:
                tasks.pop(node.id, None)
                self._finish(node, visit, context, value, self._clock() - started)
            following = self._start_ready(True)
            if following is None or task is None:
                return
            node, visit, context = following
            tasks[node.id] = task

    def _finish(self, node: Node, visit: int, context: NodeContext, value: Any, duration: float) -> None:
        if value is context:  # ``lambda p: p``: the node passes its input on
            value = context.input
        if node.kind is NodeKind.SWITCH:
            routes = (value,) if isinstance(value, str) else value
            if type(value) is not str and (
                not isinstance(routes, list | tuple) or not all(isinstance(r, str) for r in routes)
            ):
                self.record(
                    NodeFailed(
                        node.id,
                        visit,
                        f"switch {node.id!r} must return a route (a target id) or a list of them, "
                        f"not {type(value).__name__}",
                        "GraphError",
                    )
                )
                return
            try:
                self.record(RouteChosen(node.id, visit, tuple(routes)))
            except GraphError as error:
                self.record(NodeFailed(node.id, visit, str(error), "GraphError"))
                return
            self.record(NodeCompleted(node.id, visit, value, None, None, None, duration))
            return
        if isinstance(value, NodeOutput):
            self.record(
                NodeCompleted(
                    node.id,
                    visit,
                    value.output,
                    value.summary,
                    dict(value.critical) if value.critical is not None else None,
                    dict(value.artifacts) if value.artifacts is not None else None,
                    duration,
                )
            )
            return
        self.record(NodeCompleted(node.id, visit, value, None, None, None, duration))


def _passthrough(context: NodeContext) -> Any:
    """The default handler of TERMINAL and AGGREGATE nodes: their input, as received."""
    return context.input


async def answer(store: RunStore, run_id: str, node_id: str, value: Any, *, by: str = "") -> None:
    """Record the answer to the question ``node_id`` of stored run ``run_id`` waits on.

    Only a paused run takes answers this way (a running one takes them in the process that
    drives it, with :meth:`GraphRun.answer`); it continues when it is next run
    (``graph.run(..., run_id=run_id)``, or ``Workflow.run(run_id=...)``).  Raises
    GraphError naming what is wrong when the run is not paused or the node is not waiting.
    """
    for _ in range(20):
        stored = await store.events(run_id)
        if not stored:
            raise GraphError(f"no run {run_id!r} in the store")
        state = GraphState()
        for stored_event in stored:
            if is_graph_event(stored_event):
                state.apply(decode(stored_event))
        state.emitted.clear()  # derived events of the log are in the log already
        rec = state.nodes.get(node_id)
        if rec is None:
            raise GraphError(f"run {run_id} has no node {node_id!r}")
        if state.status != "paused":
            where = f"it {state.status}" if state.status else "it is still running"
            raise GraphError(
                f"run {run_id} is not paused ({where}); answer a running run in the process that "
                "drives it (GraphRun.answer), or once it has paused"
            )
        if not rec.waiting:
            waiting = ", ".join(sorted(state.waiting())) or "none"
            raise GraphError(
                f"node {node_id!r} of run {run_id} is not waiting for an answer (waiting: {waiting})"
            )
        answered = InterruptAnswered(node_id, len(rec.answers), value, by)
        state.apply(answered)
        seq = stored[-1].seq
        now = time.time()
        events: list[GraphEvent] = [answered, *state.take_emitted()]
        batch = [wrap(item, run_id, seq + n, now) for n, item in enumerate(events, 1)]
        try:
            await store.append(run_id, batch)
            return
        except SequenceConflictError:
            continue  # the run appended meanwhile: read again
    raise GraphError(f"run {run_id} kept changing while answering; try again")


async def run_graph(
    nodes: Sequence[Node], edges: Sequence[Edge], handlers: Mapping[Any, Handler], **options: Any
) -> GraphResult:
    """Build a :class:`GraphRun` and run it to the end (the options are its keywords)."""
    return await GraphRun(nodes, edges, handlers, **options).run()
