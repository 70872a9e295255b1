"""Delivering a run's events to its stream callbacks, so that no callback can hang the run.

Each callback gets a channel: its own queue of the run's stored events, in ``seq`` order,
and a delivery task that hands them over one at a time.  The engine only ever appends to
the queues (:meth:`CallbackDelivery.offer` never waits), so a callback cannot slow the
run's writes, and three limits hold for every callback:

- **one event at a time, each within ``timeout_seconds``**: past it an async callback is
  cancelled; a sync one is abandoned in its thread (a thread cannot be killed);
- **no exception**: a callback that raises stops there;
- **at most ``queue_size`` events behind for at most ``timeout_seconds``**: a callback
  that falls further behind for longer is too slow for the run.

A callback that breaks a limit is *dropped*: ``on_failure`` hears of it once (the engine
records a ``callback_error`` event naming the callback and the reason) and it gets no
more events; the other callbacks go on.

Async callbacks (coroutine functions, objects with an ``async def __call__``) run on the
event loop, so they may use asyncio objects.  Sync callbacks run in a thread of their own
(one per callback, so their events stay in order): a blocking one (a synchronous HTTP
post, a lock) cannot stall the event loop, but it must not touch asyncio objects (an
``asyncio.Queue``, an ``asyncio.Event``); make it ``async def`` for that.  A sync callback
that returns an awaitable has it awaited on the loop, within the same limit.

When the run ends, :meth:`CallbackDelivery.drain` gives the callbacks at most
``timeout_seconds`` to take what is queued (a callback still behind then is dropped), and
:meth:`CallbackDelivery.close` stops the delivery tasks and threads; neither waits for a
stuck callback longer than ``timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import CallbackError, ConfigError, describe, redact
from ..events import EventType, StreamEvent

__all__ = [
    "CallbackDelivery",
    "CallbackFailure",
    "StreamCallback",
    "StreamCallbacks",
    "as_callbacks",
    "is_async_callable",
]

logger = logging.getLogger("orchestration")

StreamCallback = Callable[[StreamEvent], Any]
#: What ``stream_callback=`` takes: one callback, or several (each gets its own queue).
StreamCallbacks = StreamCallback | Sequence[StreamCallback]

_NAME_LIMIT = 200


def as_callbacks(value: StreamCallbacks | None) -> list[StreamCallback]:
    """``stream_callback=`` as a list; anything that is not callable is a ConfigError."""
    if value is None:
        return []
    if callable(value):
        return [value]
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(
            f"stream_callback must be a callable or a list of callables, got {type(value).__name__}"
        )
    callbacks = list(value)
    for index, item in enumerate(callbacks):
        if not callable(item):
            raise ConfigError(
                f"stream_callback[{index}] must be a callable taking one StreamEvent, got {type(item).__name__}"
            )
    return callbacks


def is_async_callable(target: Any) -> bool:
    """True for a coroutine function (through ``functools.partial``) or an object whose
    ``__call__`` is one: those run on the event loop, everything else in a thread."""
    while isinstance(target, functools.partial):
        target = target.func
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004  # the method, not callable()
    )


def callback_name(callback: Any) -> str:
    """How events and logs name a callback (its qualified name, else its type's)."""
    name = getattr(callback, "__qualname__", None) or type(callback).__qualname__
    return redact(str(name))[:_NAME_LIMIT]


@dataclass(frozen=True, slots=True)
class CallbackFailure:
    """Why a callback was dropped from a run."""

    callback: str
    #: ``timeout`` (an event took too long), ``error`` (it raised), ``queue_full`` (it
    #: fell too far behind), ``unfinished`` (events were left when the run ended).
    cause: Literal["timeout", "error", "queue_full", "unfinished"]
    reason: str
    #: The event it was on (None when it had not started one).
    event_seq: int | None

    def to_data(self) -> dict[str, Any]:
        """The ``callback_error`` event's data."""
        return {
            "callback": self.callback,
            "cause": self.cause,
            "error": self.reason,
            "event_seq": self.event_seq,
        }


class CallbackDelivery:
    """The stream callbacks of one run, each fed through its own bounded queue (see module docs).

    Args:
        callbacks: each gets every event.
        timeout_seconds: the limit per event, per full queue and for the final drain.
        queue_size: how many events a callback may fall behind.
        on_failure: told (synchronously, once per callback) when a callback is dropped.
        run_id: for log messages.
    """

    def __init__(
        self,
        callbacks: Iterable[StreamCallback],
        *,
        timeout_seconds: float,
        queue_size: int,
        on_failure: Callable[[CallbackFailure], None],
        run_id: str = "",
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.queue_size = queue_size
        self.run_id = run_id
        self._on_failure = on_failure
        self._channels: list[_Channel] = []
        self._tasks: list[asyncio.Task[None]] = []
        for callback in callbacks:
            self.add(callback)

    def add(self, callback: StreamCallback, *, only: EventType | None = None) -> None:
        """Deliver events (only those of type ``only``, when given) to ``callback`` too."""
        self._channels.append(_Channel(callback, only))

    def start(self) -> None:
        """Start the delivery tasks now (else each starts with its first event)."""
        for channel in self._channels:
            if channel.task is None:
                self._start(channel)

    def _start(self, channel: _Channel) -> None:
        channel.task = asyncio.get_running_loop().create_task(
            self._deliver(channel), name=f"callback {channel.name} of run {self.run_id}"
        )
        self._tasks.append(channel.task)

    def __bool__(self) -> bool:
        """True while some callback still takes events."""
        return bool(self._channels)

    def offer(self, events: Sequence[StreamEvent]) -> None:
        """Queue stored ``events`` for every callback (never waits)."""
        for channel in self._channels:
            only = channel.only
            if only is None:
                channel.pending.extend(events)
            else:
                wanted = [event for event in events if event.event_type is only]
                if not wanted:
                    continue
                channel.pending.extend(wanted)
            channel.idle.clear()
            channel.wakeup.set()
            if channel.task is None:
                self._start(channel)
            if len(channel.pending) > self.queue_size and channel.full_timer is None:
                channel.full_timer = asyncio.get_running_loop().call_later(
                    self.timeout_seconds, self._check_full, channel
                )

    async def drain(self) -> None:
        """Wait until every callback took its queued events, at most ``timeout_seconds``;
        a callback still behind then is dropped."""
        behind = {asyncio.ensure_future(c.idle.wait()): c for c in self._channels if not c.idle.is_set()}
        if not behind:
            return
        try:
            _, late = await asyncio.wait(behind, timeout=self.timeout_seconds)
        finally:
            for waiter in behind:
                waiter.cancel()
        for waiter in late:
            channel = behind[waiter]
            if not channel.idle.is_set():
                current = channel.current.seq if channel.current is not None else None
                left = len(channel.pending) + (current is not None)
                self._drop(
                    channel,
                    "unfinished",
                    f"still had {left} event(s) to take {self.timeout_seconds:g}s after the run ended "
                    "(callback_timeout_seconds)",
                    current if current is not None else channel.pending[0].seq,
                )

    async def close(self) -> None:
        """Stop every delivery task and thread (waiting at most ``timeout_seconds``)."""
        for channel in self._channels:
            channel.stop()
        self._channels.clear()
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        self._tasks.clear()
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout_seconds)

    async def _deliver(self, channel: _Channel) -> None:
        """The delivery task of one callback: its events, one at a time, each within the limit."""
        pending = channel.pending
        while True:
            if not pending:
                channel.idle.set()
                channel.wakeup.clear()
                await channel.wakeup.wait()
                continue
            event = channel.current = pending.popleft()
            failure = await self._hand_over(channel, event)
            channel.current = None
            if failure is not None:
                self._drop(channel, *failure, event.seq)
                return
            if channel.full_timer is not None and len(pending) <= self.queue_size:
                channel.full_timer.cancel()
                channel.full_timer = None

    async def _hand_over(
        self, channel: _Channel, event: StreamEvent
    ) -> tuple[Literal["timeout", "error"], str] | None:
        """Give ``event`` to the callback; None if it took it in time, else why not."""
        limit = self.timeout_seconds
        scope = asyncio.timeout(limit)
        try:
            async with scope:
                if channel.is_async:
                    outcome = channel.callback(event)
                else:
                    outcome = await channel.worker().call(channel.callback, event)
                if inspect.isawaitable(outcome):
                    await outcome
        except TimeoutError as error:
            if not scope.expired():  # the callback's own timeout
                return "error", f"raised on event {event.seq}: {describe(error)}"
        except asyncio.CancelledError as error:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the delivery is being stopped, not the callback failing
            return "error", f"raised on event {event.seq}: {describe(error)}"  # e.g. a closed websocket
        except Exception as error:
            return "error", f"raised on event {event.seq}: {describe(error)}"
        if scope.expired():  # also when the callback swallowed the cancellation
            return "timeout", f"took longer than {limit:g}s on event {event.seq} (callback_timeout_seconds)"
        return None

    def _check_full(self, channel: _Channel) -> None:
        channel.full_timer = None
        if len(channel.pending) > self.queue_size and channel in self._channels:
            behind = channel.current or channel.pending[0]
            self._drop(
                channel,
                "queue_full",
                f"fell more than {self.queue_size} events behind for {self.timeout_seconds:g}s "
                "(callback_queue_size, callback_timeout_seconds)",
                behind.seq,
            )

    def _drop(
        self,
        channel: _Channel,
        cause: Literal["timeout", "error", "queue_full", "unfinished"],
        reason: str,
        event_seq: int | None,
    ) -> None:
        if channel not in self._channels:
            return
        self._channels.remove(channel)
        channel.stop()
        task = channel.task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        logger.warning(
            "run %s: stream callback %s dropped: %s; it gets no more events",
            self.run_id,
            channel.name,
            reason,
        )
        self._on_failure(CallbackFailure(channel.name, cause, reason, event_seq))


class _Channel:
    """One callback's queue, delivery task and (for a sync callback) thread."""

    __slots__ = (
        "_worker",
        "callback",
        "current",
        "full_timer",
        "idle",
        "is_async",
        "name",
        "only",
        "pending",
        "task",
        "wakeup",
    )

    def __init__(self, callback: StreamCallback, only: EventType | None) -> None:
        self.callback = callback
        self.only = only
        self.name = callback_name(callback)
        self.is_async = is_async_callable(callback)
        self.pending: deque[StreamEvent] = deque()
        self.current: StreamEvent | None = None
        self.wakeup = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.task: asyncio.Task[None] | None = None
        self.full_timer: asyncio.TimerHandle | None = None
        self._worker: _Worker | None = None

    def worker(self) -> _Worker:
        if self._worker is None:
            self._worker = _Worker(self.name)
        return self._worker

    def stop(self) -> None:
        """Take no more events: empty the queue, end the thread once it is free."""
        self.pending.clear()
        self.idle.set()
        if self.full_timer is not None:
            self.full_timer.cancel()
            self.full_timer = None
        if self._worker is not None:
            self._worker.stop()


class _Worker:
    """A daemon thread that runs one sync callback's calls in order.

    Not the loop's default executor: a stuck callback would hold one of its threads, and
    ``asyncio.run`` waits for those at exit.  A daemon thread stuck forever costs only
    itself, and never keeps the process from exiting.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[StreamCallback, StreamEvent, asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._run, name=f"orchestration-callback {name}", daemon=True).start()

    def call(self, callback: StreamCallback, event: StreamEvent) -> asyncio.Future[Any]:
        """``callback(event)`` in the thread; the future has its return value or exception."""
        future: asyncio.Future[Any] = self._loop.create_future()
        self._jobs.put((callback, event, future))
        return future

    def stop(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            callback, event, future = job
            del job
            outcome: Any = None
            error: BaseException | None = None
            try:
                outcome = callback(event)
            except Exception as raised:
                error = raised
            except BaseException as raised:  # SystemExit & co. would only end this thread
                error = CallbackError(describe(raised))
            try:
                self._loop.call_soon_threadsafe(_settle, future, outcome, error)
            except RuntimeError:  # the loop is closed: nobody waits for this any more
                return
            del callback, event, future, outcome, error


def _settle(future: asyncio.Future[Any], outcome: Any, error: BaseException | None) -> None:
    if future.done():  # the caller gave up on it (the limit passed)
        if inspect.iscoroutine(outcome):
            outcome.close()  # never awaited: no "was never awaited" warning
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(outcome)
