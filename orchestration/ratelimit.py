"""Shared rate limiting: requests and tokens per minute, per provider and model.

One :class:`RateLimiter` is meant to be shared by every provider instance and every run
in a process, so that many concurrent agents do not stampede a vendor into 429s.

The decision logic is pure and clock-free: :class:`RateWindow` answers "when may a call
of ``tokens`` tokens go out, given the calls already sent and those on their way?" for
an explicit ``now``.  It is a sliding-window log of *send* times: in any window
``(t - period, t]`` at most ``requests`` requests reach the vendor and at most
``tokens`` tokens are reserved, which is exactly "under the configured RPM/TPM" however
the calls bunch up and however long each takes to leave (a call larger than the token
limit runs alone in its window).  A call admitted but not yet sent counts in every
window until it is marked sent, so a slow first request cannot let the next batch in
early.  :class:`RateLimiter` adds the awaiting (first come, first served, with an
injectable clock and sleep), the lookup of limits by ``provider:model`` / ``provider``
/ default, and adaptation to what the server says in ``x-ratelimit-*`` /
``anthropic-ratelimit-*`` headers and in 429 answers.  :class:`RateLimiterPool` hands
out one limiter per vendor, endpoint and key, so runs in one process share them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._ratelimit_headers import ServerLimits, parse_duration, parse_number, parse_rate_limit_headers

__all__ = [
    "RateLimit",
    "RateLimiter",
    "RateLimiting",
    "RateLimiterPool",
    "RateWindow",
    "Reservation",
    "ServerLimits",
    "parse_duration",
    "parse_number",
    "parse_rate_limit_headers",
    "process_rate_limiters",
]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Limits for one provider (or one provider's model).

    ``requests`` and ``tokens`` are counts allowed per ``period`` seconds (60: per
    minute); ``None`` means unlimited.
    """

    requests: int | None = None
    tokens: int | None = None
    period: float = 60.0

    def __post_init__(self) -> None:
        for name in ("requests", "tokens"):
            value = getattr(self, name)
            if value is not None and not (value >= 1 and math.isfinite(value)):
                raise ValueError(f"RateLimit.{name} must be at least 1 (or None for no limit), got {value}")
        if not (self.period > 0 and math.isfinite(self.period)):
            raise ValueError(f"RateLimit.period must be positive and finite (seconds), got {self.period}")


@dataclass(slots=True, eq=False)
class _Grant:
    start: float  # when the call was admitted
    tokens: int
    sent: float | None = None  # when the request went out; None while it is on its way


