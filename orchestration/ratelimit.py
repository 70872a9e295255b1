"""Shared rate limiting: requests and tokens per minute, per provider and model.

One :class:`RateLimiter` is meant to be shared by every provider instance and every run
in a process, so that many concurrent agents do not stampede a vendor into 429s.

The decision logic is pure and clock-free: :class:`RateWindow` answers "when may a call
of ``tokens`` tokens start, given what was already granted?" for an explicit ``now``.
It is a sliding-window log: in any window ``(t - period, t]`` at most
``requests`` calls start and at most ``tokens`` tokens are reserved, which is exactly
"under the configured RPM/TPM" however the calls bunch up (a call larger than the token
limit runs alone in its window).  Grants are handed out in arrival order and may lie
in the future; the caller then sleeps until its start.
:class:`RateLimiter` adds the awaiting (with an injectable clock and sleep), the
lookup of limits by ``provider:model`` / ``provider`` / default, and adaptation to
what the server says in ``x-ratelimit-*`` / ``anthropic-ratelimit-*`` headers and in
429 answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "RateLimit",
    "RateLimiter",
    "RateWindow",
    "Reservation",
    "ServerLimits",
    "parse_duration",
    "parse_rate_limit_headers",
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
            if value is not None and value < 1:
                raise ValueError(f"RateLimit.{name} must be at least 1 (or None for no limit), got {value}")
        if not self.period > 0:
            raise ValueError(f"RateLimit.period must be positive, got {self.period}")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What a response's rate-limit headers said (``*_reset`` in seconds from now)."""

    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset: float | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset: float | None = None


@dataclass(slots=True, eq=False)
class _Grant:
    start: float
    tokens: int


@dataclass(slots=True)
class RateWindow:
    """Sliding-window log of granted call starts for one key; pure (no clock, no I/O)."""

    limit: RateLimit = field(default_factory=RateLimit)
    server_requests: int | None = None
    server_tokens: int | None = None
    blocked_until: float = -math.inf
    _grants: deque[_Grant] = field(default_factory=deque)

    @property
    def requests_limit(self) -> int | None:
        """The tighter of the configured and the server-reported request limit."""
        return _min(self.limit.requests, self.server_requests)

    @property
    def tokens_limit(self) -> int | None:
        """The tighter of the configured and the server-reported token limit."""
        return _min(self.limit.tokens, self.server_tokens)

    def earliest(self, now: float, tokens: int = 0) -> float:
        """The earliest start (>= ``now``) at which a call of ``tokens`` fits both limits."""
        period = self.limit.period
        grants = self._grants
        while grants and grants[0].start <= now - period:
            grants.popleft()
        start = max(now, self.blocked_until)
        if grants:
            start = max(start, grants[-1].start)  # first come, first served
        rpm = self.requests_limit
        if rpm is not None and len(grants) >= rpm:
            start = max(start, grants[len(grants) - rpm].start + period)
        tpm = self.tokens_limit
        if tpm is not None and tokens > 0:
            excess = sum(g.tokens for g in grants) + tokens - tpm
            for grant in grants:  # oldest first: how many must leave the window?
                if excess <= 0:
                    break
                excess -= grant.tokens
                start = max(start, grant.start + period)
        return start

    def record(self, start: float, tokens: int = 0) -> _Grant:
        """Record a call starting at ``start`` (which :meth:`earliest` returned or later)."""
        grant = _Grant(start, max(0, tokens))
        self._grants.append(grant)
        return grant

    def release(self, grant: _Grant) -> None:
        """Forget a grant whose call never went out (e.g. cancelled while waiting)."""
        with contextlib.suppress(ValueError):  # already pruned
            self._grants.remove(grant)

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

    def __len__(self) -> int:
        return len(self._grants)


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str) -> float | None:
    """Seconds in an OpenAI-style reset duration (``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m"``)."""
    text = text.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _reset_seconds(text: str | None, wall_now: float) -> float | None:
    if text is None:
        return None
    seconds = parse_duration(text)
    if seconds is not None:
        return seconds
    try:  # Anthropic: an RFC 3339 timestamp
        stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    return max(0.0, stamp.timestamp() - wall_now)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def parse_rate_limit_headers(
    headers: Mapping[str, str], wall_now: float | None = None
) -> ServerLimits | None:
    """Read ``x-ratelimit-*`` (OpenAI and compatibles) or ``anthropic-ratelimit-*`` headers.

    ``headers`` must look names up case-insensitively (``httpx.Headers`` does).  Returns
    None when the response carried none of them.
    """
    wall = time.time() if wall_now is None else wall_now
    if (
        headers.get("x-ratelimit-limit-requests") is not None
        or headers.get("x-ratelimit-limit-tokens") is not None
    ):
        return ServerLimits(
            requests_limit=_int_header(headers, "x-ratelimit-limit-requests"),
            requests_remaining=_int_header(headers, "x-ratelimit-remaining-requests"),
            requests_reset=_reset_seconds(headers.get("x-ratelimit-reset-requests"), wall),
            tokens_limit=_int_header(headers, "x-ratelimit-limit-tokens"),
            tokens_remaining=_int_header(headers, "x-ratelimit-remaining-tokens"),
            tokens_reset=_reset_seconds(headers.get("x-ratelimit-reset-tokens"), wall),
        )
    prefix = "anthropic-ratelimit-"
    if headers.get(prefix + "requests-limit") is None and headers.get(prefix + "tokens-limit") is None:
        return None
    # Anthropic reports total tokens and, separately, input tokens; we reserve input + output.
    tokens = "tokens" if headers.get(prefix + "tokens-limit") is not None else "input-tokens"
    return ServerLimits(
        requests_limit=_int_header(headers, prefix + "requests-limit"),
        requests_remaining=_int_header(headers, prefix + "requests-remaining"),
        requests_reset=_reset_seconds(headers.get(prefix + "requests-reset"), wall),
        tokens_limit=_int_header(headers, f"{prefix}{tokens}-limit"),
        tokens_remaining=_int_header(headers, f"{prefix}{tokens}-remaining"),
        tokens_reset=_reset_seconds(headers.get(f"{prefix}{tokens}-reset"), wall),
    )


