"""The ledger of the SQL stores (see :mod:`.ledger`): tables, transactions, and their two drivers.

Three tables, created by schema migration 2 of both SQL stores: ``ledger_accounts``
(one row of numbers per account), ``ledger_holds`` (one row per hold and account, kept as
a tombstone for a day once reaped) and ``ledger_runs`` (each run's latest run metrics,
per label account; the account row keeps their sums).  A call that fits reads and writes
a few rows whatever the number of runs and holds; only a call that does not fit looks
at the holds in flight, to reap the dead ones.

Each transaction is written once, as a generator that yields :class:`Query` objects and
receives their rows, and is run by :func:`drive_sqlite` (on the SQLite store's thread,
inside ``BEGIN IMMEDIATE``: the database's write lock serialises every process) or
:func:`drive_postgres` (inside a transaction that locks the accounts' rows ``FOR UPDATE``,
in account order, so transactions on the same accounts take turns and never deadlock).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..events import StreamEvent
from ._sql import postgres_sql
from .ledger import (
    _TOMBSTONE_SECONDS,
    ACCOUNT_COLUMNS,
    LEASE_LOST,
    WAIT,
    AccountTotals,
    Charge,
    Decide,
    Hold,
    HoldRow,
    RunMetrics,
    Settlement,
    hold_is_dead,
    lease_lost,
    reaped,
    settled,
    settlements_in,
    with_hold,
    with_run_metrics,
    with_spend,
    without_run,
)

__all__ = [
    "MIGRATION",
    "PostgresLedger",
    "Query",
    "SQLiteLedger",
    "drive_postgres",
    "drive_sqlite",
    "settle_postgres",
    "settle_sqlite",
]

T = TypeVar("T")

_NUMBERS = ACCOUNT_COLUMNS[1:]

#: Schema migration 2 of both SQL stores (the types mean the same to SQLite and Postgres).
MIGRATION: tuple[str, ...] = (
    "CREATE TABLE ledger_accounts (account TEXT PRIMARY KEY, "
    + ", ".join(
        f"{name} {'BIGINT' if name in ('calls', 'holds') else 'DOUBLE PRECISION'} NOT NULL DEFAULT 0"
        for name in _NUMBERS
    )
    + ")",
    """CREATE TABLE ledger_holds (
        hold_id TEXT NOT NULL,
        account TEXT NOT NULL,
        run_id TEXT NOT NULL,
        owner TEXT NOT NULL,
        leased INTEGER NOT NULL DEFAULT 0,
        expires_at DOUBLE PRECISION NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        input_tokens DOUBLE PRECISION NOT NULL,
        output_tokens DOUBLE PRECISION NOT NULL,
        reaped_at DOUBLE PRECISION,
        PRIMARY KEY (hold_id, account)
    )""",
    "CREATE INDEX ledger_holds_by_account ON ledger_holds (account, reaped_at)",
    """CREATE TABLE ledger_runs (
        account TEXT NOT NULL,
        run_id TEXT NOT NULL,
        iterations DOUBLE PRECISION NOT NULL DEFAULT 0,
        agents_failed DOUBLE PRECISION NOT NULL DEFAULT 0,
        wall_time_s DOUBLE PRECISION NOT NULL DEFAULT 0,
        PRIMARY KEY (account, run_id)
    )""",
)

_IN = "{in}"  # where a query's list goes: IN (?, ?...) on SQLite, = ANY(%s) on Postgres
_HOLD_COLUMNS = (
    "hold_id, account, run_id, owner, leased, expires_at, cost_usd, input_tokens, output_tokens, reaped_at"
)
_INSERT_ACCOUNT = "INSERT INTO ledger_accounts (account) VALUES (?) ON CONFLICT (account) DO NOTHING"
_SELECT_ACCOUNTS = (
    f"SELECT {', '.join(ACCOUNT_COLUMNS)} FROM ledger_accounts WHERE account {_IN} ORDER BY account"
)
_UPDATE_ACCOUNT = f"UPDATE ledger_accounts SET {', '.join(f'{n} = ?' for n in _NUMBERS)} WHERE account = ?"
_SELECT_OPEN_HOLDS = f"SELECT {_HOLD_COLUMNS} FROM ledger_holds WHERE account {_IN} AND reaped_at IS NULL"
_SELECT_HOLDS = f"SELECT {_HOLD_COLUMNS} FROM ledger_holds WHERE hold_id {_IN}"
_SELECT_HOLD_ACCOUNTS = f"SELECT DISTINCT account FROM ledger_holds WHERE hold_id {_IN}"
_INSERT_HOLD = f"INSERT INTO ledger_holds ({_HOLD_COLUMNS}) VALUES ({', '.join('?' * 10)})"
_REAP_HOLD = "UPDATE ledger_holds SET reaped_at = ? WHERE hold_id = ? AND account = ?"
_DELETE_HOLDS = f"DELETE FROM ledger_holds WHERE hold_id {_IN}"
_DELETE_TOMBSTONES = f"DELETE FROM ledger_holds WHERE account {_IN} AND reaped_at < ?"
_SELECT_LEASES = f"SELECT run_id, owner, expires_at FROM leases WHERE run_id {_IN}"
_SELECT_OWN_RUNS = f"SELECT account, iterations, agents_failed, wall_time_s FROM ledger_runs WHERE account {_IN} AND run_id = ?"
_UPSERT_RUN_METRICS = (
    "INSERT INTO ledger_runs (account, run_id, iterations, agents_failed, wall_time_s) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (account, run_id) DO UPDATE SET iterations = excluded.iterations, "
    "agents_failed = excluded.agents_failed, wall_time_s = excluded.wall_time_s"
)
_RESET_ACCOUNT = (
    "UPDATE ledger_accounts SET "
    + ", ".join(f"{n} = 0" for n in _NUMBERS if not n.startswith("held") and n != "holds")
    + " WHERE account = ?"
)


@dataclass(frozen=True, slots=True)
class Query:
    """One statement of a ledger transaction.

    ``listed`` fills the statement's ``{in}`` (and comes before ``params``); ``many`` runs
    it once per parameter row; ``lock`` locks the rows read (Postgres; SQLite holds the
    database's write lock already).
    """

    sql: str
    params: Sequence[Any] = ()
    listed: Sequence[Any] | None = None
    many: Sequence[Sequence[Any]] | None = None
    lock: bool = False


Txn = Generator[Query, list[Any], T]


def drive_sqlite(conn: sqlite3.Connection, txn: Txn[T]) -> T:
    """Run ``txn`` on ``conn`` (inside the caller's transaction)."""
    rows: list[Any] | None = None
    try:
        while True:
            query = txn.send(rows)  # type: ignore[arg-type]  # the first send is None
            if query.many is not None:
                conn.executemany(query.sql, query.many)
                rows = []
                continue
            sql, params = query.sql, tuple(query.params)
            if query.listed is not None:
                sql = sql.replace(_IN, f"IN ({', '.join('?' * len(query.listed))})")
                params = (*query.listed, *params)
            rows = conn.execute(sql, params).fetchall()
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def drive_postgres(conn: Any, txn: Txn[T]) -> T:
    """Run ``txn`` on the psycopg connection ``conn`` (inside the caller's transaction)."""
    rows: list[Any] | None = None
    try:
        while True:
            query = txn.send(rows)  # type: ignore[arg-type]  # the first send is None
            sql = postgres_sql(query.sql)
            if query.many is not None:
                if query.many:
                    async with conn.cursor() as cursor:
                        await cursor.executemany(sql, query.many)
                rows = []
                continue
            params = list(query.params)
            if query.listed is not None:
                sql = sql.replace(_IN, "= ANY(%s)")
                params = [list(query.listed), *params]
            if query.lock:
                sql += " FOR UPDATE"
            cursor = await conn.execute(sql, params)
            rows = await cursor.fetchall() if cursor.description is not None else []
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


# -- the transactions -----------------------------------------------------------------------


def reserve_txn(
    hold: Hold, decide: Decide, dead: Callable[[str], bool] | None, now: float
) -> Txn[object | None]:
    """:meth:`~.ledger.Ledger.reserve` as a transaction."""
    own = yield Query(_SELECT_LEASES, listed=[hold.run_id])
    lease = (str(own[0][1]), float(own[0][2])) if own else None
    if lease_lost(hold, lease, now):
        return LEASE_LOST
    accounts = sorted(set(hold.accounts))
    yield Query(_INSERT_ACCOUNT, many=[(account,) for account in accounts])
    book = {str(row[0]): _account(row) for row in (yield Query(_SELECT_ACCOUNTS, listed=accounts, lock=True))}
    labels = [account for account in accounts if account.startswith("label:")]
    runs: dict[str, RunMetrics] = {}
    if labels:
        found = yield Query(_SELECT_OWN_RUNS, (hold.run_id,), listed=labels)
        runs = {str(r[0]): (float(r[1]), float(r[2]), float(r[3])) for r in found}

    def views() -> dict[str, AccountTotals]:
        return {account: without_run(totals, runs.get(account)) for account, totals in book.items()}

    verdict = decide(views())
    reaps: list[HoldRow] = []
    if verdict is not None:  # dead holds matter only to a call that does not fit: reap them now
        open_rows = [_hold_row(row) for row in (yield Query(_SELECT_OPEN_HOLDS, listed=accounts))]
        held_runs = sorted({row.run_id for row in open_rows if row.leased})
        leases = {
            str(r[0]): (str(r[1]), float(r[2])) for r in (yield Query(_SELECT_LEASES, listed=held_runs))
        }
        reaps = [row for row in open_rows if hold_is_dead(row, leases.get(row.run_id), now)]
        if reaps:
            _reap(book, reaps)
            verdict = decide(views())
        if verdict is WAIT and dead is not None:
            more = [row for row in open_rows if row not in reaps and dead(row.owner)]
            if more:
                _reap(book, more)
                reaps += more
                verdict = decide(views())
        if reaps:
            yield Query(_REAP_HOLD, many=[(now, row.hold_id, row.account) for row in reaps])
            yield Query(_DELETE_TOMBSTONES, (now - _TOMBSTONE_SECONDS,), listed=accounts)
    changed = {row.account for row in reaps}
    if verdict is None:
        leased = bool(hold.owner) and lease is not None and lease[0] == hold.owner and lease[1] > now
        worst = hold.worst
        yield Query(
            _INSERT_HOLD,
            many=[
                (
                    hold.hold_id,
                    account,
                    hold.run_id,
                    hold.owner,
                    int(leased),
                    now + hold.ttl_seconds,
                    worst.cost_usd,
                    worst.input_tokens,
                    worst.output_tokens,
                    None,
                )
                for account in accounts
            ],
        )
        for account in accounts:
            book[account] = with_hold(book[account], worst)
        if labels:
            metrics = (hold.iterations, hold.agents_failed, hold.wall_time_s)
            for account in labels:
                book[account] = with_run_metrics(book[account], runs.get(account), metrics)
            yield Query(_UPSERT_RUN_METRICS, many=[(account, hold.run_id, *metrics) for account in labels])
        changed.update(accounts)
    if changed:
        yield Query(_UPDATE_ACCOUNT, many=[_account_values(book[account]) for account in sorted(changed)])
    return verdict


def settle_txn(settlements: Sequence[Settlement], *, reread: bool) -> Txn[None]:
    """Apply ``settlements`` (inside the transaction appending the events that carry them).

    ``reread``: read the holds again once their accounts are locked (Postgres: a reap may
    have come in between; SQLite holds the database's write lock throughout).
    """
    ids = sorted({s.hold_id for s in settlements if s.hold_id is not None})
    first = [_hold_row(row) for row in (yield Query(_SELECT_HOLDS, listed=ids))] if ids else []
    charged = sorted({account for s in settlements if s.hold_id is None for account in s.accounts})
    accounts = sorted({row.account for row in first} | set(charged))
    if not accounts:
        return
    if charged:
        yield Query(_INSERT_ACCOUNT, many=[(account,) for account in charged])
    book = {str(row[0]): _account(row) for row in (yield Query(_SELECT_ACCOUNTS, listed=accounts, lock=True))}
    if ids and reread:
        first = [_hold_row(row) for row in (yield Query(_SELECT_HOLDS, listed=ids))]
    rows: dict[str, list[HoldRow]] = {}
    for hold_row in first:
        rows.setdefault(hold_row.hold_id, []).append(hold_row)
    for settlement in settlements:
        if settlement.hold_id is None:
            if settlement.actual is not None:
                for account in settlement.accounts:
                    book[account] = with_spend(book[account], settlement.actual)
            continue
        for hold_row in rows.pop(settlement.hold_id, ()):
            if hold_row.account in book:
                book[hold_row.account] = settled(book[hold_row.account], hold_row, settlement.actual)
    if ids:
        yield Query(_DELETE_HOLDS, listed=ids)
    yield Query(_UPDATE_ACCOUNT, many=[_account_values(book[account]) for account in sorted(book)])


def totals_txn(account: str) -> Txn[AccountTotals]:
    """One account's numbers."""
    found = yield Query(_SELECT_ACCOUNTS, listed=[account])
    return _account(found[0]) if found else AccountTotals(account)


def reset_txn(account: str) -> Txn[None]:
    """Forget what ``account`` spent; its holds in flight stay."""
    yield Query(_RESET_ACCOUNT, (account,))
    yield Query("DELETE FROM ledger_runs WHERE account = ?", (account,))
    yield Query("DELETE FROM ledger_holds WHERE account = ? AND reaped_at IS NOT NULL", (account,))


def _reap(book: dict[str, AccountTotals], rows: Sequence[HoldRow]) -> None:
    for row in rows:
        book[row.account] = reaped(book[row.account], row.worst)


def _account(row: Sequence[Any]) -> AccountTotals:
    values: dict[str, Any] = {
        name: (int(value) if name in ("calls", "holds") else float(value))
        for name, value in zip(_NUMBERS, row[1:], strict=True)
    }
    return AccountTotals(str(row[0]), **values)


def _account_values(totals: AccountTotals) -> tuple[Any, ...]:
    return (*(getattr(totals, name) for name in _NUMBERS), totals.account)


def _hold_row(row: Sequence[Any]) -> HoldRow:
    return HoldRow(
        hold_id=str(row[0]),
        account=str(row[1]),
        run_id=str(row[2]),
        owner=str(row[3]),
        leased=bool(row[4]),
        expires_at=float(row[5]),
        worst=Charge(float(row[6]), float(row[7]), float(row[8])),
        reaped_at=None if row[9] is None else float(row[9]),
    )


# -- the ledgers of the SQL stores ------------------------------------------------------------


def _in_sqlite_transaction(conn: sqlite3.Connection, txn: Txn[T]) -> T:
    conn.execute("BEGIN IMMEDIATE")  # the write lock up front, as the store's own writes take it
    try:
        result = drive_sqlite(conn, txn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


class SQLiteLedger:
    """The ledger of a :class:`~orchestration.stores.SQLiteStore` (every process on the file)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"SQLiteLedger({self._store.path!r})"

    async def reserve(
        self, hold: Hold, decide: Decide, *, dead: Callable[[str], bool] | None = None
    ) -> object | None:
        """See :meth:`~.ledger.Ledger.reserve` (``decide`` runs on the store's thread)."""
        txn = reserve_txn(hold, decide, dead, self._store._clock())
        result: object | None = await self._store._run(_in_sqlite_transaction, txn)
        return result

    async def totals(self, account: str) -> AccountTotals:
        """See :meth:`~.ledger.Ledger.totals`."""
        totals: AccountTotals = await self._store._run(drive_sqlite, totals_txn(account))
        return totals

    async def reset(self, account: str) -> None:
        """See :meth:`~.ledger.Ledger.reset`."""
        await self._store._run(_in_sqlite_transaction, reset_txn(account))


def settle_sqlite(conn: sqlite3.Connection, events: Sequence[StreamEvent]) -> None:
    """Apply the settlements ``events`` carry (called inside the append's transaction)."""
    settlements = settlements_in(events)
    if settlements:
        drive_sqlite(conn, settle_txn(settlements, reread=False))


async def settle_postgres(conn: Any, events: Sequence[StreamEvent]) -> None:
    """Apply the settlements ``events`` carry (awaited inside the append's transaction)."""
    settlements = settlements_in(events)
    if settlements:
        await drive_postgres(conn, settle_txn(settlements, reread=True))


class PostgresLedger:
    """The ledger of a :class:`~orchestration.stores.PostgresStore` (every machine on the database)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"PostgresLedger({self._store!r})"

    async def reserve(
        self, hold: Hold, decide: Decide, *, dead: Callable[[str], bool] | None = None
    ) -> object | None:
        """See :meth:`~.ledger.Ledger.reserve`."""
        async with self._store._connection() as conn, conn.transaction():
            now = await self._store._now(conn)
            return await drive_postgres(conn, reserve_txn(hold, decide, dead, now))

    async def totals(self, account: str) -> AccountTotals:
        """See :meth:`~.ledger.Ledger.totals`."""
        async with self._store._connection() as conn:
            return await drive_postgres(conn, totals_txn(account))

    async def reset(self, account: str) -> None:
        """See :meth:`~.ledger.Ledger.reset`."""
        async with self._store._connection() as conn, conn.transaction():
            await drive_postgres(conn, reset_txn(account))
