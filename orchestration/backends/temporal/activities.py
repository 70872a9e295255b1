"""The activities a worker runs for Temporal runs: start, append, node, watch, release.

- ``start`` builds the run's program on the worker (the target, by import path), takes
  the run's lease for the workflow, and returns the graph to fold (``RunStarted``, or a
  stored run's graph events, to continue it);
- ``append`` writes a batch of the workflow's graph events to the run's store (fenced);
- ``node`` runs one node's handler (:mod:`.remote`), heartbeating while it runs: a
  worker that dies stops heartbeating and Temporal gives the node to another worker.
  On such a retry, the model calls the dead try made and recorded are answered from the
  log (they are not paid twice), and calls it left in flight are held at their worst
  case against the budget;
- ``watch`` runs beside the run for its whole life: it renews the lease and returns when
  cancellation is requested through the store (``orchestrate cancel``, the HTTP API);
- ``release`` gives the lease up when the run ends.

A handler's own failure is a node outcome, not an activity failure: Temporal retries
only what a lost worker (or a store outage) interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ...admission import carry_in_flight
from ...engine import leases
from ...engine.core import GraphState, RunStarted, decode, is_graph_event, wrap
from ...engine.nodecontext import _Interrupt, _interrupt_in
from ...errors import GraphError, LeaseLostError, OrchestrationError, redact
from ...events import EventType, StreamEvent
from ...replay import Recording
from ...stores.base import RunStore
from ._sdk import ApplicationError, activity
from .appender import Appender
from .remote import NodeRun, RemoteContext, failed, outcome_of
from .targets import Program, TargetSpec, load_program
from .wire import (
    ACTIVITY_APPEND,
    ACTIVITY_NODE,
    ACTIVITY_RELEASE,
    ACTIVITY_START,
    ACTIVITY_WATCH,
    decode_event,
    decode_events,
    decode_node,
    encode,
)

__all__ = ["RunActivities"]

_WATCH_POLL_SECONDS = 0.5


def _fatal(error: BaseException) -> ApplicationError:
    """An error no retry can fix: the workflow sees it once, with its one-line message."""
    return ApplicationError(redact(str(error)), type=type(error).__name__, non_retryable=True)


class RunActivities:
    """The activities of one worker process, over its store (see the module docstring)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.appender = Appender(store)
        self._programs: dict[str, Program] = {}

    def all(self) -> list[Any]:
        """The activity callables, for ``temporalio.worker.Worker(activities=...)``."""
        return [self.start, self.append, self.node, self.watch, self.release]

    def program(self, target: Mapping[str, Any]) -> Program:
        """The target's program, built once per worker process."""
        spec = TargetSpec.from_dict(target)
        key = spec.key()
        program = self._programs.get(key)
        if program is None:
            try:
                program = load_program(spec)
            except OrchestrationError as error:
                raise _fatal(error) from None
            self._programs[key] = program
        return program

    @activity.defn(name=ACTIVITY_START)
    async def start(self, request: dict[str, Any]) -> dict[str, Any]:
        """Build the run's program, take its lease; what the workflow folds first."""
        return await self._start(request)

    async def _start(self, request: dict[str, Any]) -> dict[str, Any]:
        run_id = request["run_id"]
        program = self.program(request["target"])
        try:
            await leases.acquire(self.store, run_id, request["owner"], request["lease_seconds"])
        except OrchestrationError as error:
            raise _fatal(error) from None
        summary = await self.store.get_run(run_id)
        if summary is not None and summary.status.is_terminal:
            return {"events": [], "finished": str(summary.status)}  # submitted again: it is over
        stored = await self.store.events(run_id)
        graph = [encode(decode(event)) for event in stored if is_graph_event(event)]
        if graph:  # a stored run, continued: the workflow's appends go after what it holds
            return {"events": graph, "written": sum(1 for e in stored if is_graph_event(e) or e.is_terminal)}
        adapter = program.adapter
        spec = (
            adapter.run_started(request)
            if adapter is not None
            else RunStarted(
                program.nodes,
                program.edges,
                program.entry,
                request.get("payload"),
                title=request.get("title") or "",
                task=request.get("task") or "",
                orchestrator=program.name,
            )
        )
        state = GraphState()
        try:
            state.apply(spec)  # a graph that cannot run fails here, before anything is stored
        except GraphError as error:
            raise _fatal(error) from None
        # Stored here, not sent back to be appended: a big graph's first batch is its biggest.
        now = time.time()
        first = [wrap(event, run_id, 0, now) for event in (spec, *state.take_emitted())]
        try:
            await self.appender.append(run_id, first, owner=request["owner"], first=0)
        except LeaseLostError as error:
            raise _fatal(error) from None
        return {"events": [encode(spec)], "written": len(first), "stored": True}

    @activity.defn(name=ACTIVITY_APPEND)
    async def append(self, request: dict[str, Any]) -> int:
        """Append a batch of the workflow's events (graph events, ``{"event", "time"}``, and
        an orchestrator's verdict, ``{"stream", "time"}``) to the run's log, once."""
        run_id = request["run_id"]
        batch = [
            wrap(decode_event(item["event"]), run_id, 0, item["time"])
            if "event" in item
            else StreamEvent(
                EventType(item["stream"]["kind"]),
                run_id,
                0,
                item["time"],
                item["stream"]["data"],
                item["stream"].get("agent_id"),
            )
            for item in request["events"]
        ]
        try:
            return await self.appender.append(
                run_id,
                batch,
                owner=request["owner"],
                first=int(request["first"]),
            )
        except LeaseLostError as error:
            raise _fatal(error) from None

    @activity.defn(name=ACTIVITY_WATCH)
    async def watch(self, request: dict[str, Any]) -> str:
        """Renew the run's lease; return ``"cancel"`` once cancellation is requested through
        the store, ``"lost"`` if another driver took the run over."""
        run_id, owner = request["run_id"], request["owner"]
        lease_seconds = float(request["lease_seconds"])
        renewed = time.monotonic()
        ended = False
        while True:
            activity.heartbeat()
            if not ended and await self.store.cancel_requested(run_id):
                return "cancel"
            if not ended and time.monotonic() - renewed >= lease_seconds / 3:
                summary = await self.store.get_run(run_id)
                if summary is not None and summary.status.is_terminal:
                    # The run ended: never renew a released lease; the workflow cancels this
                    # activity (delivered with a heartbeat), so it is not completed late.
                    ended = True
                    continue
                if not await self.store.renew_lease(run_id, owner, lease_seconds):
                    return "lost"
                renewed = time.monotonic()
            await asyncio.sleep(min(_WATCH_POLL_SECONDS, lease_seconds / 3))

    @activity.defn(name=ACTIVITY_RELEASE)
    async def release(self, request: dict[str, Any]) -> None:
        """Give the run's lease up (it ended)."""
        await self.store.release_lease(request["run_id"], request["owner"])
        self.appender.forget(request["run_id"])

    @activity.defn(name=ACTIVITY_NODE)
    async def node(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one visit of one node; its outcome (see :mod:`.remote`)."""
        run_id, owner = request["run_id"], request["owner"]
        program = self.program(request["target"])
        node = decode_node(request["node"])
        visit = int(request["visit"])

        async def write(batch: list[StreamEvent]) -> None:
            try:
                await self.appender.append(run_id, batch, owner=owner)
            except Exception as error:
                run.store_error = run.store_error or error
                raise

        run = NodeRun(
            run_id,
            program,
            node,
            payload=request.get("payload"),
            inputs=request.get("inputs") or {},
            answers=tuple(request.get("answers") or ()),
            made=tuple(decode_events(request.get("made") or ())),
            title=request.get("title") or "",
            write=write,
            owner=request["owner"],
        )
        if program.provider is not None:
            await self._model_access(run, program, node, activity.info().attempt)
        context = RemoteContext(run, node, visit, request.get("input"), request.get("context"))
        if program.adapter is not None:
            program.adapter.prepare(context, request)
        try:
            outcome = await self._run_handler(
                run, program, node, context, float(request["heartbeat_seconds"])
            )
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # what its calls cost is stored, as a local run's is
                await run.flushed()
            raise
        await run.flushed()
        if run.store_error is not None:
            # The store failed under the node, not the node itself: Temporal tries it again
            # (its recorded calls answer from the log), rather than the run failing it.
            if isinstance(run.store_error, LeaseLostError):
                raise _fatal(run.store_error)  # another driver has the run: nothing to retry
            raise run.store_error
        outcome["changes"] = run.changes
        if run.terminal is not None:
            outcome["terminal"] = run.terminal
        if run.aborted is not None:
            outcome["aborted"] = run.aborted
        return outcome

    async def _model_access(self, run: NodeRun, program: Program, node: Any, attempt: int) -> None:
        """Model calls for the handler: the run's bill so far counts against its budget; on a
        retry, this node's recorded calls answer again and its unsettled ones are held."""
        from ...engine.graphcalls import ModelAccess

        models = ModelAccess(run, program.provider, program.config)  # type: ignore[arg-type]
        stored = [event for event in await self.store.events(run.run_id) if not is_graph_event(event)]
        models.log.replay(stored)
        models.context.budget.charge(models.log.state.total_cost)
        if attempt > 1:  # an earlier try of this node died with its worker
            mine = [event for event in stored if event.agent_id == node.id]
            models.context.recording = Recording(mine)
            carry_in_flight(models.context, mine)
        run.models = models

    async def _run_handler(
        self, run: NodeRun, program: Program, node: Any, context: RemoteContext, heartbeat_seconds: float
    ) -> dict[str, Any]:
        handler = program.handler(node)
        started = time.monotonic()
        run_task = asyncio.current_task()
        run.on_abort = run_task.cancel if run_task is not None else None
        try:
            async with _heartbeats(heartbeat_seconds):
                if handler is None:
                    raise GraphError(f"no handler for node {node.id!r} ({node.kind.name}) on this worker")
                if node.approve_before is not None and not await context.interrupt(node.approve_before, bool):
                    raise GraphError(f"not approved: {node.approve_before}")
                if node.timeout is None:
                    value = handler(context)
                    if inspect.isawaitable(value):
                        value = await value
                else:
                    async with asyncio.timeout(node.timeout):
                        value = handler(context)
                        if inspect.isawaitable(value):
                            value = await value
        except asyncio.CancelledError:
            if run.aborted is None:
                run.token.cancel("the run was cancelled")
                raise
            if run_task is not None:
                run_task.uncancel()  # our own stop (a budget or guardrail), not Temporal's
            return failed(run.aborted, "RunAborted")
        except (_Interrupt, BaseExceptionGroup) as caught:
            asked = _interrupt_in(caught)
            if asked is None:
                return failed(redact(str(caught)), type(caught).__name__)
            return {"status": "interrupted", "question": asked.question, "schema": asked.schema}
        except TimeoutError:
            return failed(f"timed out after {node.timeout}s", "TimeoutError")
        except Exception as error:
            return failed(redact(str(error)) or type(error).__name__, type(error).__name__)
        return outcome_of(node, value, context, time.monotonic() - started)


@contextlib.asynccontextmanager
async def _heartbeats(every: float) -> AsyncIterator[None]:
    """Heartbeat while the block runs: how Temporal tells a live worker from a dead one
    (and how it delivers a cancellation to the node)."""

    async def beat() -> None:
        while True:  # the first beat after one interval: a short node sends none at all
            await asyncio.sleep(every)
            activity.heartbeat()

    # A task of its own, not a TaskGroup: the handler's exception must come out as raised.
    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
