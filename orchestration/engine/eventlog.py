"""The run's event log: numbers, folds, stores and delivers every event, in order.

``emit`` is synchronous and cheap: it folds the event into the run state, stamps it with
the next ``seq`` and the resulting progress, and queues it.  Per run, one loop appends
queued events to the store in batches and another hands stored events to the stream
callbacks one by one, so callbacks always see events in ``seq`` order, only events that
are stored, and a slow or failing callback never blocks or kills the run.  ``flush`` waits until everything
emitted so far is in the store (a durability point).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ..errors import StoreError, describe
from ..events import EventType, StreamEvent
from ..stores.base import RunStore
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
        callbacks: Sequence[Callable[[StreamEvent], Any]] = (),
        *,
        state: RunState | None = None,
        clock: Callable[[], float] = time.time,
        durable: bool = True,
    ) -> None:
        self.run_id = run_id
        self.state = state or RunState(run_id)
        self.seq = self.state.last_seq
        self._store = store
        self._callbacks = list(callbacks)
        self._clock = clock
        self._queue: list[StreamEvent] = []  # emitted, not yet stored
        self._outbox: deque[StreamEvent] = deque()  # stored, not yet given to every callback
        self._write_wakeup = asyncio.Event()
        self._deliver_wakeup = asyncio.Event()
        self._written = self.seq
        self._snapshot_seq = self.seq
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._closed = False
        self._writes_done = False
        self._reported: set[int] = set()
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
        """Ask the dispatcher to write and deliver what is queued, then stop."""
        self._closed = True
        self._write_wakeup.set()

    async def dispatch(self) -> None:
        """Run until :meth:`close`: one loop writes batches to the store, another hands
        stored events to the callbacks, so a slow callback never delays a write."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._write_loop())
            if self._callbacks:
                group.create_task(self._deliver_loop())

    async def _write_loop(self) -> None:
        while True:
            await self._write_wakeup.wait()
            self._write_wakeup.clear()
            await self._write_pending()
            if self._closed and not self._queue:
                self._writes_done = True
                self._deliver_wakeup.set()
                return

    async def _deliver_loop(self) -> None:
        while True:
            await self._deliver_wakeup.wait()
            self._deliver_wakeup.clear()
            await self._deliver_outbox()
            if self._writes_done and not self._outbox and not self._queue:
                return

    async def deliver_pending(self) -> None:
        """Write and deliver whatever is left (used after the run's task was cancelled)."""
        while self._queue or self._outbox:
            await self._write_pending()
            await self._deliver_outbox()

    async def _write_pending(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            if self.store_error is None:
                try:
                    if self.fence is None or not self._fences:
                        await self._store.append(self.run_id, batch)
                    else:
                        await self._store.append(self.run_id, batch, fence=self.fence)
                except Exception as error:  # the run goes on in memory; the result says so
                    self.store_error = error
                    logger.error("run %s: event store failed: %s", self.run_id, describe(error))
            self._written = batch[-1].seq
            self._release_waiters()
            if self._callbacks:
                self._outbox.extend(batch)
                self._deliver_wakeup.set()
        if self.durable and self.store_error is None and self._snapshot_due():
            await self._snapshot()

    async def _deliver_outbox(self) -> None:
        while self._outbox:
            # Removed only once every callback had it: an interrupted delivery is retried.
            await self._deliver(self._outbox[0])
            self._outbox.popleft()

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

    async def _deliver(self, event: StreamEvent) -> None:
        for callback in self._callbacks:
            try:
                outcome = callback(event)
                if inspect.isawaitable(outcome):
                    await outcome
            except asyncio.CancelledError as error:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # we are being cancelled, not the callback
                self._callback_failed(callback, event, error)  # e.g. a closed websocket's send
            except Exception as error:
                self._callback_failed(callback, event, error)

    def _callback_failed(
        self, callback: Callable[..., Any], event: StreamEvent, error: BaseException
    ) -> None:
        name = getattr(callback, "__qualname__", None) or type(callback).__name__
        logger.warning(
            "run %s: stream callback %s raised on event %d: %s", self.run_id, name, event.seq, describe(error)
        )
        if id(callback) in self._reported:
            return  # reported once as an event; later failures are only logged
        self._reported.add(id(callback))
        self.emit(
            EventType.CALLBACK_ERROR,
            {"callback": name, "error": describe(error), "event_seq": event.seq},
        )
