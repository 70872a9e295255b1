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
import functools
import inspect
import math
import time
import types
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..config import OrchestratorConfig
from ..errors import ConfigError, GraphError, redact
from ..events import EventType, StreamEvent
from ..pricing import PriceTable
from ..stores.base import RunStore
from ..usage import Usage
from . import leases
from .answers import Inbox, answer, answers_for, fit, question_of
from .callbacks import CallbackDelivery, CallbackFailure, StreamCallback, StreamCallbacks, as_callbacks
from .core import (
    Edge,
    GraphEvent,
    GraphState,
    Node,
    NodeCancelled,
    NodeCompleted,
    NodeFailed,
    NodeKind,
    NodeRequeued,
    NodeStarted,
    NodeState,
    RouteChosen,
    RunFinished,
    RunStarted,
    decode,
    is_graph_event,
    wrap,
)
from .core.events import NodeInterrupted, RunResumed
from .core.inputs import inputs_of, node_input
from .core.scheduler import take
from .graphhandle import GraphHandle
from .graphresult import GraphResult, build_result
from .leases import new_owner
from .nodecontext import CancellationToken, NodeContext, NodeOutput, _Interrupt, _interrupt_in

if TYPE_CHECKING:
    from ..guardrails import Guardrails
    from .graphcalls import ModelAccess

__all__ = [
    "CancellationToken",
    "GraphHandle",
    "GraphResult",
    "GraphRun",
    "Handler",
    "NodeContext",
    "NodeOutput",
    "answer",
    "run_graph",
]

Handler = Callable[..., Any]

