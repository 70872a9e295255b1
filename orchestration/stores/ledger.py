"""Budgets shared by every process of a store: what calls in flight hold and finished calls spent.

The ledger keeps *accounts* in the run store, so every process (and machine) sharing the
store sees the same numbers: ``run:<run_id>`` (a run's budget, whichever process makes its
calls) and ``label:<name>=<value>`` (the totals of every run carrying a label, e.g. a
tenant's, for label-scoped guardrails).

- **Reserve.** Before a model call is sent, its worst case is *held* on its accounts by
  :meth:`Ledger.reserve`, in one transaction that reaps dead holds, reads the accounts and
  asks the caller's ``decide`` whether the call fits: admitted (the hold is written), told
  to wait (:data:`WAIT`: only calls in flight stand in the way) or refused.
- **Settle.** A call settles in the same transaction as the event that records its answer
  (``cost_update``) or its failure (``call_released``): those events name their hold, and
  every store applies them to the ledger inside ``append`` (:func:`settlements_in`).  A
  settlement is therefore exactly as durable as the run's record of it, and the ledger
  can never count a call twice or lose one that the run's log holds.
- **Reap.** A hold whose holder died is settled at its worst case (the vendor may have
  billed the call).  A hold made by the process holding its run's lease dies with that
  lease (taken over by a resume, released, or expired); every hold dies at its
  ``expires_at``; while a call waits, holds of processes on this machine that are gone
  are reaped at once.  A reaped hold whose call settles after all (its holder was only
  slow) is corrected to the real cost, so the ledger ends exact whenever the answer is
  known.

:class:`MemoryLedger` is the in-process ledger of a :class:`~orchestration.stores.MemoryStore`;
the SQL stores keep theirs in tables (:mod:`.ledger_sql`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from operator import attrgetter
from typing import Any, Protocol, runtime_checkable

from ..events import EventType, StreamEvent

__all__ = [
    "HOLD_SECONDS",
    "LEASE_LOST",
    "WAIT",
    "AccountTotals",
    "Charge",
    "Decide",
    "Hold",
    "HoldRow",
    "Ledger",
    "MemoryLedger",
    "Settlement",
    "hold_is_dead",
    "label_account",
    "ledger_of",
    "run_account",
    "settlements_in",
]

#: How long a hold lives at most unless its run's lease keeps it alive (a call longer than
#: this is counted at its worst case until it settles, then corrected).
HOLD_SECONDS = 900.0

#: Tombstones of reaped holds are kept this long, for a late settlement to correct.
_TOMBSTONE_SECONDS = 86400.0


class _Verdict:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: What ``decide`` returns when only calls in flight keep the call from fitting.
WAIT = _Verdict("WAIT")
#: What :meth:`Ledger.reserve` returns, holding nothing, for a hold whose owner no longer
#: holds its run's lease (another process took the run over): the old driver makes no call.
LEASE_LOST = _Verdict("LEASE_LOST")


def run_account(run_id: str) -> str:
    """The account of one run's budget."""
    return f"run:{run_id}"


def label_account(label: str, value: str) -> str:
    """The account of every run whose ``labels[label] == value``."""
    return f"label:{label}={value}"


@dataclass(frozen=True, slots=True)
class AccountTotals:
    """One account's numbers: what its settled calls spent, what calls in flight hold.

    ``iterations``, ``agents_failed`` and ``wall_time_s`` are the latest numbers of the
    account's runs, summed; what :meth:`Ledger.reserve` shows ``decide`` leaves out the
    run that is asking (it adds its own numbers of now).
    """

    account: str
    cost_usd: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    calls: int = 0
    latency_ms: float = 0.0
    max_cost_usd: float = 0.0
    max_input_tokens: float = 0.0
    max_output_tokens: float = 0.0
    max_tokens_used: float = 0.0
    max_latency_ms: float = 0.0
    held_cost_usd: float = 0.0
    held_input_tokens: float = 0.0
    held_output_tokens: float = 0.0
    holds: int = 0
    iterations: float = 0.0
    agents_failed: float = 0.0
    wall_time_s: float = 0.0


#: The stored columns of an account, in order.
ACCOUNT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AccountTotals))

#: An account's run metrics, and a run's latest numbers of them.
RunMetrics = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Charge:
    """What one call cost (or, for a hold, may cost at most)."""

    cost_usd: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    latency_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Hold:
    """A call's reservation: its worst case, on each of ``accounts``.

    ``owner`` is the lease owner id of the process making the call ("" if none);
    ``iterations``... are the run's numbers now, recorded for its label accounts.
    """

    hold_id: str
    run_id: str
    owner: str
    accounts: tuple[str, ...]
    worst: Charge
    ttl_seconds: float = HOLD_SECONDS
    iterations: float = 0.0
    agents_failed: float = 0.0
    wall_time_s: float = 0.0


