"""Fan a run's live events out to many subscribers, and follow a run from any point.

:class:`EventBroadcaster` is a stream callback: give it to ``execute_workflow`` and every
subscriber of that run gets each event on its own bounded queue (a slow subscriber never
slows the run; if its queue overflows it is marked lagged and catches up from the store).

:func:`follow_run` is what an SSE client reads: the run's stored events after
``after_seq`` (replay), then live events; a gap (lag, or events written by another
process) is filled from the store, and events are deduplicated by ``seq``, so every
event is delivered exactly once and in order.  It ends after the run's last event (its
terminal event, or the report listing written after it: ``StreamEvent.is_last``).
Pure asyncio: no web framework needed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

from ..events import StreamEvent
from ..stores.base import RunStore

__all__ = ["EventBroadcaster", "Subscription", "follow_run", "follow_run_batches"]


class Subscription:
    """One subscriber's queue of live events for one run."""

    def __init__(self, run_id: str, maxsize: int) -> None:
        self.run_id = run_id
        self.lagged = False
        self._queue: asyncio.Queue[StreamEvent] = asyncio.Queue(maxsize)

    def offer(self, event: StreamEvent) -> None:
        """Queue ``event``; on overflow, drop the backlog and mark the subscriber lagged."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True
            while not self._queue.empty():
                self._queue.get_nowait()

    async def get(self, patience: float) -> StreamEvent | None:
        """The next live event, or None after ``patience`` seconds or when lagged."""
        if self.lagged:
            self.lagged = False
            return None
        if not self._queue.empty():
            return self._queue.get_nowait()  # no timer when the event is already here
        try:
            return await asyncio.wait_for(self._queue.get(), patience)
        except TimeoutError:
            return None

    def drain(self, limit: int) -> list[StreamEvent]:
        """Up to ``limit`` events that are already queued (no waiting)."""
        taken: list[StreamEvent] = []
        while len(taken) < limit and not self._queue.empty():
            taken.append(self._queue.get_nowait())
        return taken


class EventBroadcaster:
    """A stream callback that fans each run's events out to its subscribers."""

    def __init__(self, *, queue_size: int = 10_000) -> None:
        self.queue_size = queue_size
        self._subscribers: dict[str, set[Subscription]] = {}
        self._live: set[str] = set()

    def publish(self, event: StreamEvent) -> None:
        """Deliver ``event`` to the run's subscribers (never blocks)."""
        for subscription in self._subscribers.get(event.run_id, ()):
            subscription.offer(event)

    async def __call__(self, event: StreamEvent) -> None:
        """:meth:`publish`, as a stream callback.  Async although it never awaits: the
        subscribers' queues are asyncio queues, so it must run on the event loop, where the
        engine runs async callbacks (sync ones run in a thread)."""
        self.publish(event)

    def mark_live(self, run_id: str) -> None:
        """Note that ``run_id`` runs in this process (it is known before its first event)."""
        self._live.add(run_id)

    def mark_done(self, run_id: str) -> None:
        """Note that ``run_id`` no longer runs in this process."""
        self._live.discard(run_id)

    def is_live(self, run_id: str) -> bool:
        """True while ``run_id`` runs in this process."""
        return run_id in self._live

    def subscriber_count(self, run_id: str | None = None) -> int:
        """How many subscribers one run (or all runs) has."""
        if run_id is not None:
            return len(self._subscribers.get(run_id, ()))
        return sum(len(s) for s in self._subscribers.values())

    @contextlib.contextmanager
    def subscribe(self, run_id: str) -> Iterator[Subscription]:
        """Receive ``run_id``'s live events while the block runs."""
        subscription = Subscription(run_id, self.queue_size)
        self._subscribers.setdefault(run_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers.get(run_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[run_id]


async def follow_run(
    store: RunStore,
    broadcaster: EventBroadcaster,
    run_id: str,
    after_seq: int = 0,
    *,
    poll_interval: float = 1.0,
) -> AsyncIterator[StreamEvent]:
    """Every event of ``run_id`` after ``after_seq``, exactly once, in order, live.

    Subscribes before reading the store, so nothing emitted between the replay and the
    live phase is missed.  When no live event arrives for ``poll_interval`` seconds the
    store is read again (this also follows runs executed by another process).
    """
    async for batch in follow_run_batches(store, broadcaster, run_id, after_seq, poll_interval=poll_interval):
        for event in batch:
            yield event


async def follow_run_batches(
    store: RunStore,
    broadcaster: EventBroadcaster,
    run_id: str,
    after_seq: int = 0,
    *,
    poll_interval: float = 1.0,
    max_batch: int = 500,
) -> AsyncIterator[list[StreamEvent]]:
    """:func:`follow_run` in batches: whatever is ready now, so a burst costs one write, not hundreds."""
    last = after_seq
    with broadcaster.subscribe(run_id) as subscription:
        while True:
            stored = [e for e in await store.events(run_id, after_seq=last) if e.seq > last]
            for start in range(0, len(stored), max_batch):
                batch, ended = _until_last(stored[start : start + max_batch])
                last = batch[-1].seq
                yield batch
                if ended:
                    return
            while True:
                live = await subscription.get(poll_interval)
                if live is None:
                    break  # idle or lagged: read the store
                batch = []
                gap = False
                for event in (live, *subscription.drain(max_batch - 1)):
                    if event.seq <= last:
                        continue  # already sent during the replay
                    if event.seq != last + 1:
                        gap = True  # the store has the events in between
                        break
                    batch.append(event)
                    last = event.seq
                    if event.is_last:
                        yield batch
                        return
                if batch:
                    yield batch
                if gap:
                    break


def _until_last(events: list[StreamEvent]) -> tuple[list[StreamEvent], bool]:
    for index, event in enumerate(events):
        if event.is_last:
            return events[: index + 1], True
    return events, False
