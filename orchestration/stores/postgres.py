"""A Postgres store, for workers on many machines sharing one database (the ``postgres`` extra).

Uses psycopg 3's async connections: a small pool of autocommit connections (default 4)
opened on first use, so reads and other runs' appends proceed while one run appends.
Schema and semantics are the SQLite store's (shared in :mod:`._sql`): events as
``jsonb`` with a unique ``(run_id, seq)``, the run summary projection updated in the same
transaction as its events, a ``schema_version`` table, migrations under an advisory lock
so processes starting together migrate once.  ``append`` commits before it returns.

Leases use the database's clock by default (one clock for every machine), and are taken
with one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired-or-mine``: atomic.

``jsonb`` cannot hold a NUL character, a lone surrogate or NaN; an event or snapshot
containing one is kept as JSON text in a side column instead (and read back identically),
so odd model output never fails a run's store.

When the database goes away (a restart, a failover, a dropped network), ``append`` retries
with exponential backoff (tenacity) for ``outage_timeout`` seconds, dropping the pooled
connections it finds dead.  Meanwhile the run's model calls wait (each waits until the
run's events are stored before it is sent), so a run never pays for answers it cannot
keep.  If the database is back in time the run goes on as if nothing happened; otherwise
``append`` raises :class:`~orchestration.errors.StoreError` (one line naming the store),
no further calls are made, the run fails, and ``resume`` re-pays at most the calls that
were in flight.  Every other operation fails fast with
:class:`~orchestration.errors.StoreUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

try:
    import psycopg
    from psycopg.pq import TransactionStatus
except ImportError as _error:  # pragma: no cover - depends on the installation
    raise ImportError(
        "PostgresStore needs psycopg 3: pip install 'multi-agent-orchestration[postgres]'"
    ) from _error

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from ..errors import ConfigError, SequenceConflictError, StoreError, StoreUnavailableError, redact
from ..events import StreamEvent
from . import _sql, ledger_sql
from ._sql import postgres_sql as _pg

__all__ = ["PostgresStore"]

logger = logging.getLogger("orchestration.stores")

_Connection = psycopg.AsyncConnection[Any]

#: pg_advisory_xact_lock key serialising schema migrations ("orchestr" in ASCII).
_MIGRATION_LOCK = 0x6F72636865737472

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            task TEXT NOT NULL DEFAULT '',
            orchestrator TEXT NOT NULL DEFAULT '',
            created_at DOUBLE PRECISION NOT NULL DEFAULT 0,
            updated_at DOUBLE PRECISION NOT NULL DEFAULT 0,
            total_cost DOUBLE PRECISION NOT NULL DEFAULT 0,
            last_seq BIGINT NOT NULL DEFAULT 0,
            metadata TEXT NOT NULL DEFAULT '{}',
            cancel_requested BOOLEAN NOT NULL DEFAULT FALSE
        )""",
        "CREATE INDEX runs_by_created ON runs (created_at DESC, run_id DESC)",
        "CREATE INDEX runs_by_status ON runs (status, created_at DESC)",
        """CREATE TABLE events (
            run_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            event_type TEXT NOT NULL,
            ts DOUBLE PRECISION NOT NULL,
            body JSONB,
            body_raw TEXT,
            PRIMARY KEY (run_id, seq),
            CHECK ((body IS NULL) <> (body_raw IS NULL))
        )""",
        """CREATE TABLE snapshots (
            run_id TEXT PRIMARY KEY,
            seq BIGINT NOT NULL,
            state JSONB,
            state_raw TEXT
        )""",
        """CREATE TABLE leases (
            run_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )""",
    ),
    2: ledger_sql.MIGRATION,
}

_COPY_EVENTS = "COPY events (run_id, seq, event_type, ts, body, body_raw) FROM STDIN"
_SELECT_EVENTS = (
    "SELECT COALESCE(body_raw, body::text) FROM events WHERE run_id = %s AND seq > %s ORDER BY seq"
)
_INSERT_SNAPSHOT = (
    "INSERT INTO snapshots (run_id, seq, state, state_raw) VALUES (%s, %s, %s::jsonb, %s) "
    "ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, state = excluded.state, "
    "state_raw = excluded.state_raw"
)
_SELECT_SNAPSHOT = "SELECT seq, COALESCE(state_raw, state::text) FROM snapshots WHERE run_id = %s"
_NOW = "COALESCE(%(now)s::float8, extract(epoch FROM clock_timestamp())::float8)"
_ACQUIRE_LEASE = (
    f"INSERT INTO leases (run_id, owner, expires_at) VALUES (%(run_id)s, %(owner)s, {_NOW} + %(ttl)s) "
    "ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
    f"WHERE leases.owner = excluded.owner OR leases.expires_at <= {_NOW} "
    "RETURNING owner"
)


