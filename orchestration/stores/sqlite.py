"""The embedded default store: one SQLite file, safe for several processes on one machine.

Every blocking ``sqlite3`` call runs on one dedicated thread per store (a single-thread
executor), so the event loop never waits on disk and the store's own writes are
serialised.  Write transactions start with ``BEGIN IMMEDIATE``: they take the database's
write lock up front (waiting up to ``busy_timeout`` for other processes) instead of
failing halfway on a lock upgrade.

Durability: WAL journal with ``synchronous=NORMAL`` by default.  A transaction is in the
WAL file when :meth:`SQLiteStore.append` returns, so it survives the process being killed
(SIGKILL, OOM, a crash), which is what resume needs; only a power cut or kernel panic can
lose the last few transactions before the next checkpoint, and never corrupts the file.
Commits then cost no ``fsync``.  Pass ``synchronous="FULL"`` to fsync the WAL on every
commit and survive power loss as well, at a few hundred microseconds per batch.

Damage is refused, never papered over (:mod:`._sqlite_files`): when the store first opens
its file it checks SQLite's header, the write-ahead log's frames and ``PRAGMA
quick_check``, and raises :class:`~orchestration.errors.StoreError` naming the file for a
damaged file, a file that is not a SQLite database or is another application's, or a
0-byte file with a ``-wal`` next to it.  A 0-byte file alone is a new, empty store (an
empty file holds nothing that could be lost).  ``check_integrity=False`` skips the two
checks that read the whole file (the WAL and ``quick_check``) for very large stores.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..errors import ConfigError, SequenceConflictError, StoreError
from ..events import StreamEvent
from . import _sql, ledger_sql
from ._sqlite_files import check_files, check_open
from .base import RunSummary

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            task TEXT NOT NULL DEFAULT '',
            orchestrator TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL DEFAULT 0,
            total_cost REAL NOT NULL DEFAULT 0,
            last_seq INTEGER NOT NULL DEFAULT 0,
            metadata TEXT NOT NULL DEFAULT '{}',
            cancel_requested INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX runs_by_created ON runs (created_at DESC, run_id DESC)",
        "CREATE INDEX runs_by_status ON runs (status, created_at DESC)",
        """CREATE TABLE events (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            ts REAL NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE snapshots (
            run_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            state TEXT NOT NULL
        )""",
        """CREATE TABLE leases (
            run_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at REAL NOT NULL
        )""",
    ),
    2: ledger_sql.MIGRATION,
}

#: Rows per INSERT statement, largest first: a batch goes in as statements of 64 rows, then
#: 16, 4 and 1 for the rest.  One statement per row costs about a fifth more per event
#: (binding, stepping and resetting a statement per row); the four statements are
#: prepared once per connection (the sqlite3 module's statement cache keeps them).
_INSERT_SIZES = (64, 16, 4, 1)
_INSERT_EVENTS = {
    size: "INSERT INTO events (run_id, seq, event_type, ts, body) VALUES "
    + ", ".join(["(?, ?, ?, ?, ?)"] * size)
    for size in _INSERT_SIZES
}
_ROW_WIDTH = 5
_SELECT_EVENTS = "SELECT body FROM events WHERE run_id = ? AND seq > ? ORDER BY seq"
#: What tells whether a summary kept from this store's last append is still the stored one.
_RUN_STAMP = "SELECT last_seq, created_at, updated_at FROM runs WHERE run_id = ?"
_INSERT_RUN = "INSERT INTO runs (run_id, status) VALUES (?, 'pending')"
#: Most appends only move these two columns (no index on the runs table is touched).
_UPDATE_STAMP = "UPDATE runs SET updated_at = ?, last_seq = ? WHERE run_id = ?"
#: How many runs' summaries a store keeps between appends (the runs it wrote last).
_KEPT_SUMMARIES = 256


class SQLiteStore(_sql.SQLStoreMixin):
    """Runs in a SQLite file (default ``.orchestration/runs.db``, created on first use).

    Implements :class:`~orchestration.stores.RunStore`.  Several processes on one machine
    may share the file; nothing is opened until the first call.

    Args:
        path: the database file (``":memory:"`` for a private in-memory database).
        clock: seconds since the epoch, for leases and retention (injectable for tests).
        synchronous: ``"NORMAL"`` (the default: durable across process crashes) or
            ``"FULL"`` (also across power loss); see the module docstring.
        busy_timeout: seconds to wait for another process's write lock.
        check_integrity: check the WAL and run ``PRAGMA quick_check`` on open (reads the
            whole file once per open; the header checks always run).
    """

    #: Events survive the process: the engine waits for them at durability points.
    durable = True

    def __init__(
        self,
        path: str | Path = ".orchestration/runs.db",
        *,
        clock: Callable[[], float] = time.time,
        synchronous: Literal["NORMAL", "FULL", "EXTRA"] = "NORMAL",
        busy_timeout: float = 30.0,
        check_integrity: bool = True,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ConfigError(f"synchronous must be 'NORMAL', 'FULL' or 'EXTRA', not {synchronous!r}")
        if busy_timeout < 0:
            raise ConfigError(f"busy_timeout must be >= 0 seconds, not {busy_timeout!r}")
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).absolute())
        self._clock = clock
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._check_integrity = check_integrity
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # used only on the executor's thread
        #: Run id -> its summary as this store's last append wrote it (the store's thread only).
        self._summaries: dict[str, RunSummary] = {}
        #: Run and tenant budgets shared by every process using the file (:mod:`.ledger`).
        self.ledger = ledger_sql.SQLiteLedger(self)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- plumbing -------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` on the store's thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orchestration-sqlite")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn, args)

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return await self._run(_fetchall, sql, tuple(params))

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        return await self._run(_rowcount, sql, tuple(params))

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            if self._conn is None:
                self._conn = self._connect()
            return fn(self._conn, *args)
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error

    def _connect(self) -> sqlite3.Connection:
        on_disk = self.path != ":memory:"
        if on_disk:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            check_files(self.path, wal=self._check_integrity)  # before SQLite may replay or drop the WAL
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            if on_disk:  # before anything writes: switching to WAL rewrites the header
                check_open(conn, self.path, quick_check=self._check_integrity)
            self._retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchall())
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _retry_busy(self, fn: Callable[[], object]) -> None:
        """Switching to WAL needs a moment's exclusive access when processes open a new file at once."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                fn()
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        if _schema_version(conn) == _sql.SCHEMA_VERSION:
            return
        with _transaction(conn):
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            current = _schema_version(conn)
            for version, statements in _sql.pending_migrations(self.path, current, _MIGRATIONS):
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, time.time()))

    # -- RunStore -------------------------------------------------------------------

    async def append(self, run_id: str, events: Sequence[StreamEvent], *, fence: str | None = None) -> None:
        """Append ``events`` in one transaction; committed (in the WAL) when this returns.

        Raises :class:`OrchestrationError`, writing nothing, unless the batch continues
        the run's log exactly (``seq`` = last stored + 1, no gaps, same ``run_id``).
        """
        if events:
            await self._run(_append, run_id, list(events), fence, self._summaries)

    async def events(self, run_id: str, after_seq: int = 0) -> list[StreamEvent]:
        """The run's events with ``seq > after_seq``, in order."""
        return await self._run(_events, run_id, after_seq)

    async def delete_run(self, run_id: str) -> bool:
        """Delete the run, its events, snapshot, lease and cancel flag; True if it existed."""
        return await self._run(_delete, [run_id]) > 0

    async def save_snapshot(self, run_id: str, seq: int, state: Mapping[str, Any]) -> None:
        """Keep ``state`` (JSON-ready) as the run's latest snapshot, as of ``seq``."""
        await self._execute(_sql.INSERT_SNAPSHOT, (run_id, int(seq), _sql.dumps(dict(state))))

    async def load_snapshot(self, run_id: str) -> tuple[int, dict[str, Any]] | None:
        """The latest snapshot ``(seq, state)``, or None."""
        rows = await self._fetch(_sql.SELECT_SNAPSHOT, (run_id,))
        return _sql.decode_snapshot(run_id, rows[0][0], rows[0][1]) if rows else None

    async def _lease_now(self) -> float:
        return self._clock()

    async def acquire_lease(self, run_id: str, owner: str, ttl_seconds: float) -> bool:
        """Take or renew the lease, atomically, unless another owner holds an unexpired one."""
        now = self._clock()
        rows = await self._fetch(_sql.ACQUIRE_LEASE, (run_id, owner, now + ttl_seconds, now))
        return bool(rows)

    async def prune(self, *, older_than_days: float | None = None, keep_last: int | None = None) -> int:
        """Delete finished runs older than N days and/or beyond the newest N; returns how many."""
        return await self._run(_prune, self._clock(), older_than_days, keep_last)

    async def vacuum(self) -> None:
        """Give the space of deleted runs back to the file system (run after :meth:`prune`)."""
        await self._run(_vacuum)

    async def close(self) -> None:
        """Close the connection and stop the store's thread (a later call reopens them)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        finally:
            executor.shutdown(wait=False)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


# -- work done on the store's thread ----------------------------------------------------


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction holding the write lock from the start."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
    if exists.fetchone() is None:
        return 0
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(row[0])


def _append(
    conn: sqlite3.Connection,
    run_id: str,
    events: list[StreamEvent],
    fence: str | None,
    summaries: dict[str, RunSummary],
) -> None:
    # Rows are encoded as the insert consumes them: a flush of a 100,000-node run's events
    # never holds all their JSON at once (encoding costs about a third of an insert).
    rows = _sql.event_rows(run_id, events)
    kept = summaries.pop(run_id, None)  # put back only once this append has committed
    with _transaction(conn):
        if fence is not None:  # under the write lock: no takeover can slip in before the insert
            holder = conn.execute(_sql.LEASE_OWNER, (run_id,)).fetchone()
            _sql.check_fence(run_id, holder[0] if holder else None, fence)
        summary = _stored_summary(conn, run_id, kept)
        _sql.check_batch(run_id, summary.last_seq, events)
        try:
            _insert_events(conn, rows)
        except sqlite3.IntegrityError as error:  # unreachable while every writer checks first
            raise SequenceConflictError(f"run {run_id}: duplicate event seq ({error})") from error
        after = _sql.fold(summary, events)
        if _only_stamp_moved(summary, after):
            conn.execute(_UPDATE_STAMP, (after.updated_at, after.last_seq, run_id))
        else:
            conn.execute(_sql.UPDATE_SUMMARY, _sql.summary_values(after))
        ledger_sql.settle_sqlite(conn, events)  # calls that ended settle with the events saying so
    if len(summaries) >= _KEPT_SUMMARIES:
        del summaries[next(iter(summaries))]  # the run written longest ago
    summaries[run_id] = after


def _stored_summary(conn: sqlite3.Connection, run_id: str, kept: RunSummary | None) -> RunSummary:
    """The run's stored summary (its row made if the run is new), inside the write transaction.

    ``kept`` (what this store's last append of the run wrote) is used when the row still
    says what that append wrote: another process's append moves ``last_seq`` and
    ``updated_at``, a delete and a new run under the same id ``created_at`` too.
    """
    stamp = conn.execute(_RUN_STAMP, (run_id,)).fetchone()
    if stamp is None:
        conn.execute(_INSERT_RUN, (run_id,))
    elif kept is not None and (kept.last_seq, kept.created_at, kept.updated_at) == stamp:
        return kept
    return _sql.summary_from_row(conn.execute(_sql.SELECT_RUN, (run_id,)).fetchone())


def _only_stamp_moved(before: RunSummary, after: RunSummary) -> bool:
    """True when the events moved only ``updated_at`` and ``last_seq`` (most batches)."""
    return (
        after.status is before.status
        and after.total_cost == before.total_cost
        and after.created_at == before.created_at
        and after.title == before.title
        and after.task == before.task
        and after.orchestrator == before.orchestrator
        and after.metadata == before.metadata
    )


def _insert_events(conn: sqlite3.Connection, rows: Iterator[tuple[str, int, str, float, str]]) -> None:
    """Insert ``rows``, 64 to a statement while they last, then in statements of 16, 4, 1."""
    cursor = conn.cursor()
    execute = cursor.execute
    largest = _INSERT_SIZES[0]
    full = largest * _ROW_WIDTH
    insert_largest = _INSERT_EVENTS[largest]
    params: list[Any] = []
    extend = params.extend
    for row in rows:  # encoded as consumed: at most 64 rows' JSON is held at once
        extend(row)
        if len(params) == full:
            execute(insert_largest, params)
            params.clear()
    start = 0
    left = len(params) // _ROW_WIDTH
    for size in _INSERT_SIZES[1:]:
        while left >= size:
            end = start + size * _ROW_WIDTH
            execute(_INSERT_EVENTS[size], params[start:end])
            start, left = end, left - size


def _events(conn: sqlite3.Connection, run_id: str, after_seq: int) -> list[StreamEvent]:
    rows = conn.execute(_SELECT_EVENTS, (run_id, after_seq)).fetchall()
    return [_sql.decode_event(body, run_id) for (body,) in rows]


def _fetchall(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _rowcount(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> int:
    return conn.execute(sql, params).rowcount


def _delete(conn: sqlite3.Connection, run_ids: list[str]) -> int:
    """Delete runs in one transaction; how many ``runs`` rows there were."""
    with _transaction(conn):
        return _delete_in_transaction(conn, run_ids)


def _delete_in_transaction(conn: sqlite3.Connection, run_ids: list[str]) -> int:
    params = [(run_id,) for run_id in run_ids]
    deleted = 0
    for statement in _sql.DELETE_RUN:
        deleted = conn.executemany(statement, params).rowcount
    return deleted


def _prune(conn: sqlite3.Connection, now: float, older_than_days: float | None, keep_last: int | None) -> int:
    with _transaction(conn):
        finished = conn.execute(_sql.FINISHED_RUNS).fetchall()
        doomed = _sql.doomed_runs(finished, now, older_than_days, keep_last)
        _delete_in_transaction(conn, doomed)
    return len(doomed)


def _vacuum(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    conn.execute("VACUUM")
