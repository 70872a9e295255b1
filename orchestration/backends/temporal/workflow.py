"""The Temporal workflow of a run: the graph core decides, activities act.

The workflow's logic is the engine's pure core and nothing else: it folds the run's
graph events into a :class:`~orchestration.engine.core.GraphState`, asks the scheduler
(:func:`~orchestration.engine.core.scheduler.take`) which READY nodes to start, starts
one ``node`` activity per visit and folds each outcome as the same events a local run
records (``NodeStarted``, ``NodeCompleted``, ``RouteChosen``, the graph changes a handler
made...).  The core has no clock, I/O or randomness, so Temporal's replay of the
workflow's history rebuilds the same state and the same decisions.

Every graph event goes to the run's store through the ``append`` activity, in the order
the workflow folded it, before the nodes it started run: the store holds the same log a
local run writes, so listings, ``show``, SSE, the live page, costs and reports read a
Temporal run like any other.  A completed node is never run again: its outcome is in
the workflow's history, and Temporal retries only an activity that did not complete.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporalio.common import RetryPolicy
    from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

    from ...engine.core import (
        GraphEvent,
        GraphState,
        NodeCancelled,
        NodeCompleted,
        NodeFailed,
        NodeRemoved,
        NodeRequeued,
        NodeStarted,
        NodeState,
        RouteChosen,
        RunFinished,
        attributed_context,
    )
    from ...engine.core.events import NodeInterrupted, RunResumed
    from ...engine.core.inputs import inputs_of, node_input
    from ...engine.core.scheduler import take
    from ...engine.core.state import NodeRecord
    from .wire import (
        ACTIVITY_APPEND,
        ACTIVITY_NODE,
        ACTIVITY_RELEASE,
        ACTIVITY_START,
        ACTIVITY_WATCH,
        WORKFLOW_NAME,
        decode_event,
        encode,
    )

__all__ = ["RunWorkflow"]

#: Events per append: a batch stays far below Temporal's payload limit (2 MB).
_BATCH = 2000
#: Store work (start, append, release) runs as local activities of the workflow's worker:
#: if that worker dies, the workflow moves to another one, which runs them again.
_SHORT = timedelta(seconds=120)
_STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)
)


@workflow.defn(name=WORKFLOW_NAME)
class RunWorkflow:
    """One run: its graph state, folded from its events, and the nodes running now."""

    def __init__(self) -> None:
        self.state = GraphState()
        self.outbox: list[dict[str, Any]] = []
        self.request: dict[str, Any] = {}
        self.running: dict[asyncio.Future[Any], tuple[str, int]] = {}
        self.stopping: str | None = None
        self.aborted: str | None = None
        self.cancelled: str | None = None
        #: A closing event a node emitted (an orchestrator's verdict): stored instead of
        #: the graph's RunFinished when the graph completed.
        self.closing: dict[str, Any] | None = None
        self.flusher: asyncio.Task[None] | None = None
        self.written = 0  # events handed to appends so far (the next batch's first index)
        self.lost: str | None = None  # why the store refused the run's events

    # -- recording ------------------------------------------------------------------

    def record(self, event: GraphEvent) -> None:
        """Fold ``event`` (raises, recording nothing, if it does not fit) and queue it for the store."""
        self.state.apply(event)
        now = workflow.now().timestamp()
        self.outbox.append({"event": encode(event), "time": now})
        for derived in self.state.take_emitted():
            self.outbox.append({"event": encode(derived), "time": now})

    def kick(self) -> None:
        """Start appending what was recorded (one append at a time, so the log keeps the
        order the workflow folded; the run goes on meanwhile)."""
        if self.outbox and (self.flusher is None or self.flusher.done()):
            self.flusher = asyncio.create_task(self._append_all())

    async def _append_all(self) -> None:
        while self.outbox:
            batch, self.outbox = self.outbox[:_BATCH], self.outbox[_BATCH:]
            first, self.written = self.written, self.written + len(batch)
            try:
                # A local activity: no task-queue round trip per batch.  A try that stored the
                # batch but died before saying so is retried: ``first`` lets it see the batch
                # is already there (see Appender.append_once).
                await workflow.execute_local_activity(
                    ACTIVITY_APPEND,
                    {**self._lease(), "events": batch, "first": first},
                    start_to_close_timeout=_SHORT,
                    retry_policy=_STORE_RETRY,
                )
            except (ActivityError, ApplicationError) as error:  # refused: another driver took the run over
                cause = error.cause if isinstance(error, ActivityError) else error
                message = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
                self.outbox = []
                self.lost = message
                self._abort(f"the run's store refused its events: {message}")
                return

    async def flush(self) -> None:
        """Wait until everything recorded so far is stored (or the store refused it)."""
        while self.lost is None and (self.outbox or (self.flusher is not None and not self.flusher.done())):
            self.kick()
            if self.flusher is not None:
                await self.flusher

    def _beat(self) -> timedelta:
        return timedelta(seconds=float(self.request["heartbeat_seconds"]) * 3)

    def _lease(self) -> dict[str, Any]:
        request = self.request
        return {
            "run_id": request["run_id"],
            "owner": request["owner"],
            "lease_seconds": request["lease_seconds"],
            "heartbeat_seconds": request["heartbeat_seconds"],
        }

    # -- running --------------------------------------------------------------------

    @workflow.run
    async def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run (or continue) the run ``request`` describes; ``{"run_id", "status", "error"}``."""
        self.request = request
        started = await workflow.execute_local_activity(
            ACTIVITY_START, request, start_to_close_timeout=_SHORT, retry_policy=_STORE_RETRY
        )
        if "finished" in started:
            await self._release()
            return {"run_id": request["run_id"], "status": started["finished"], "error": None}
        events = [decode_event(item) for item in started["events"]]
        self.written = int(started.get("written", 0))
        if started.get("stored"):  # a new run: RunStarted (and the nodes it makes ready) is stored
            self.state.apply(events[0])
            self.state.take_emitted()
        else:
            for event in events:
                self.state.apply(event)
            self.state.take_emitted()  # derived events of the log are in the log already
            if self.state.status == "paused" and self.state.ready_count:
                self.record(RunResumed("answers arrived"))
            elif self.state.status is not None:
                await self._release()
                return self._summary()
            for rec in list(self.state.nodes.values()):
                if rec.state == NodeState.ACTIVE:  # running when the last driver stopped
                    self.record(NodeRequeued(rec.spec.id, rec.visits, "resumed"))
        watcher = workflow.start_activity(
            ACTIVITY_WATCH,
            self._lease(),
            start_to_close_timeout=timedelta(days=365),
            heartbeat_timeout=self._beat(),
            retry_policy=_STORE_RETRY,
        )
        try:
            await self._drive(watcher)
        except asyncio.CancelledError:
            # Cancelled through Temporal itself (``temporal workflow cancel``, handle.cancel()).
            self._stop("cancelled through Temporal", cancel=True)
            await self._drain()
        watcher.cancel()
        status, reason = self._outcome()
        if self.closing is not None and status == "completed":
            # An orchestrator's run ends with its own verdict (completed, partial, failed...),
            # its one terminal event, as a local orchestrator run's log does.
            self.state.apply(RunFinished(status, reason))
            self.outbox.append({"stream": self.closing, "time": workflow.now().timestamp()})
        else:
            self.record(RunFinished(status, reason))
        await self.flush()
        await self._release()
        return self._summary()

    async def _drive(self, watcher: asyncio.Future[Any]) -> None:
        state = self.state
        while True:
            if state.error is not None and self.stopping is None:
                self._stop(state.error)
            if self.stopping is None:
                await self._start_ready()
            if not self.running:
                return
            waiting: list[asyncio.Future[Any]] = list(self.running)
            if not watcher.done():
                waiting.append(watcher)
            done, _ = await workflow.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if watcher in done:
                self._watched(watcher)
            for handle in [h for h in self.running if h in done]:  # in start order: deterministic
                node_id, visit = self.running.pop(handle)
                self._finish(node_id, visit, handle)
            self.kick()

    async def _drain(self) -> None:
        """Wait for the cancelled nodes' activities, and record each as cancelled."""
        while self.running:
            handle = next(iter(self.running))
            node_id, visit = self.running.pop(handle)
            with contextlib.suppress(BaseException):  # a cancelled activity ends in an error
                await handle
            self._finish(node_id, visit, handle)

    def _watched(self, watcher: asyncio.Future[Any]) -> None:
        try:
            verdict = watcher.result()
        except BaseException as error:
            verdict = f"watch failed: {error}"
        if verdict == "cancel":
            self.cancelled = "cancellation requested through the store"
            self._stop(self.cancelled, cancel=True)
        elif verdict == "lost":
            self._abort("lost the run's lease to another process, which drives the run now")
        else:
            self._abort(str(verdict))

    async def _start_ready(self) -> None:
        state = self.state
        slots = int(self.request["concurrency"]) - len(self.running)
        if slots <= 0 or not state.ready_count:
            return
        launches: list[tuple[str, int, dict[str, Any]]] = []
        for node_id in take(state, slots):
            rec = state.nodes[node_id]
            visit = rec.visits + 1
            request = self._node_request(rec, visit)
            self.record(NodeStarted(node_id, visit))
            launches.append((node_id, visit, request))
        if not launches:
            return
        self.kick()  # appended while the nodes start: the log keeps the fold's order
        for node_id, visit, request in launches:
            timeout = state.nodes[node_id].spec.timeout
            handle = workflow.start_activity(
                ACTIVITY_NODE,
                request,
                activity_id=f"{node_id}#{visit}",
                start_to_close_timeout=timedelta(seconds=(timeout or 86_400.0) + 60.0),
                heartbeat_timeout=self._beat(),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(milliseconds=200),
                    maximum_interval=timedelta(seconds=5),
                    maximum_attempts=int(self.request.get("max_attempts", 0)),
                ),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            self.running[handle] = (node_id, visit)

    def _node_request(self, rec: NodeRecord, visit: int) -> dict[str, Any]:
        request = self.request
        return {
            **self._lease(),
            "target": request["target"],
            "title": request.get("title") or "",
            "payload": self.state.payload,
            "node": encode(rec.spec),
            "visit": visit,
            "input": encode(node_input(self.state, rec)),
            "inputs": encode(inputs_of(self.state, rec.spec.id)),
            "answers": encode(list(rec.answers)),
            "made": [encode(event) for event in rec.made],
            "context": encode(attributed_context(self.state, rec.spec.id)) if rec.inn else None,
        }

    def _finish(self, node_id: str, visit: int, handle: asyncio.Future[Any]) -> None:
        try:
            outcome = handle.result()
        except (ActivityError, asyncio.CancelledError) as error:
            cause = getattr(error, "cause", None)
            if isinstance(error, asyncio.CancelledError) or isinstance(cause, CancelledError):
                self.record(NodeCancelled(node_id, visit, self.stopping or "cancelled"))
            else:
                message = str(cause.message if isinstance(cause, ApplicationError) else cause or error)
                self.record(NodeFailed(node_id, visit, f"its activity failed: {message}", "ActivityError"))
            return
        self._fold_outcome(node_id, visit, outcome)

    def _fold_outcome(self, node_id: str, visit: int, outcome: dict[str, Any]) -> None:
        from ...errors import GraphError

        for change in outcome.get("changes") or ():
            event = decode_event(change["event"])
            if (
                change.get("cascade")
                and isinstance(event, NodeRemoved)
                and event.nodes[0] in self.state.nodes
            ):
                ids = tuple(rec.spec.id for rec in self.state.descendants(event.nodes[0]))
                event = NodeRemoved(ids, event.reason, event.by)
            try:
                self.record(event)
            except GraphError as error:  # checked here, against the graph as it is now
                self.record(NodeFailed(node_id, visit, str(error), type(error).__name__))
                return
        if outcome.get("aborted"):
            self._abort(str(outcome["aborted"]))
        if outcome.get("terminal"):
            self.closing = outcome["terminal"]
        status = outcome["status"]
        if status == "completed":
            routes = outcome.get("routes")
            if routes is not None:
                try:
                    self.record(RouteChosen(node_id, visit, tuple(routes)))
                except GraphError as error:
                    self.record(NodeFailed(node_id, visit, str(error), "GraphError"))
                    return
            self.record(
                NodeCompleted(
                    node_id,
                    visit,
                    outcome.get("output"),
                    outcome.get("summary"),
                    outcome.get("critical"),
                    outcome.get("artifacts"),
                    outcome.get("duration"),
                )
            )
        elif status == "interrupted":
            index = len(self.state.nodes[node_id].asked)
            self.record(NodeInterrupted(node_id, visit, index, outcome["question"], outcome.get("schema")))
        else:
            self.record(NodeFailed(node_id, visit, str(outcome.get("error")), str(outcome.get("error_type"))))

    def _stop(self, reason: str, *, cancel: bool = False) -> None:
        if self.stopping is not None:
            return
        self.stopping = reason
        if cancel and self.cancelled is None:
            self.cancelled = reason
        for handle in self.running:
            handle.cancel()

    def _abort(self, reason: str) -> None:
        if self.aborted is None:
            self.aborted = reason
        self._stop(reason)

    def _outcome(self) -> tuple[str, str]:
        state = self.state
        if self.aborted is not None:
            return "failed", self.aborted
        if self.cancelled is not None:
            return "cancelled", self.cancelled
        return state.verdict()

    async def _release(self) -> None:
        await workflow.execute_local_activity(
            ACTIVITY_RELEASE, self._lease(), start_to_close_timeout=_SHORT, retry_policy=_STORE_RETRY
        )

    def _summary(self) -> dict[str, Any]:
        return {"run_id": self.request["run_id"], "status": self.state.status, "error": self.state.error}