@dataclass(frozen=True, slots=True)
class HoldRow:
    """One stored hold on one account; ``reaped_at`` is set once it was settled at its worst case."""

    hold_id: str
    account: str
    run_id: str
    owner: str
    leased: bool
    expires_at: float
    worst: Charge
    reaped_at: float | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    """A call ended: ``actual`` is what it cost (None: it failed before costing anything).

    ``hold_id`` None is a charge with no hold (a call that could not reserve, such as a
    blocking one made on the event loop), added to ``accounts``.
    """

    hold_id: str | None
    actual: Charge | None
    accounts: tuple[str, ...] = ()


#: ``decide(accounts)``: None to admit the call, :data:`WAIT`, or a refusal (returned as is).
Decide = Callable[[Mapping[str, AccountTotals]], object | None]


@runtime_checkable
class Ledger(Protocol):
    """The accounts of a store (see the module docstring)."""

    async def reserve(
        self, hold: Hold, decide: Decide, *, dead: Callable[[str], bool] | None = None
    ) -> object | None:
        """Reap dead holds, then hold ``hold`` if ``decide`` admits it (None), in one transaction.

        Returns None when the hold was written, else what ``decide`` returned (nothing
        held).  When ``decide`` says :data:`WAIT`, holds whose owner ``dead(owner)`` says
        is gone are reaped and ``decide`` is asked once more.  A hold whose ``owner`` has
        lost its run's lease to another owner is not held: :data:`LEASE_LOST`.
        """
        ...

    async def totals(self, account: str) -> AccountTotals:
        """The account's numbers now (zeros for an account nobody used)."""
        ...

    async def reset(self, account: str) -> None:
        """Forget what the account spent (e.g. a tenant's new month); holds in flight stay."""
        ...


def ledger_of(store: object) -> Ledger | None:
    """The store's ledger, or None for a store without one (a user's own store)."""
    ledger = getattr(store, "ledger", None)
    return ledger if isinstance(ledger, Ledger) else None


# -- the rules every ledger applies -------------------------------------------------------


def lease_lost(hold: Hold, lease: tuple[str, float] | None, now: float) -> bool:
    """True when another owner holds ``hold``'s run's lease (``lease``: its row) now."""
    return bool(hold.owner) and lease is not None and lease[0] != hold.owner and lease[1] > now


def hold_is_dead(row: HoldRow, lease: tuple[str, float] | None, now: float) -> bool:
    """True when ``row``'s holder is known to be gone (``lease``: its run's lease row)."""
    if row.expires_at <= now:
        return True
    return row.leased and (lease is None or lease[0] != row.owner or lease[1] <= now)