@dataclass(slots=True, eq=False)
class Reservation:
    """A granted call: where it was recorded, so it can be settled or released."""

    start: float
    tokens: int
    _entries: list[tuple[RateWindow, _Grant]] = field(default_factory=list, repr=False)


GrantObserver = Callable[[str, float, int], Any]


class RateLimiter:
    """Limits calls per provider/model; share one instance between providers and runs.

    Args:
        limits: one :class:`RateLimit` for every provider, or a mapping whose keys are
            ``"provider:model"``, ``"provider"`` or ``"*"`` (most specific wins).  Calls
            matched by a ``"provider"`` key share that provider's window.
        adapt: follow the rate-limit headers and 429s servers send (tighter limits,
            pauses until a reset).  Each ``provider:model`` gets such a window.
        clock: monotonic seconds; ``sleep``: how to wait (inject both in tests).
        wall_clock: epoch seconds, to read absolute reset timestamps.
        on_grant: called with ``(key, start, tokens)`` for every granted call.
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

    def reserve(self, provider: str, model: str | None, tokens: int = 0) -> Reservation:
        """Grant the earliest start for a call now, without waiting (the pure part)."""
        with self._lock:
            now = self._clock()
            windows = self._windows_for(provider, model)
            start = max([now, *(w.earliest(now, tokens) for _k, w in windows)])
            reservation = Reservation(start, tokens, [(w, w.record(start, tokens)) for _k, w in windows])
        if self._on_grant is not None:
            self._on_grant(windows[0][0] if windows else provider, start, tokens)
        return reservation

    async def acquire(self, provider: str, model: str | None, tokens: int = 0) -> Reservation:
        """Wait until a call of ``tokens`` tokens may start; returns its reservation."""
        reservation = self.reserve(provider, model, tokens)
        delay = reservation.start - self._clock()
        if delay > 0:
            try:
                await self._sleep(delay)
            except BaseException:
                self.release(reservation)
                raise
        return reservation

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose call never went out."""
        with self._lock:
            for window, grant in reservation._entries:
                window.release(grant)

    def settle(self, reservation: Reservation, tokens: int) -> None:
        """Record the tokens the call really used (instead of the reserved worst case)."""
        with self._lock:
            for window, grant in reservation._entries:
                window.settle(grant, tokens)

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