def _split_json(text: str) -> tuple[str | None, str | None]:
    """``(jsonb value, text fallback)``: exactly one is set."""
    return (text, None) if _sql.is_strict_json(text) else (None, text)


class PostgresStore(_sql.SQLStoreMixin):
    """Runs in Postgres.  Implements :class:`~orchestration.stores.RunStore`.

    Args:
        dsn: a libpq connection string or URL; default ``$ORCHESTRATION_DATABASE_URL``
            (read here, at construction).  Choose a schema with ``?options=-csearch_path%3Dname``.
        clock: seconds since the epoch for leases and retention; default the database's
            clock, which every worker shares.
        max_connections: connections opened at most (on demand, kept for reuse).
        connect_timeout: seconds to wait for a connection.
        synchronous_commit: set per connection if given (default: the server's setting,
            normally ``on``: a commit waits for the WAL flush).  ``"off"`` makes commits
            several milliseconds cheaper on slow disks with the guarantee the SQLite
            store gives by default: a worker crash loses nothing; only a crash of the
            database server itself can lose the last fraction of a second.
        outage_timeout: seconds ``append`` keeps retrying a database it cannot reach
            (the run's model calls wait meanwhile) before the run fails; ``0`` fails at once.
    """

    #: Events survive the process: the engine waits for them at durability points.
    durable = True

    def __init__(
        self,
        dsn: str | None = None,
        *,
        clock: Callable[[], float] | None = None,
        max_connections: int = 4,
        connect_timeout: float = 10.0,
        synchronous_commit: Literal["on", "off", "local", "remote_write", "remote_apply"] | None = None,
        outage_timeout: float = 60.0,
    ) -> None:
        dsn = dsn if dsn is not None else os.environ.get("ORCHESTRATION_DATABASE_URL")
        if not dsn:
            raise ConfigError("PostgresStore needs a DSN: pass dsn=... or set ORCHESTRATION_DATABASE_URL")
        if max_connections < 1:
            raise ConfigError(f"max_connections must be at least 1, not {max_connections!r}")
        if synchronous_commit not in (None, "on", "off", "local", "remote_write", "remote_apply"):
            raise ConfigError("synchronous_commit must be on, off, local, remote_write or remote_apply")
        if not (
            isinstance(outage_timeout, (int, float)) and math.isfinite(outage_timeout) and outage_timeout >= 0
        ):
            raise ConfigError(
                f"outage_timeout must be a finite number of seconds >= 0, not {outage_timeout!r}"
            )
        self._dsn = dsn
        self._outage_timeout = float(outage_timeout)
        self._clock = clock
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._synchronous_commit = synchronous_commit
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._migrated = False
        #: Run and tenant budgets shared by every machine using the database (:mod:`.ledger`).
        self.ledger = ledger_sql.PostgresLedger(self)

    def __repr__(self) -> str:
        try:
            info = psycopg.conninfo.conninfo_to_dict(self._dsn)
        except psycopg.Error:
            return "PostgresStore(<invalid dsn>)"
        shown = ", ".join(f"{k}={info[k]!r}" for k in ("host", "port", "dbname") if info.get(k))
        return f"PostgresStore({shown})"

    # -- plumbing -------------------------------------------------------------------

    def _where(self) -> str:
        """``host:port/dbname`` of the DSN (never its password), for messages."""
        try:
            info = psycopg.conninfo.conninfo_to_dict(self._dsn)
        except psycopg.Error:
            return "(invalid DSN)"
        host = str(info.get("host") or info.get("hostaddr") or "localhost")
        port = f":{info['port']}" if info.get("port") else ""
        return f"{host}{port}/{info.get('dbname') or ''}"

    def _error(self, error: BaseException) -> StoreError:
        """``error`` as one line naming the store, the DSN's password masked; a lost or
        refused connection is a :class:`StoreUnavailableError` (``append`` retries it)."""
        try:
            password = str(psycopg.conninfo.conninfo_to_dict(self._dsn).get("password") or "")
        except psycopg.Error:
            password = ""
        kind = StoreUnavailableError if isinstance(error, psycopg.OperationalError) else StoreError
        return kind(f"Postgres store {self._where()}: {redact(' '.join(str(error).split()), password)}")

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Connection]:
        """A pooled connection, idle (no transaction) when handed out and when given back."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._slots is None:
            await self._close_idle()  # connections are tied to the loop they were opened on
            self._loop, self._slots = loop, asyncio.Semaphore(self._max_connections)
        async with self._slots:
            try:
                conn = self._idle.pop() if self._idle else await self._connect()
            except psycopg.Error as error:
                raise self._error(error) from error
            try:
                yield conn
            except psycopg.errors.UniqueViolation as error:
                raise SequenceConflictError(
                    f"Postgres store {self._where()}: a concurrent writer won ({error})"
                ) from error
            except psycopg.Error as error:
                raise self._error(error) from error
            finally:
                if not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
                    self._idle.append(conn)
                else:  # broken, or cancelled mid-query: never reuse
                    with contextlib.suppress(Exception):
                        await conn.close()

    async def _connect(self) -> _Connection:
        conn = await psycopg.AsyncConnection.connect(
            self._dsn, autocommit=True, connect_timeout=max(1, round(self._connect_timeout))
        )
        try:
            if self._synchronous_commit is not None:
                setting = (self._synchronous_commit,)
                await conn.execute("SELECT set_config('synchronous_commit', %s, false)", setting)
            if not self._migrated:
                await self._migrate(conn)
                self._migrated = True
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _migrate(self, conn: _Connection) -> None:
        if await _schema_version(conn) == _sql.SCHEMA_VERSION:
            return
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            current = await _schema_version(conn)
            for version, statements in _sql.pending_migrations(repr(self), current, _MIGRATIONS):
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_version VALUES (%s, extract(epoch FROM now()))", (version,)
                )

    async def _close_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):  # a dead connection needs no goodbye
                await conn.close()

    async def _lease_now(self) -> float:
        if self._clock is not None:
            return self._clock()
        async with self._connection() as conn:
            return await self._now(conn)

    async def _now(self, conn: _Connection) -> float:
        if self._clock is not None:
            return self._clock()
        cursor = await conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
        row = await cursor.fetchone()
        return float(row[0]) if row else 0.0

    async def _fetch(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
        """The rows ``sql`` returns (a shared query's ``?`` placeholders are translated)."""
        async with self._connection() as conn:
            cursor = await conn.execute(_pg(sql), params)
            return await cursor.fetchall()

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        """Run ``sql`` (``?`` placeholders translated); how many rows it changed."""
        async with self._connection() as conn:
            return (await conn.execute(_pg(sql), params)).rowcount

    # -- RunStore -------------------------------------------------------------------

    async def append(self, run_id: str, events: Sequence[StreamEvent], *, fence: str | None = None) -> None:
        """Append ``events`` in one transaction; committed when this returns.

        Raises :class:`StoreError`, writing nothing, unless the batch continues the run's
        log exactly (``seq`` = last stored + 1, no gaps, same ``run_id``).  While the
        database cannot be reached, retries for ``outage_timeout`` seconds (see the
        module docstring), then raises :class:`StoreError`.
        """
        if not events:
            return
        rows = [(*row[:4], *_split_json(row[4])) for row in _sql.event_rows(run_id, events)]
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(StoreUnavailableError),
            stop=stop_after_delay(self._outage_timeout),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            before_sleep=self._retrying,
            reraise=True,
        )
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    try:
                        await self._append_once(run_id, events, rows, retried=attempts > 1, fence=fence)
                    except StoreUnavailableError:
                        await self._close_idle()  # they are as dead as the one that failed
                        raise
        except StoreUnavailableError as error:
            logger.error("%s; gave up after %d attempts", error, attempts)
            raise StoreError(
                f"{error} (still unreachable after {self._outage_timeout:g}s of retries, the store's "
                "outage_timeout; resume the run once the database is back)"
            ) from None
        if attempts > 1:
            logger.warning("Postgres store %s is reachable again; the run goes on", self._where())

    def _retrying(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        if state.attempt_number == 1:
            logger.warning(
                "%s; retrying for up to %gs (outage_timeout), model calls wait",
                error,
                self._outage_timeout,
            )
        else:
            logger.debug(
                "Postgres store %s: attempt %d failed, next in %.2fs",
                self._where(),
                state.attempt_number,
                wait,
            )

    async def _append_once(
        self,
        run_id: str,
        events: Sequence[StreamEvent],
        rows: list[tuple[Any, ...]],
        *,
        retried: bool,
        fence: str | None,
    ) -> None:
        async with self._connection() as conn, conn.transaction():
            if fence is not None:  # FOR SHARE: a takeover waits until this write committed
                cursor = await conn.execute(_pg(_sql.LEASE_OWNER) + " FOR SHARE", (run_id,))
                holder = await cursor.fetchone()
                _sql.check_fence(run_id, holder[0] if holder else None, fence)
            cursor = await conn.execute(_pg(_sql.UPSERT_RUN), (run_id,))  # locks the run's row
            row = await cursor.fetchone()
            summary = _sql.summary_from_row(row or ())
            if retried and summary.last_seq >= events[-1].seq and await _holds(conn, run_id, events[-1]):
                return  # the attempt that lost its connection had committed after all
            _sql.check_batch(run_id, summary.last_seq, events)
            async with conn.cursor() as cursor, cursor.copy(_COPY_EVENTS) as copy:
                for event_row in rows:
                    await copy.write_row(event_row)
            values = _sql.summary_values(_sql.fold(summary, events))
            await conn.execute(_pg(_sql.UPDATE_SUMMARY), values)
            await ledger_sql.settle_postgres(conn, events)  # calls that ended settle with their events

    async def events(self, run_id: str, after_seq: int = 0) -> list[StreamEvent]:
        """The run's events with ``seq > after_seq``, in order."""
        rows = await self._fetch(_SELECT_EVENTS, (run_id, after_seq))
        return [_sql.decode_event(body, run_id) for (body,) in rows]

    async def delete_run(self, run_id: str) -> bool:
        """Delete the run, its events, snapshot, lease and cancel flag; True if it existed."""
        async with self._connection() as conn, conn.transaction():
            return await _delete(conn, [run_id]) > 0

    async def save_snapshot(self, run_id: str, seq: int, state: Mapping[str, Any]) -> None:
        """Keep ``state`` (JSON-ready) as the run's latest snapshot, as of ``seq``."""
        await self._execute(_INSERT_SNAPSHOT, (run_id, int(seq), *_split_json(_sql.dumps(dict(state)))))

    async def load_snapshot(self, run_id: str) -> tuple[int, dict[str, Any]] | None:
        """The latest snapshot ``(seq, state)``, or None."""
        rows = await self._fetch(_SELECT_SNAPSHOT, (run_id,))
        return _sql.decode_snapshot(run_id, rows[0][0], rows[0][1]) if rows else None

    async def acquire_lease(self, run_id: str, owner: str, ttl_seconds: float) -> bool:
        """Take or renew the lease, atomically, unless another owner holds an unexpired one."""
        now = self._clock() if self._clock is not None else None
        params = {"run_id": run_id, "owner": owner, "ttl": float(ttl_seconds), "now": now}
        return bool(await self._fetch(_ACQUIRE_LEASE, params))

    async def prune(self, *, older_than_days: float | None = None, keep_last: int | None = None) -> int:
        """Delete finished runs older than N days and/or beyond the newest N; returns how many."""
        async with self._connection() as conn, conn.transaction():
            now = await self._now(conn)
            cursor = await conn.execute(_sql.FINISHED_RUNS)
            doomed = _sql.doomed_runs(await cursor.fetchall(), now, older_than_days, keep_last)
            await _delete(conn, doomed)
        return len(doomed)

    async def vacuum(self) -> None:
        """Reclaim the space of deleted runs and refresh planner statistics."""
        async with self._connection() as conn:
            for table in _sql.RUN_TABLES:
                await conn.execute(f"VACUUM (ANALYZE) {table}")

    async def close(self) -> None:
        """Close the pooled connections (a later call opens new ones)."""
        await self._close_idle()
        self._slots = None


async def _holds(conn: _Connection, run_id: str, event: StreamEvent) -> bool:
    """True when ``event`` (its seq, type and time) is already stored."""
    cursor = await conn.execute(
        "SELECT event_type, ts FROM events WHERE run_id = %s AND seq = %s", (run_id, event.seq)
    )
    row = await cursor.fetchone()
    return row is not None and row[0] == str(event.event_type) and float(row[1]) == event.timestamp


async def _schema_version(conn: _Connection) -> int:
    cursor = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = await cursor.fetchone()
    if not row or not row[0]:
        return 0
    cursor = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


_DELETE_RUNS = tuple(f"DELETE FROM {table} WHERE run_id = ANY(%s)" for table in _sql.RUN_TABLES)


async def _delete(conn: _Connection, run_ids: list[str]) -> int:
    """Delete runs inside the caller's transaction; how many ``runs`` rows there were."""
    deleted = 0
    for statement in _DELETE_RUNS:
        deleted = (await conn.execute(statement, (run_ids,))).rowcount
    return deleted