@dataclass(slots=True)
class RateWindow:
    """Sliding-window log of the calls sent for one key; pure (no clock, no I/O).

    A call is admitted (:meth:`record`), then marked :meth:`sent` when its request has
    gone out.  Sent calls count in the windows that contain their send time; admitted
    calls not yet sent count in every window (they may go out at any moment), so the
    vendor never sees more than the limit in any window, however long a request took to
    leave (a new connection, a slow event loop).
    """

    limit: RateLimit = field(default_factory=RateLimit)
    server_requests: int | None = None
    server_tokens: int | None = None
    blocked_until: float = -math.inf
    _sent: deque[_Grant] = field(default_factory=deque)
    _pending: list[_Grant] = field(default_factory=list)

    @property
    def requests_limit(self) -> int | None:
        """The tighter of the configured and the server-reported request limit."""
        return _min(self.limit.requests, self.server_requests)

    @property
    def tokens_limit(self) -> int | None:
        """The tighter of the configured and the server-reported token limit."""
        return _min(self.limit.tokens, self.server_tokens)

    def earliest(self, now: float, tokens: int = 0) -> float | None:
        """The earliest time (>= ``now``) at which a call of ``tokens`` may be admitted, or
        None when that depends on calls still on their way (wait until one is sent)."""
        period = self.limit.period
        sent = self._sent
        while sent and (sent[0].sent or 0.0) <= now - period:
            sent.popleft()
        start = max(now, self.blocked_until)
        rpm = self.requests_limit
        if rpm is not None:
            room = rpm - len(self._pending)  # places left for sent calls plus this one
            if room <= 0:
                return None
            if len(sent) >= room:
                start = max(start, (sent[len(sent) - room].sent or 0.0) + period)
        tpm = self.tokens_limit
        if tpm is not None and tokens > 0:
            excess = sum(g.tokens for g in sent) + sum(g.tokens for g in self._pending) + tokens - tpm
            for grant in sent:  # oldest first: how many must leave the window?
                if excess <= 0:
                    break
                excess -= grant.tokens
                start = max(start, (grant.sent or 0.0) + period)
            if excess > 0 and self._pending:
                return None  # a call larger than the limit runs alone
        return start

    def record(self, start: float, tokens: int = 0) -> _Grant:
        """Admit a call at ``start`` (a time :meth:`earliest` allowed); it counts as on its
        way until :meth:`sent` or :meth:`release`."""
        grant = _Grant(start, max(0, tokens))
        self._pending.append(grant)
        return grant

    def sent(self, grant: _Grant, at: float) -> None:
        """The call's request went out at ``at``: from now on it counts at that time."""
        if grant.sent is not None:
            return
        with contextlib.suppress(ValueError):  # released meanwhile
            self._pending.remove(grant)
            if self._sent:  # keep the log ordered even if clocks of two threads disagree
                at = max(at, self._sent[-1].sent or at)
            grant.sent = at
            self._sent.append(grant)

    def release(self, grant: _Grant) -> None:
        """Forget a call whose request never went out (e.g. cancelled while waiting)."""
        with contextlib.suppress(ValueError):
            if grant.sent is None:
                self._pending.remove(grant)
            else:
                self._sent.remove(grant)

    def settle(self, grant: _Grant, tokens: int) -> None:
        """Replace a grant's reserved tokens by the tokens the call really used."""
        grant.tokens = max(0, tokens)

    def pause_until(self, until: float) -> None:
        """Start nothing before ``until`` (the server said so)."""
        self.blocked_until = max(self.blocked_until, until)

    def observe(self, now: float, server: ServerLimits) -> None:
        """Adopt the server's limits and pause when it says nothing is left until a reset."""
        if server.requests_limit is not None and server.requests_limit > 0:
            self.server_requests = server.requests_limit
        if server.tokens_limit is not None and server.tokens_limit > 0:
            self.server_tokens = server.tokens_limit
        if server.requests_remaining == 0 and server.requests_reset is not None:
            self.pause_until(now + server.requests_reset)
        if server.tokens_remaining == 0 and server.tokens_reset is not None:
            self.pause_until(now + server.tokens_reset)

    def grants(self) -> tuple[_Grant, ...]:
        """The calls in the window: sent ones (oldest first), then those on their way."""
        return (*self._sent, *self._pending)

    def __len__(self) -> int:
        return len(self._sent) + len(self._pending)


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


class RateLimiting(Protocol):
    """What providers need of a rate limiter: :class:`RateLimiter` (this process) or
    :class:`~orchestration.backends.redis_limits.SharedRateLimiter` (every process)."""

    def counts_tokens(self, provider: str, model: str | None) -> bool: ...

    async def acquire(self, provider: str, model: str | None, tokens: int = 0) -> Any: ...

    def sent(self, reservation: Any) -> None: ...

    def release(self, reservation: Any) -> None: ...

    def settle(self, reservation: Any, tokens: int) -> None: ...

    def observe_headers(self, provider: str, model: str | None, headers: Mapping[str, str]) -> None: ...

    def pause(self, provider: str, model: str | None, seconds: float) -> None: ...


@dataclass(slots=True, eq=False)
class Reservation:
    """An admitted call: where it was recorded, so it can be marked sent, settled or released."""

    start: float
    tokens: int
    _entries: list[tuple[RateWindow, _Grant]] = field(default_factory=list, repr=False)


GrantObserver = Callable[[str, float, int], Any]