def _finite(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 0.0


def with_hold(account: AccountTotals, worst: Charge) -> AccountTotals:
    """``account`` holding ``worst`` for one more call in flight."""
    return replace(
        account,
        held_cost_usd=account.held_cost_usd + worst.cost_usd,
        held_input_tokens=account.held_input_tokens + worst.input_tokens,
        held_output_tokens=account.held_output_tokens + worst.output_tokens,
        holds=account.holds + 1,
    )


def without_hold(account: AccountTotals, worst: Charge) -> AccountTotals:
    """``account`` once a hold of ``worst`` is no longer in flight."""
    holds = max(0, account.holds - 1)
    if holds == 0:  # no drift from float sums once nothing is in flight
        return replace(account, held_cost_usd=0.0, held_input_tokens=0.0, held_output_tokens=0.0, holds=0)
    return replace(
        account,
        held_cost_usd=max(0.0, account.held_cost_usd - worst.cost_usd),
        held_input_tokens=max(0.0, account.held_input_tokens - worst.input_tokens),
        held_output_tokens=max(0.0, account.held_output_tokens - worst.output_tokens),
        holds=holds,
    )


def with_spend(account: AccountTotals, charge: Charge, calls: int = 1) -> AccountTotals:
    """``account`` after a call that cost ``charge``."""
    return replace(
        account,
        cost_usd=account.cost_usd + charge.cost_usd,
        input_tokens=account.input_tokens + charge.input_tokens,
        output_tokens=account.output_tokens + charge.output_tokens,
        latency_ms=account.latency_ms + charge.latency_ms,
        calls=account.calls + calls,
        max_cost_usd=max(account.max_cost_usd, charge.cost_usd),
        max_input_tokens=max(account.max_input_tokens, charge.input_tokens),
        max_output_tokens=max(account.max_output_tokens, charge.output_tokens),
        max_tokens_used=max(account.max_tokens_used, charge.input_tokens + charge.output_tokens),
        max_latency_ms=max(account.max_latency_ms, charge.latency_ms),
    )


def with_run_metrics(account: AccountTotals, old: RunMetrics | None, new: RunMetrics) -> AccountTotals:
    """``account`` after one of its runs' latest run metrics went from ``old`` to ``new``."""
    before = old or (0.0, 0.0, 0.0)
    return replace(
        account,
        iterations=account.iterations + new[0] - before[0],
        agents_failed=account.agents_failed + new[1] - before[1],
        wall_time_s=account.wall_time_s + new[2] - before[2],
    )


def without_run(account: AccountTotals, own: RunMetrics | None) -> AccountTotals:
    """``account`` as a run sees it: its run metrics without that run's own (``own``)."""
    if own is None:
        return account
    return with_run_metrics(account, own, (0.0, 0.0, 0.0))


def reaped(account: AccountTotals, worst: Charge) -> AccountTotals:
    """``account`` after a dead hold of ``worst`` is settled at its worst case."""
    return with_spend(without_hold(account, worst), worst)


def settled(account: AccountTotals, row: HoldRow, actual: Charge | None) -> AccountTotals:
    """``account`` after the call of hold ``row`` ended (``actual`` None: it cost nothing)."""
    if row.reaped_at is None:
        account = without_hold(account, row.worst)
        return with_spend(account, actual) if actual is not None else account
    # Counted at its worst case when it was reaped: correct that to what really happened.
    worst = row.worst
    real = actual if actual is not None else Charge()
    corrected = replace(
        account,
        cost_usd=max(0.0, account.cost_usd + real.cost_usd - worst.cost_usd),
        input_tokens=max(0.0, account.input_tokens + real.input_tokens - worst.input_tokens),
        output_tokens=max(0.0, account.output_tokens + real.output_tokens - worst.output_tokens),
        calls=account.calls if actual is not None else max(0, account.calls - 1),
    )
    return with_spend(corrected, replace(real, cost_usd=0.0, input_tokens=0.0, output_tokens=0.0), calls=0)


_KIND = attrgetter("event_type")


def settlements_in(events: Iterable[StreamEvent]) -> list[Settlement]:
    """The ledger settlements a batch of events carries (``cost_update`` and
    ``call_released`` events naming a ``hold``); malformed ones are ignored."""
    found: list[Settlement] = []
    cost, released = EventType.COST_UPDATE, EventType.CALL_RELEASED
    events = events if isinstance(events, Sequence) else list(events)
    kinds = set(map(_KIND, events))  # in C: most batches (graph events) carry no settlement
    if cost not in kinds and released not in kinds:
        return found
    for event in events:
        kind = event.event_type
        if kind is not cost and kind is not released:
            continue
        data = event.data
        hold = data.get("hold") if isinstance(data, Mapping) else None
        if not isinstance(hold, Mapping):
            continue
        settlement = _settlement(hold, data, kind is cost)
        if settlement is not None:
            found.append(settlement)
    return found


def _settlement(hold: Mapping[str, Any], data: Mapping[str, Any], answered: bool) -> Settlement | None:
    hold_id = hold.get("id")
    accounts = hold.get("accounts")
    if not isinstance(hold_id, str) and not (isinstance(accounts, list) and accounts):
        return None
    actual = None
    if answered:
        usage = data.get("usage")
        usage = usage if isinstance(usage, Mapping) else {}
        actual = Charge(
            cost_usd=_number(data.get("cost")),
            input_tokens=_number(usage.get("input_tokens")),
            output_tokens=_number(usage.get("output_tokens")),
            latency_ms=_number(hold.get("latency_ms")),
        )
    if isinstance(hold_id, str):
        return Settlement(hold_id, actual)
    assert isinstance(accounts, list)
    names = tuple(str(a) for a in accounts if isinstance(a, str))
    return Settlement(None, actual, names) if names and actual is not None else None


def _number(value: object) -> float:
    return _finite(float(value)) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


# -- the ledger of a memory store -----------------------------------------------------------


class MemoryLedger:
    """The ledger of one :class:`~orchestration.stores.MemoryStore` (this process only).

    Every operation runs without an await, so it is atomic on the event loop.
    """

    def __init__(self, leases: Mapping[str, tuple[str, float]], clock: Callable[[], float]) -> None:
        self._leases = leases
        self._clock = clock
        self._accounts: dict[str, AccountTotals] = {}
        self._open: dict[str, dict[str, HoldRow]] = {}  # account -> hold id -> open hold
        self._holds: dict[str, list[HoldRow]] = {}  # hold id -> its rows (open or reaped)
        self._runs: dict[str, dict[str, tuple[float, float, float]]] = {}  # account -> run -> metrics
        self._next_cleanup = 0.0

    def __repr__(self) -> str:
        return f"MemoryLedger(accounts={len(self._accounts)})"

    async def reserve(
        self, hold: Hold, decide: Decide, *, dead: Callable[[str], bool] | None = None
    ) -> object | None:
        """See :meth:`Ledger.reserve`."""
        now = self._clock()
        lease = self._leases.get(hold.run_id)
        if lease_lost(hold, lease, now):
            return LEASE_LOST
        accounts = sorted(set(hold.accounts))
        verdict = decide(self._view(accounts, hold.run_id))
        if verdict is not None:  # dead holds matter only to a call that does not fit: reap them now
            if self._reap(accounts, lambda row: hold_is_dead(row, self._leases.get(row.run_id), now), now):
                verdict = decide(self._view(accounts, hold.run_id))
            if (
                verdict is WAIT
                and dead is not None
                and self._reap(accounts, lambda row: dead(row.owner), now)
            ):
                verdict = decide(self._view(accounts, hold.run_id))
        if verdict is not None:
            return verdict
        leased = bool(hold.owner) and lease is not None and lease[0] == hold.owner and lease[1] > now
        rows = [
            HoldRow(
                hold.hold_id, account, hold.run_id, hold.owner, leased, now + hold.ttl_seconds, hold.worst
            )
            for account in accounts
        ]
        self._holds[hold.hold_id] = rows
        metrics = (hold.iterations, hold.agents_failed, hold.wall_time_s)
        for row in rows:
            self._open.setdefault(row.account, {})[row.hold_id] = row
            account = with_hold(self._account(row.account), hold.worst)
            if row.account.startswith("label:"):
                runs = self._runs.setdefault(row.account, {})
                account = with_run_metrics(account, runs.get(hold.run_id), metrics)
                runs[hold.run_id] = metrics
            self._accounts[row.account] = account
        return None

    def apply(self, events: Sequence[StreamEvent]) -> None:
        """Apply the settlements ``events`` carry (the store calls this as it appends them)."""
        for settlement in settlements_in(events):
            self.settle(settlement)

    def settle(self, settlement: Settlement) -> None:
        """Apply one settlement (a no-op for a hold that was already settled)."""
        if settlement.hold_id is None:
            assert settlement.actual is not None
            for account in settlement.accounts:
                self._accounts[account] = with_spend(self._account(account), settlement.actual)
            return
        for row in self._holds.pop(settlement.hold_id, ()):
            self._open.get(row.account, {}).pop(row.hold_id, None)
            self._accounts[row.account] = settled(self._account(row.account), row, settlement.actual)

    async def totals(self, account: str) -> AccountTotals:
        """See :meth:`Ledger.totals`."""
        return self._view([account], "")[account]

    async def reset(self, account: str) -> None:
        """See :meth:`Ledger.reset`."""
        current = self._account(account)
        held = {
            name: getattr(current, name)
            for name in ACCOUNT_COLUMNS
            if name.startswith("held") or name == "holds"
        }
        self._accounts[account] = AccountTotals(account, **held)
        self._runs.pop(account, None)
        for hold_id in [h for h, rows in self._holds.items() if any(r.reaped_at is not None for r in rows)]:
            rows = [r for r in self._holds[hold_id] if r.account != account or r.reaped_at is None]
            self._holds[hold_id] = rows

    def _account(self, account: str) -> AccountTotals:
        return self._accounts.get(account) or AccountTotals(account)

    def _view(self, accounts: Sequence[str], run_id: str) -> dict[str, AccountTotals]:
        return {a: without_run(self._account(a), self._runs.get(a, {}).get(run_id)) for a in accounts}

    def _reap(self, accounts: Sequence[str], is_dead: Callable[[HoldRow], bool], now: float) -> int:
        reaped_rows = 0
        for account in accounts:
            for row in [r for r in self._open.get(account, {}).values() if is_dead(r)]:
                del self._open[account][row.hold_id]
                self._accounts[account] = reaped(self._account(account), row.worst)
                rows = self._holds.get(row.hold_id, [])
                self._holds[row.hold_id] = [replace(r, reaped_at=now) if r is row else r for r in rows]
                reaped_rows += 1
        if now >= self._next_cleanup:  # tombstones a late settlement can no longer need
            self._next_cleanup = now + _TOMBSTONE_SECONDS / 24
            for hold_id in [h for h, rows in self._holds.items() if _forgotten(rows, now)]:
                del self._holds[hold_id]
        return reaped_rows


def _forgotten(rows: Sequence[HoldRow], now: float) -> bool:
    return all(r.reaped_at is not None and r.reaped_at < now - _TOMBSTONE_SECONDS for r in rows)
