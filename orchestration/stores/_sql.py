"""What the SQL stores share: queries, row encoding, batch checks, the summary projection,
and the store methods that are one shared query each (:class:`SQLStoreMixin`).

SQLite and Postgres keep the same four tables (``runs``, ``events``, ``snapshots``,
``leases``) plus ``schema_version``; only column types differ, so each store owns its DDL
(its list of migrations) and everything else lives here.  Queries are written with ``?``
placeholders; :func:`postgres_sql` turns them into psycopg's ``%s``.

``runs`` is a projection of ``events``: every ``append`` folds its batch with
:meth:`RunSummary.apply` and writes the row in the same transaction as the events, so a
listing never disagrees with the log.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from enum import IntEnum, StrEnum
from typing import Any

import msgspec

from ..errors import OrchestrationError
from ..events import StreamEvent
from ..models import TaskStatus
from .base import INBOX_SUFFIX, RunSummary, check_batch, check_fence

__all__ = [
    "ACQUIRE_LEASE",
    "CANCEL_REQUESTED",
    "DELETE_RUN",
    "FINISHED_RUNS",
    "INSERT_SNAPSHOT",
    "LIST_RUNS",
    "LIST_RUNS_BY_STATUS",
    "RELEASE_LEASE",
    "RENEW_LEASE",
    "REQUEST_CANCEL",
    "RUN_TABLES",
    "SCHEMA_VERSION",
    "SELECT_RUN",
    "SELECT_SNAPSHOT",
    "SQLStoreMixin",
    "UPDATE_SUMMARY",
    "UPSERT_RUN",
    "check_batch",
    "check_fence",
    "clean_text",
    "decode_event",
    "decode_snapshot",
    "doomed_runs",
    "dumps",
    "event_rows",
    "fold",
    "is_strict_json",
    "pending_migrations",
    "postgres_sql",
    "summary_from_row",
    "summary_values",
]

#: The schema version this code writes; each store has migrations 1..SCHEMA_VERSION
#: (2: the shared budget ledger, :mod:`.ledger_sql`).
SCHEMA_VERSION = 2

_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

_SUMMARY_COLUMNS = (
    "run_id, status, title, task, orchestrator, created_at, updated_at, total_cost, last_seq, metadata"
)
_TERMINAL = ", ".join(f"'{status}'" for status in TaskStatus if status.is_terminal)

#: Creates the run's row if needed and returns it; the upsert also locks the row until
#: the transaction ends (Postgres), so two appends to one run are serialised.
UPSERT_RUN = (
    "INSERT INTO runs (run_id, status) VALUES (?, 'pending') "
    "ON CONFLICT (run_id) DO UPDATE SET run_id = excluded.run_id "
    f"RETURNING {_SUMMARY_COLUMNS}"
)
UPDATE_SUMMARY = (
    "UPDATE runs SET status = ?, title = ?, task = ?, orchestrator = ?, created_at = ?, "
    "updated_at = ?, total_cost = ?, last_seq = ?, metadata = ? WHERE run_id = ?"
)
SELECT_RUN = f"SELECT {_SUMMARY_COLUMNS} FROM runs WHERE run_id = ?"
#: Listings leave out the answer inboxes of graph runs (``<run_id>~answers``, engine/answers.py).
_LISTED = (  # a suffix compare, not LIKE: '%' is psycopg's placeholder
    f"substr(run_id, length(run_id) - {len(INBOX_SUFFIX) - 1}) <> '{INBOX_SUFFIX}'"
)
LIST_RUNS = (
    f"SELECT {_SUMMARY_COLUMNS} FROM runs WHERE {_LISTED} ORDER BY created_at DESC, run_id DESC LIMIT ?"
)
LIST_RUNS_BY_STATUS = (
    f"SELECT {_SUMMARY_COLUMNS} FROM runs WHERE status = ? AND {_LISTED} "
    "ORDER BY created_at DESC, run_id DESC LIMIT ?"
)
FINISHED_RUNS = (
    f"SELECT run_id, updated_at FROM runs WHERE status IN ({_TERMINAL}) ORDER BY created_at DESC, run_id DESC"
)
#: Every table holding a run's rows, children first (``runs`` last), the order deletes go in.
RUN_TABLES = ("events", "snapshots", "leases", "runs")
#: Run in order; the last row count says whether the run existed.
DELETE_RUN = tuple(f"DELETE FROM {table} WHERE run_id = ?" for table in RUN_TABLES)
SELECT_SNAPSHOT = "SELECT seq, state FROM snapshots WHERE run_id = ?"
INSERT_SNAPSHOT = (
    "INSERT INTO snapshots (run_id, seq, state) VALUES (?, ?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, state = excluded.state"
)
#: Parameters: run_id, owner, expires_at, now.  Returns a row only when the lease is ours.
ACQUIRE_LEASE = (
    "INSERT INTO leases (run_id, owner, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
    "WHERE leases.owner = excluded.owner OR leases.expires_at <= ? "
    "RETURNING owner"
)
RELEASE_LEASE = "DELETE FROM leases WHERE run_id = ? AND owner = ?"
#: Parameters: expires_at, run_id, owner.  Renews only a lease ``owner`` still holds.
RENEW_LEASE = "UPDATE leases SET expires_at = ? WHERE run_id = ? AND owner = ?"
#: Parameters: run_id.  Whoever holds the row, expired or not (a fence check).
LEASE_OWNER = "SELECT owner FROM leases WHERE run_id = ?"
#: Parameters: run_id, now.
LEASE_HOLDER = "SELECT owner FROM leases WHERE run_id = ? AND expires_at > ?"
#: Parameters: owner, expires_at, run_id, holder.  A compare-and-swap on the holder.
TAKE_OVER_LEASE = "UPDATE leases SET owner = ?, expires_at = ? WHERE run_id = ? AND owner = ?"
REQUEST_CANCEL = "UPDATE runs SET cancel_requested = TRUE WHERE run_id = ?"
CANCEL_REQUESTED = "SELECT cancel_requested FROM runs WHERE run_id = ?"
CLEAR_CANCEL = "UPDATE runs SET cancel_requested = FALSE WHERE run_id = ?"


def postgres_sql(sql: str) -> str:
    """``sql`` with psycopg placeholders (the shared queries contain no literal ``?``/``%``)."""
    return sql.replace("?", "%s")


def pending_migrations(
    where: str, current: int, migrations: Mapping[int, Sequence[str]]
) -> list[tuple[int, Sequence[str]]]:
    """The migrations to apply, in order, to a database at schema version ``current``.

    Raises when the database was written by a newer version of the framework.
    """
    if current > SCHEMA_VERSION:
        raise OrchestrationError(
            f"{where} has schema version {current}, newer than this version of "
            f"multi-agent-orchestration understands ({SCHEMA_VERSION}); upgrade the package"
        )
    return [(version, migrations[version]) for version in range(current + 1, SCHEMA_VERSION + 1)]


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is; values JSON cannot hold become strings.

    Text with lone surrogates (which decoded model output can contain) cannot be encoded
    as UTF-8 by the database drivers, so it is written with ASCII escapes instead.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    if not text.isascii() and _SURROGATE.search(text):
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)
    return text


class _Body(msgspec.Struct, gc=False):
    """The JSON a SQL store writes for an event (the fields of ``StreamEvent.to_dict``)."""

    event_type: str
    run_id: str
    seq: int
    timestamp: float
    agent_id: Any
    progress: float
    data: Any


_ENCODER = msgspec.json.Encoder()
_ATOMS = frozenset({str, int, bool, type(None)})
#: Struct class -> indices of the fields whose declared type may hold a float or any value.
_CHECKED_FIELDS: dict[type, tuple[int, ...]] = {}
_SAFE_TYPES = (
    msgspec.inspect.StrType,
    msgspec.inspect.IntType,
    msgspec.inspect.BoolType,
    msgspec.inspect.NoneType,
    msgspec.inspect.LiteralType,
    msgspec.inspect.EnumType,
)


def event_rows(run_id: str, events: Iterable[StreamEvent]) -> Iterator[tuple[str, int, str, float, str]]:
    """``(run_id, seq, event_type, timestamp, body)`` per event: the rows of ``events``.

    ``body`` is ``dumps(event.to_dict())``, written several times faster: events made of
    plain JSON (str keys; str, int, bool, None, finite floats, lists, tuples, dicts, str
    and int enums; Structs such as graph events and their nodes, whose fields msgspec
    writes as ``to_builtins`` does) are written by msgspec, which gives the same JSON for
    them.  Anything else (NaN and infinities, which msgspec would write as null, bytes, a
    user's objects, lone surrogates) takes the :func:`dumps` path.  A Struct's fields
    declared as str, int, bool or a literal are taken as declared (not scanned for NaN).
    A generator, so a store can encode rows as it inserts them.
    """
    encode = _ENCODER.encode
    checked_fields = _CHECKED_FIELDS
    for event in events:
        event_type, event_run, seq, timestamp, data, agent_id, progress = event
        if type(data) is dict:
            plain = _plain(data)
        else:
            checked = checked_fields.get(type(data))
            if checked is None:
                plain = isinstance(data, msgspec.Struct) and _plain_struct(data)
            elif checked:
                plain = _plain_values(msgspec.structs.astuple(data), checked)  # type: ignore[arg-type]
            else:
                plain = True
        body = None
        type_text = str(event_type)  # msgspec writes a str faster than it looks up an enum's value
        if (
            plain
            and type(seq) is int
            and type(timestamp) is float
            and timestamp - timestamp == 0.0
            and type(progress) is float
            and progress - progress == 0.0
            and (agent_id is None or type(agent_id) is str)
            and type(event_run) is str
        ):
            try:
                body = encode(_Body(type_text, event_run, seq, timestamp, agent_id, progress, data)).decode()
            except (TypeError, UnicodeEncodeError):  # a user's object; a lone surrogate
                body = None
        yield run_id, seq, type_text, timestamp, body or dumps(event.to_dict())


def _plain(value: Any) -> bool:
    """True when msgspec and :func:`dumps` write ``value`` alike (see :func:`event_rows`)."""
    kind = type(value)
    if kind in _ATOMS:
        return True
    if kind is float:
        return bool(value - value == 0.0)  # False for NaN and infinities
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (type(item) not in _ATOMS and not _plain(item)):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:  # noqa: SIM110  # a loop, not all(genexpr): no frame per item
            if type(item) not in _ATOMS and not _plain(item):
                return False
        return True
    checked = _CHECKED_FIELDS.get(kind)
    if checked is not None:  # a Struct seen before (the nodes and edges of a graph)
        return not checked or _plain_values(msgspec.structs.astuple(value), checked)
    if isinstance(value, msgspec.Struct):
        return _plain_struct(value)
    return isinstance(value, StrEnum | IntEnum)  # both write the value


def _plain_struct(struct: msgspec.Struct) -> bool:
    checked = _CHECKED_FIELDS.get(type(struct))
    if checked is None:
        checked = _CHECKED_FIELDS[type(struct)] = _fields_to_check(type(struct))
    return _plain_values(msgspec.structs.astuple(struct), checked)


def _plain_values(values: tuple[Any, ...], checked: tuple[int, ...]) -> bool:
    for index in checked:
        item = values[index]
        kind = type(item)
        if kind is float:  # the common case of a field that is checked: inline, no call
            if item - item != 0.0:
                return False
        elif kind not in _ATOMS and not _plain(item):
            return False
    return True


def _fields_to_check(cls: type) -> tuple[int, ...]:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return tuple(index for index, field in enumerate(info.fields) if not _safe(field.type))


def _safe(info: msgspec.inspect.Type) -> bool:
    if isinstance(info, msgspec.inspect.UnionType):
        return all(_safe(member) for member in info.types)
    if isinstance(info, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
        return _safe(info.item_type)
    return isinstance(info, _SAFE_TYPES)


def clean_text(text: str) -> str:
    """``text`` storable in a database text column (NUL and lone surrogates masked)."""
    return _UNSTORABLE.sub("\ufffd", text)


def is_strict_json(text: str) -> bool:
    """False when ``text`` holds something Postgres ``jsonb`` rejects (NUL, lone surrogates, NaN)."""
    if "\\u0000" in text or "\\ud" in text:
        return False
    if "NaN" in text or "Infinity" in text:  # cheap pre-check; strings may contain the words
        try:
            json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            return False
    return True


def _reject_constant(name: str) -> float:
    raise ValueError(name)


def fold(summary: RunSummary, events: Iterable[StreamEvent]) -> RunSummary:
    """The summary after ``events`` (see :meth:`RunSummary.fold`)."""
    return summary.fold(events if isinstance(events, Sequence) else list(events))


def decode_event(body: str | bytes, run_id: str) -> StreamEvent:
    """A stored event, validated (persisted JSON is an edge)."""
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return StreamEvent.from_dict(data)
    except (ValueError, TypeError, KeyError) as error:
        raise OrchestrationError(f"run {run_id}: a stored event is malformed ({error})") from error


def decode_snapshot(run_id: str, seq: int, state: str | bytes) -> tuple[int, dict[str, Any]]:
    """A stored snapshot ``(seq, state)``, validated."""
    try:
        data = json.loads(state)
    except ValueError as error:
        raise OrchestrationError(f"run {run_id}: the stored snapshot is malformed ({error})") from error
    if not isinstance(data, dict):
        raise OrchestrationError(f"run {run_id}: the stored snapshot is not a JSON object")
    return int(seq), data


def summary_from_row(row: Sequence[Any]) -> RunSummary:
    """A :class:`RunSummary` from a row of the summary columns."""
    run_id = str(row[0])
    try:
        status = TaskStatus(row[1])
        metadata = json.loads(row[9]) if row[9] else {}
    except ValueError as error:
        raise OrchestrationError(f"run {run_id}: the stored summary is malformed ({error})") from error
    return RunSummary(
        run_id=run_id,
        status=status,
        title=str(row[2]),
        task=str(row[3]),
        orchestrator=str(row[4]),
        created_at=float(row[5]),
        updated_at=float(row[6]),
        total_cost=_finite(row[7]),
        last_seq=int(row[8]),
        metadata=metadata if isinstance(metadata, Mapping) else {},
    )


def _finite(value: Any) -> float:
    """A cost column as a number (SQLite stores NaN as NULL)."""
    number = 0.0 if value is None else float(value)
    return number if math.isfinite(number) else 0.0


def summary_values(summary: RunSummary) -> tuple[Any, ...]:
    """Parameters of :data:`UPDATE_SUMMARY` for ``summary``."""
    return (
        str(summary.status),
        clean_text(summary.title),
        clean_text(summary.task),
        clean_text(summary.orchestrator),
        summary.created_at,
        summary.updated_at,
        summary.total_cost,
        summary.last_seq,
        dumps(dict(summary.metadata)),
        summary.run_id,
    )


def doomed_runs(
    finished: Sequence[tuple[str, float]],
    now: float,
    older_than_days: float | None,
    keep_last: int | None,
) -> list[str]:
    """Which finished runs (``(run_id, updated_at)``, newest first) retention deletes."""
    doomed: dict[str, None] = {}
    if older_than_days is not None:
        cutoff = now - older_than_days * 86400
        doomed.update((run_id, None) for run_id, updated_at in finished if updated_at < cutoff)
    if keep_last is not None:
        doomed.update((run_id, None) for run_id, _ in finished[max(0, keep_last) :])
    return list(doomed)


class SQLStoreMixin:
    """The :class:`~.base.RunStore` methods that are one shared query each.

    A store supplies :meth:`_fetch` and :meth:`_execute`, which take the shared queries
    as written here (``?`` placeholders).
    """

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """The rows ``sql`` returns."""
        raise NotImplementedError

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        """Run ``sql``; how many rows it changed."""
        raise NotImplementedError

    async def _lease_now(self) -> float:
        """The time leases are measured by (seconds since the epoch)."""
        raise NotImplementedError

    async def get_run(self, run_id: str) -> RunSummary | None:
        """The run's summary, or None."""
        rows = await self._fetch(SELECT_RUN, (run_id,))
        return summary_from_row(rows[0]) if rows else None

    async def list_runs(self, *, status: TaskStatus | None = None, limit: int = 100) -> list[RunSummary]:
        """Runs, newest first, optionally only those with ``status``."""
        if status is None:
            rows = await self._fetch(LIST_RUNS, (max(0, limit),))
        else:
            rows = await self._fetch(LIST_RUNS_BY_STATUS, (str(status), max(0, limit)))
        return [summary_from_row(row) for row in rows]

    async def release_lease(self, run_id: str, owner: str) -> None:
        """Give the lease up (no-op unless ``owner`` holds it)."""
        await self._execute(RELEASE_LEASE, (run_id, owner))

    async def renew_lease(self, run_id: str, owner: str, ttl_seconds: float) -> bool:
        """Move ``owner``'s lease on; False (and no lease taken) once it went to another owner."""
        expires = await self._lease_now() + ttl_seconds
        return await self._execute(RENEW_LEASE, (expires, run_id, owner)) > 0

    async def lease_holder(self, run_id: str) -> str | None:
        """Who holds an unexpired lease on ``run_id`` (None: nobody)."""
        rows = await self._fetch(LEASE_HOLDER, (run_id, await self._lease_now()))
        return str(rows[0][0]) if rows else None

    async def take_over_lease(self, run_id: str, holder: str, owner: str, ttl_seconds: float) -> bool:
        """Give ``holder``'s lease to ``owner``, only if ``holder`` still has it."""
        expires = await self._lease_now() + ttl_seconds
        return await self._execute(TAKE_OVER_LEASE, (owner, expires, run_id, holder)) > 0

    async def request_cancel(self, run_id: str) -> bool:
        """Flag the run for cancellation (any process may); True if the run exists."""
        return await self._execute(REQUEST_CANCEL, (run_id,)) > 0

    async def cancel_requested(self, run_id: str) -> bool:
        """True once cancellation was requested for the run."""
        rows = await self._fetch(CANCEL_REQUESTED, (run_id,))
        return bool(rows and rows[0][0])

    async def clear_cancel(self, run_id: str) -> None:
        """Withdraw a cancellation request (an explicit resume does)."""
        await self._execute(CLEAR_CANCEL, (run_id,))
