"""The run's event log: numbers, folds, stores and delivers every event, in order.

``emit`` is synchronous and cheap: it folds the event into the run state, stamps it with
the next ``seq`` and the resulting progress, and queues it.  Per run, one loop appends
queued events to the store in batches and hands each stored batch to the stream
callbacks' own queues (:mod:`orchestration.engine.callbacks`), so callbacks always see
events in ``seq`` order, only events that are stored, and a slow, stuck or failing
callback never blocks the writes or the end of the run: it is dropped and reported as a
``callback_error`` event.  ``flush`` waits until everything emitted so far is in the
store (a durability point).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ..config import OrchestratorConfig
from ..errors import StoreError, describe
from ..events import EventType, StreamEvent
from ..stores.base import RunStore
from .callbacks import CallbackDelivery, CallbackFailure, StreamCallback
from .state import RunState

__all__ = ["EventLog"]

logger = logging.getLogger("orchestration")

_EMPTY: Mapping[str, Any] = MappingProxyType({})  # shared by data-less events: read-only
_SNAPSHOT_MIN_EVENTS = 1000


class EventLog:
    """Emits a run's events to its state, its store and its subscribers."""

    def __init__(
        self,
        run_id: str,
        store: RunStore,
        callbacks: Sequence[StreamCallback] = (),
        *,
        state: RunState | None = None,
        clock: Callable[[], float] = time.time,
        durable: bool = True,
        callback_timeout_seconds: float = OrchestratorConfig.callback_timeout_seconds,
        callback_queue_size: int = OrchestratorConfig.callback_queue_size,
    ) -> None:
        self.run_id = run_id
        self.state = state or RunState(run_id)
        self.seq = self.state.last_seq
        self._store = store
        self._clock = clock
        self._queue: list[StreamEvent] = []  # emitted, not yet stored
        self._delivery = (
            CallbackDelivery(
                callbacks,
                timeout_seconds=callback_timeout_seconds,
                queue_size=callback_queue_size,
                on_failure=self._callback_failed,
                run_id=run_id,
            )
            if callbacks
            else None
        )
        self._write_wakeup = asyncio.Event()
        self._written = self.seq
        self._snapshot_seq = self.seq
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._closed = False
        self._unwritten: list[StreamEvent] | None = None  # taken from the queue, not yet stored
        self._in_flight: asyncio.Future[None] | None = None  # its write to a durable store
        self.store_error: BaseException | None = None
        #: False for stores that keep nothing across processes: ``flush`` is then free.
        self.durable = durable
        #: The lease owner every append is fenced with (set once the run's lease is held);
        #: a user's store whose ``append`` takes no ``fence`` is written to unfenced.
        self.fence: str | None = None
        self._fences = "fence" in inspect.signature(store.append).parameters

    def emit(
        self, kind: EventType, data: Mapping[str, Any] | None = None, agent_id: str | None = None
    ) -> StreamEvent:
        """Record one event; returns it (already folded into :attr:`state`)."""
        payload = _EMPTY if data is None else data
        now = self._clock()
        progress = self.state.apply(kind, payload, agent_id, now)
        self.seq += 1
        self.state.last_seq = self.seq
        event = StreamEvent(kind, self.run_id, self.seq, now, payload, agent_id, progress)
        self._queue.append(event)
        self._write_wakeup.set()
        return event

    async def flush(self, *, always: bool = False) -> None:
        """Wait until every event emitted so far is in the store (no-op for a memory store,
        unless ``always``: for a caller that reads the log back, as reports do).

        Only the store write is waited for, never the stream callbacks.
        """
        if not self.durable and not always:
            return
        target = self.seq
        if self._written >= target or self.store_error is not None:
            return
        if self._closed:  # no writer any more: write here
            await self._write_pending()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        self._write_wakeup.set()
        await future

    async def writable(self) -> None:
        """Wait until everything emitted so far is stored; raise :class:`StoreError` if the
        store failed.  Model calls await this before they are sent, so a run whose store
        cannot write (e.g. a database retrying a lost connection) stops paying for calls."""
        await self.flush()
        if self.store_error is not None:
            raise StoreError(
                f"the run's store failed ({describe(self.store_error)}); no more model calls are made"
            )

    def close(self) -> None:
        """Ask the dispatcher to write what is queued, let the callbacks take it, then stop."""
        self._closed = True
        self._write_wakeup.set()

    async def dispatch(self) -> None:
        """Run until :meth:`close`: write batches to the store (each handed to the callbacks'
        queues once stored), then let the callbacks take what is left (bounded) and stop them.
        Cancelled meanwhile, it leaves the callbacks to :meth:`deliver_pending`."""
        async with asyncio.TaskGroup() as group:  # tasks: they start after the run's first step
            group.create_task(self._write_loop())
            if self._delivery:
                self._delivery.start()
        await self._settle()
        if self._delivery is not None:
            await self._delivery.close()

    async def deliver_pending(self) -> None:
        """Write whatever is left, let the callbacks take it (bounded), then stop them; for
        after the run's task was cancelled."""
        try:
            await self._settle()
        finally:
            if self._delivery is not None:
                await self._delivery.close()

    async def _write_loop(self) -> None:
        while True:
            await self._write_wakeup.wait()
            self._write_wakeup.clear()
            await self._write_pending()
            if self._closed and not self._queue:
                return

    async def _settle(self) -> None:
        """Write what is queued and give the callbacks at most their time limit to take it;
        a callback dropped meanwhile adds its ``callback_error``, which goes the same way."""
        delivery = self._delivery
        while True:
            await self._write_pending()
            if not delivery:
                return
            await delivery.drain()
            if not self._queue:
                return

    async def _write_pending(self) -> None:
        while self._unwritten is not None or self._queue:
            if self._unwritten is None:
                self._unwritten, self._queue = self._queue, []
            batch = self._unwritten
            await self._append(batch)  # cancelled: the batch stays unwritten, its write goes on
            self._unwritten = None
            self._written = batch[-1].seq
            if self._delivery:  # first, so the callbacks hear of the batch before waiters go on
                self._delivery.offer(batch)
            self._release_waiters()
        if self.durable and self.store_error is None and self._snapshot_due():
            await self._snapshot()

    async def _store_append(self, batch: list[StreamEvent]) -> None:
        """One append, fenced by the run's lease where the store takes a fence."""
        if self.fence is None or not self._fences:
            await self._store.append(self.run_id, batch)
        else:
            await self._store.append(self.run_id, batch, fence=self.fence)

    async def _append(self, batch: list[StreamEvent]) -> None:
        if self.store_error is not None:
            return
        try:
            if not self.durable:  # a memory store: its append never waits, nothing to interrupt
                await self._store_append(batch)
                return
            # Shielded: a cancellation mid-write (the caller's task cancelled) lets the write
            # finish and the next _write_pending wait for it, so no batch is lost or doubled.
            if self._in_flight is None:
                self._in_flight = asyncio.ensure_future(self._store_append(batch))
            await asyncio.shield(self._in_flight)
            self._in_flight = None
        except Exception as error:  # the run goes on in memory; the result says so
            self._in_flight = None
            self.store_error = error
            logger.error("run %s: event store failed: %s", self.run_id, describe(error))

    def _snapshot_due(self) -> bool:
        # The state must be exactly the stored log (nothing emitted since), and snapshots
        # get rarer as the run grows (every time the log doubles), so they cost O(n) in all.
        written = self._written
        return (
            not self._queue
            and self.state.last_seq == written
            and written - self._snapshot_seq >= max(_SNAPSHOT_MIN_EVENTS, self._snapshot_seq)
        )

    async def _snapshot(self) -> None:
        seq = self._written
        try:
            await self._store.save_snapshot(self.run_id, seq, self.state.to_snapshot())
        except Exception as error:  # a snapshot only saves time later; the log is intact
            logger.warning("run %s: snapshot at seq %d failed: %s", self.run_id, seq, describe(error))
        self._snapshot_seq = seq

    def _release_waiters(self) -> None:
        if not self._waiters:
            return
        keep = []
        for target, future in self._waiters:
            if target <= self._written or self.store_error is not None:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((target, future))
        self._waiters = keep

    def _callback_failed(self, failure: CallbackFailure) -> None:
        self.emit(EventType.CALLBACK_ERROR, failure.to_data())