_CANCEL_POLL_SECONDS = 0.5
#: A store that is not durable (the memory store) gets events in batches of this many
#: when nobody subscribes: it dies with the process, so waiting loses nothing.
_LAZY_BATCH = 1024
_DONE_STATE = NodeState.COMPLETED
_INTERRUPTED = "interrupted: the task running the graph was cancelled"
_COROUTINE = types.CoroutineType


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
        guardrails: policies enforced on the handlers' model calls (needs ``provider``); a
            ``pause_run`` becomes a question (see :mod:`orchestration.engine.pauses`).
        wait_for_answers: seconds a run with nothing left but open questions stays live,
            taking answers from any process, before it pauses (0: pause at once;
            ``math.inf``: wait until answered or cancelled).
        task: recorded with the run (listings show it).
        orchestrator: what the run's listing names as its orchestrator (a workflow's
            ``module:Class``, so that ``orchestrate resume`` can rebuild it).
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
        guardrails: Guardrails | None = None,
        wait_for_answers: float = 0.0,
        task: str = "",
        orchestrator: str = "graph",
        outcome: Callable[[GraphState], tuple[str, str] | None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise GraphError(f"concurrency must be at least 1, not {concurrency!r}")
        if not wait_for_answers >= 0:
            raise GraphError(f"wait_for_answers must be >= 0 seconds, not {wait_for_answers!r}")
        self.wait_for_answers = float(wait_for_answers)
        self._answered: asyncio.Event | None = None
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
        self._owner = new_owner("graph")  # the run's lease holder while this process drives it
        self._fenced = False
        self.title = title
        #: Model calls for handlers (``ctx.call_llm``), when the run was given a provider.
        self.models: ModelAccess | None = None
        if provider is not None:
            from .graphcalls import ModelAccess

            self.models = ModelAccess(self, provider, config, prices)
        if guardrails is not None:
            if self.models is None:
                raise ConfigError("guardrails act on model calls: pass provider= (and config=) too")
            from .pauses import install

            install(self.models, guardrails)

    def subscribe(self, event_type: EventType, callback: StreamCallback) -> None:
        """Call ``callback`` with each stored event of ``event_type`` (besides the stream callback)."""
        self._delivery.add(callback, only=event_type)
        self._eager = True

    def answer(self, node_id: str, value: Any, *, by: str = "") -> None:
        """Answer the question ``node_id`` waits on, in this running process (checked like
        :func:`~orchestration.engine.answers.answer`: the schema, no second answer)."""
        asked = question_of(self.state, self.run_id, node_id, ())
        for event in answers_for(self.state, node_id, fit(asked, value, self.run_id), by):
            self.record(event)
        if self._answered is not None:
            self._answered.set()
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
        inbox = Inbox(store, self.run_id)
        if graph_events:
            for event in graph_events:
                self.state.apply(event)
            self.state.emitted.clear()
            if self.models is not None and self.models.context.guardrails is not None:
                from .pauses import install, waivers

                install(self.models, self.models.context.guardrails, waivers(graph_events))
            if self.state.waiting() and self.state.status in (None, "paused"):
                Inbox.absorb(self, await inbox.entries())  # posted while nobody took them
            from .resumes import resume_marker

            if self.state.status is None:  # its process stopped: say where this picks up
                self.emit_stream(
                    EventType.WORKFLOW_RESUMED, resume_marker(stored, self.state, after="stopped")
                )
            if self.state.status == "paused" and self.state.ready_count:
                self.record(RunResumed("answers arrived"))  # answered: go on
                self.emit_stream(
                    EventType.WORKFLOW_RESUMED, resume_marker(stored, self.state, after="paused")
                )
            elif self.state.status is not None:
                return build_result(self.run_id, self.state, self._usage())
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
                watcher = group.create_task(self._watch_cancel(store, inbox))
                self.dispatch()
                try:
                    await self._until_done(inbox)
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
        return build_result(self.run_id, self.state, self._usage())

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
        if state.error is None and self._decide is not None:
            decided = self._decide(state)
            if decided is not None:
                return decided
        return state.verdict()

    async def _until_done(self, inbox: Inbox) -> None:
        """Wait until nothing runs.  With only questions left, stay live ``wait_for_answers``
        seconds for answers first, and take what the inbox holds before pausing."""
        idle = self._idle
        assert idle is not None
        while True:
            await idle.wait()
            state = self.state
            if self._stopping is not None or state.error is not None or not state.waiting():
                return
            if self.wait_for_answers > 0:
                answered = self._answered = asyncio.Event()
                limit = None if math.isinf(self.wait_for_answers) else self.wait_for_answers
                try:
                    async with asyncio.timeout(limit):
                        await answered.wait()
                except TimeoutError:
                    pass
            if not (state.ready_count or state.active) and not await inbox.take(self):
                return  # nothing answered: the run pauses
            idle.clear()
            self._check_idle()

    async def _watch_cancel(self, store: RunStore, inbox: Inbox | None = None) -> None:
        """Cancellation from other processes arrives through the store's cancel flag, and
        answers through the run's inbox (read while a node waits); the run's lease is
        renewed every third of its length (losing it stops the run)."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(min(_CANCEL_POLL_SECONDS, self.lease_seconds / 3))
            if inbox is not None and self.state.waiting():
                await inbox.take(self)
            if await store.cancel_requested(self.run_id):
                self.cancel("cancellation requested through the store")
                return
            if time.monotonic() - renewed >= self.lease_seconds / 3:
                if not await store.renew_lease(self.run_id, self._owner, self.lease_seconds):
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
        for node_id, task in list(self._tasks.items()):
            if task.cancel(reason):
                task.add_done_callback(functools.partial(self._cancelled_before_start, node_id))
        if self._answered is not None:
            self._answered.set()  # no more waiting for answers
        self._check_idle()

    def _cancelled_before_start(self, node_id: str, task: asyncio.Task[None]) -> None:
        """A node's task cancelled before its first step never ran :meth:`_execute` (which
        records the cancellation): record it here, or the run would wait for it forever."""
        if self._tasks.get(node_id) is not task:
            return  # it ran, and recorded how it ended
        del self._tasks[node_id]
        rec = self.state.nodes.get(node_id)
        if rec is not None and rec.state == NodeState.ACTIVE:
            self.record(NodeCancelled(node_id, rec.visits, self._stopping or "cancelled"))
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
                    context = NodeContext(self, rec.spec, visit, node_input(state, rec))
                    self.record(NodeStarted(node_id, visit))
                    if reuse and kept is None:
                        kept = (rec.spec, visit, context)
                    else:
                        self._tasks[node_id] = group.create_task(self._execute(rec.spec, visit, context))
        if state.active == 0:
            self._check_idle()
        return kept

    def inputs_of(self, node_id: str) -> dict[str, Any]:
        """What each completed input passed to ``node_id``, by source id (see NodeContext.inputs)."""
        return inputs_of(self.state, node_id)

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
                    if self._wake is not None:
                        self._wake.set()  # in the store at once, even a lazy one: it can be answered there
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


async def run_graph(
    nodes: Sequence[Node], edges: Sequence[Edge], handlers: Mapping[Any, Handler], **options: Any
) -> GraphResult:
    """Build a :class:`GraphRun` and run it to the end (the options are its keywords)."""
    return await GraphRun(nodes, edges, handlers, **options).run()
