"""Provider rate limits shared by every process and machine, through Redis.

:class:`SharedRateLimiter` is a drop-in for :class:`~orchestration.ratelimit.RateLimiter`
(pass it as a provider's ``rate_limiter``): the same RPM/TPM limits per ``provider:model``
/ ``provider`` / default, but the window lives in Redis, so every worker sharing the
Redis server stays under one vendor limit together.  Each decision is one Lua script,
atomic on the server: a sliding log of send times (a sorted set) and the tokens each
call reserved (a hash); a call is counted the moment it is granted, which is the moment
before its request goes out.  A call that never went out gives its place back, a call's
reservation is settled to the tokens it really used, and what the vendor says (rate-
limit headers, a 429's ``Retry-After``) pauses the provider for every process.

Needs the ``redis`` extra (``pip install -e '.[redis]'``).  Times come from the
injectable ``clock`` (wall-clock seconds, shared by the processes' hosts within clock
skew), so tests can drive it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._ratelimit_headers import parse_rate_limit_headers
from ..errors import ConfigError
from ..ratelimit import RateLimit

__all__ = ["SharedRateLimiter", "SharedReservation"]

# KEYS: log (zset id -> sent time), tokens (hash id -> tokens), pause (string: until)
# ARGV: now, period, max_requests (0: none), max_tokens (0: none), tokens, id
# Returns 0 when granted (and records the call), else the seconds to wait.
_ACQUIRE = """
local now, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_requests, max_tokens, tokens = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused > now then return tostring(paused - now) end
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - period)
if #old > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
  redis.call('HDEL', KEYS[2], unpack(old))
end
local count = redis.call('ZCARD', KEYS[1])
local used = 0
if max_tokens > 0 then
  for _, v in ipairs(redis.call('HVALS', KEYS[2])) do used = used + tonumber(v) end
end
local over_requests = max_requests > 0 and count + 1 > max_requests
local over_tokens = max_tokens > 0 and count > 0 and used + tokens > max_tokens
if over_requests or over_tokens then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(math.max(tonumber(first[2]) + period - now, 0.001))
end
redis.call('ZADD', KEYS[1], now, ARGV[6])
redis.call('HSET', KEYS[2], ARGV[6], tokens)
local ttl = math.ceil(period * 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return '0'
"""
# KEYS: log, tokens.  ARGV: id, tokens.  Settles a call still in the window.
_SETTLE = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
return 0
"""
# KEYS: pause.  ARGV: until, ttl_ms.  Moves the pause later, never earlier.
_PAUSE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 0
"""


class SharedRateLimiter:
    """RPM/TPM limits in Redis, shared by every process (see the module docstring).

    Args:
        url: the Redis server (``redis://127.0.0.1:6379/0``).
        limits: ``{"openai": RateLimit(...), "openai:gpt-4o": RateLimit(...), "*": ...}``
            (``provider:model``, then ``provider``, then ``*``; none: unlimited), as for
            :class:`~orchestration.ratelimit.RateLimiter`.
        namespace: key prefix, so several deployments can share one Redis.
        clock, sleep: injectable (wall-clock seconds; ``asyncio.sleep``).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        limits: Mapping[str, RateLimit] | None = None,
        *,
        namespace: str = "orchestration",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        try:
            from redis import asyncio as redis_asyncio
        except ImportError as error:
            raise ConfigError(
                f"shared rate limits need the redis extra ({error}): pip install -e '.[redis]'"
            ) from None
        self._redis = redis_asyncio.from_url(url)
        self.limits = dict(limits or {})
        self.namespace = namespace
        self._clock = clock
        self._sleep = sleep
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._settle = self._redis.register_script(_SETTLE)
        self._pause = self._redis.register_script(_PAUSE)
        self._background: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"SharedRateLimiter(namespace={self.namespace!r}, limits={sorted(self.limits)})"

    def _limit(self, provider: str, model: str | None) -> tuple[str, RateLimit] | None:
        for key in (f"{provider}:{model}" if model else None, provider, "*"):
            if key is not None and key in self.limits:
                return (provider if key == "*" else key), self.limits[key]
        return None

    def _keys(self, key: str) -> list[str]:
        base = f"{self.namespace}:ratelimit:{key}"
        return [f"{base}:log", f"{base}:tokens", f"{base}:pause"]

    def counts_tokens(self, provider: str, model: str | None) -> bool:
        """True when a token limit applies (callers then count the request's tokens)."""
        found = self._limit(provider, model)
        return found is not None and found[1].tokens is not None

    async def acquire(self, provider: str, model: str | None, tokens: int = 0) -> SharedReservation:
        """Wait until the call fits the shared window, then count it (atomically, in Redis)."""
        found = self._limit(provider, model)
        if found is None:
            return SharedReservation(None, "", tokens)
        key, limit = found
        call_id = uuid.uuid4().hex
        args: list[str | float | int] = [
            limit.period,
            limit.requests or 0,
            limit.tokens or 0,
            int(tokens),
            call_id,
        ]
        while True:
            wait = float(await self._acquire(keys=self._keys(key), args=[self._clock(), *args]))
            if wait <= 0:
                return SharedReservation(key, call_id, tokens)
            await self._sleep(wait)

    def sent(self, reservation: SharedReservation) -> None:
        """The request went out: it was counted when granted, so nothing changes."""

    def release(self, reservation: SharedReservation) -> None:
        """A call that never went out gives its place back."""
        if reservation.key is not None:
            log, tokens, _ = self._keys(reservation.key)
            self._spawn(
                self._redis.zrem(log, reservation.call_id), self._redis.hdel(tokens, reservation.call_id)
            )

    def settle(self, reservation: SharedReservation, tokens: int) -> None:
        """Replace the call's reserved tokens with what it really used."""
        if reservation.key is not None:
            log, counted, _ = self._keys(reservation.key)
            self._spawn(self._settle(keys=[log, counted], args=[reservation.call_id, int(tokens)]))

    def observe_headers(self, provider: str, model: str | None, headers: Mapping[str, str]) -> None:
        """When the vendor says a limit is spent, pause the provider for every process."""
        server = parse_rate_limit_headers(headers, self._clock())
        if server is None:
            return
        resets = [
            reset
            for remaining, reset in (
                (server.requests_remaining, server.requests_reset),
                (server.tokens_remaining, server.tokens_reset),
            )
            if remaining is not None and remaining <= 0 and reset is not None
        ]
        if resets:
            self.pause(provider, model, max(resets))

    def pause(self, provider: str, model: str | None, seconds: float) -> None:
        """Hold back every call of ``provider``/``model``, in every process, for ``seconds``."""
        found = self._limit(provider, model)
        if found is None or not seconds > 0:
            return
        seconds = min(float(seconds), 3600.0)  # a vendor's absurd reset never blocks for days
        pause_key = self._keys(found[0])[2]
        until = self._clock() + seconds
        self._spawn(self._pause(keys=[pause_key], args=[until, int(seconds * 1000) + 1000]))

    def _spawn(self, *calls: Awaitable[Any]) -> None:
        async def run() -> None:
            for call in calls:
                await call

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def flush(self) -> None:
        """Wait for the releases, settlements and pauses sent so far to reach Redis."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def close(self) -> None:
        """Finish what is pending and close the connection."""
        await self.flush()
        await self._redis.aclose()


@dataclass(frozen=True, slots=True)
class SharedReservation:
    """A granted call: the limit's key (None: unlimited) and the call's id in the window."""

    key: str | None
    call_id: str
    tokens: int