class _Ticket:
    """One caller waiting in :meth:`RateLimiter.acquire`; woken from any thread."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def renew(self) -> asyncio.Future[None]:
        if self.future.done():
            self.future = self.loop.create_future()
        return self.future

    def wake(self) -> None:
        future = self.future
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody to wake
            self.loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class RateLimiter:
    """Limits calls per provider/model; share one instance between providers and runs.

    A call waits in :meth:`acquire` (first come, first served per provider and model)
    until it fits, goes out, and is reported with :meth:`sent`: the limits hold for the
    times requests are sent, which is what the vendor counts.  A reservation that is
    never sent must be given back with :meth:`release`.

    Args:
        limits: one :class:`RateLimit` for every provider, or a mapping whose keys are
            ``"provider:model"``, ``"provider"`` or ``"*"`` (most specific wins).  Calls
            matched by a ``"provider"`` key share that provider's window.
        adapt: follow the rate-limit headers and 429s servers send (tighter limits,
            pauses until a reset).  Each ``provider:model`` gets such a window.
        clock: monotonic seconds; ``sleep``: how to wait (inject both in tests).
        wall_clock: epoch seconds, to read absolute reset timestamps.
        on_grant: called with ``(key, start, tokens)`` for every admitted call.
    """

    def __init__(
        self,
        limits: RateLimit | Mapping[str, RateLimit] | None = None,
        *,
        adapt: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
        on_grant: GrantObserver | None = None,
    ) -> None:
        if isinstance(limits, RateLimit):
            limits = {"*": limits}
        self._limits: dict[str, RateLimit] = dict(limits or {})
        self._adapt = adapt
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._on_grant = on_grant
        self._windows: dict[str, RateWindow] = {}
        self._queues: dict[str, deque[_Ticket]] = {}
        self._waiting_for_change: list[_Ticket] = []
        self._lock = threading.Lock()  # windows may be shared by loops in several threads

    def __repr__(self) -> str:
        return f"RateLimiter(limits={self._limits!r}, adapt={self._adapt})"

    def _configured_key(self, provider: str, model: str | None) -> str | None:
        for key in (f"{provider}:{model}" if model else None, provider, "*"):
            if key is not None and key in self._limits:
                return key
        return None

    def _window(self, key: str, limit: RateLimit) -> RateWindow:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = RateWindow(limit)
        return window

    def _windows_for(self, provider: str, model: str | None) -> list[tuple[str, RateWindow]]:
        found: list[tuple[str, RateWindow]] = []
        configured = self._configured_key(provider, model)
        if configured is not None:
            found.append((configured, self._window(configured, self._limits[configured])))
        if self._adapt:
            key = f"{provider}:{model or ''}"
            if key != configured:
                period = self._limits[configured].period if configured else 60.0
                found.append((key, self._window(key, RateLimit(period=period))))
        return found

    def counts_tokens(self, provider: str, model: str | None) -> bool:
        """Whether calls to ``provider``/``model`` are limited by tokens (worth counting them)."""
        with self._lock:
            return any(w.tokens_limit is not None for _k, w in self._windows_for(provider, model))

    async def acquire(self, provider: str, model: str | None, tokens: int = 0) -> Reservation:
        """Wait until a call of ``tokens`` tokens may go out; returns its reservation.

        Call :meth:`sent` when the request has gone out (or :meth:`release` if it never
        does): until then the call counts in every window, and callers queued behind it
        may wait for it.
        """
        queue_key = f"{provider}:{model or ''}"
        ticket = _Ticket(asyncio.get_running_loop())
        with self._lock:
            queue = self._queues.setdefault(queue_key, deque())
            queue.append(ticket)
        try:
            while True:
                with self._lock:
                    wakeup = ticket.renew()
                    delay: float | None = None
                    if queue[0] is ticket:
                        now = self._clock()
                        windows = self._windows_for(provider, model)
                        starts = [w.earliest(now, tokens) for _k, w in windows]
                        if None in starts:
                            self._waiting_for_change.append(ticket)
                        else:
                            delay = max([now, *(s for s in starts if s is not None)]) - now
                            if delay <= 0:
                                reservation = Reservation(
                                    now, tokens, [(w, w.record(now, tokens)) for _k, w in windows]
                                )
                                self._leave(queue_key, ticket)
                                break
                if delay is None:  # not first in line, or waiting for a call to go out
                    await wakeup
                else:
                    await self._sleep(delay)
        except BaseException:
            with self._lock:
                self._leave(queue_key, ticket)
            raise
        if self._on_grant is not None:
            self._on_grant(windows[0][0] if windows else provider, reservation.start, tokens)
        return reservation

    def _leave(self, queue_key: str, ticket: _Ticket) -> None:
        """Take ``ticket`` out of its queue and wake whoever is first now (lock held)."""
        queue = self._queues.get(queue_key)
        if queue is None:
            return
        was_first = bool(queue) and queue[0] is ticket
        with contextlib.suppress(ValueError):
            queue.remove(ticket)
        if ticket in self._waiting_for_change:
            self._waiting_for_change.remove(ticket)
        if not queue:
            del self._queues[queue_key]
        elif was_first:
            queue[0].wake()

    def _changed(self) -> None:
        """A call went out or gave its place back: first-in-line waiters look again (lock held)."""
        waiting, self._waiting_for_change = self._waiting_for_change, []
        for ticket in waiting:
            ticket.wake()

    def sent(self, reservation: Reservation) -> None:
        """The reserved call's request went out now (idempotent)."""
        with self._lock:
            now = self._clock()
            for window, grant in reservation._entries:
                window.sent(grant, now)
            self._changed()

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose call never went out."""
        with self._lock:
            for window, grant in reservation._entries:
                window.release(grant)
            self._changed()

    def settle(self, reservation: Reservation, tokens: int) -> None:
        """Record the tokens the call really used (instead of the reserved worst case)."""
        with self._lock:
            for window, grant in reservation._entries:
                window.settle(grant, tokens)
            self._changed()

    def observe_headers(self, provider: str, model: str | None, headers: Mapping[str, str]) -> None:
        """Adapt to the rate-limit headers of a response from ``provider``/``model``."""
        if not self._adapt:
            return
        server = parse_rate_limit_headers(headers, self._wall_clock())
        if server is None:
            return
        with self._lock:
            now = self._clock()
            for _key, window in self._windows_for(provider, model)[-1:]:
                window.observe(now, server)

    def pause(self, provider: str, model: str | None, seconds: float) -> None:
        """Start no call to ``provider``/``model`` for ``seconds`` (after a 429 with Retry-After)."""
        if not self._adapt or seconds <= 0:
            return
        with self._lock:
            now = self._clock()
            for _key, window in self._windows_for(provider, model)[-1:]:
                window.pause_until(now + seconds)

    def window(self, provider: str, model: str | None = None) -> RateWindow | None:
        """The adaptive window of ``provider``/``model`` (or the configured one), for inspection."""
        with self._lock:
            windows = self._windows_for(provider, model)
        return windows[-1][1] if windows else None


class RateLimiterPool:
    """One :class:`RateLimiter` per vendor, endpoint and API key (each keeps a window per
    model), so that the providers built for each run of a CLI or server process share
    the vendor's limits instead of each starting from zero.

    Keys are held only as SHA-256 digests; the repr shows how many limiters there are.
    """

    def __init__(self, factory: Callable[[], RateLimiter] = RateLimiter) -> None:
        self._factory = factory
        self._limiters: dict[str, RateLimiter] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RateLimiterPool(limiters={len(self)})"

    def __len__(self) -> int:
        with self._lock:
            return len(self._limiters)

    def limiter_for(self, vendor: str, base_url: str, api_key: str | None) -> RateLimiter:
        """The limiter shared by every provider of ``vendor`` at ``base_url`` with ``api_key``."""
        digest = hashlib.sha256("\0".join((vendor, base_url, api_key or "")).encode()).hexdigest()
        with self._lock:
            limiter = self._limiters.get(digest)
            if limiter is None:
                limiter = self._limiters[digest] = self._factory()
            return limiter


@functools.cache
def process_rate_limiters() -> RateLimiterPool:
    """This process's :class:`RateLimiterPool` (made on first use), used by the providers
    that :mod:`providers.registry` builds for the CLI and the server."""
    return RateLimiterPool()
