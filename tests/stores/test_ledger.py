"""The shared budget ledger, run against every store: memory, SQLite and Postgres.

A hold is written only when ``decide`` admits it, in the same transaction that read the
numbers; a call settles with the event that records its end (appended to any run's log);
dead holds are reaped at their worst case and corrected if their call settles after all.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestration.events import EventType, StreamEvent
from orchestration.stores import MemoryStore, RunStore, SQLiteStore
from orchestration.stores.ledger import (
    LEASE_LOST,
    WAIT,
    AccountTotals,
    Charge,
    Hold,
    Ledger,
    label_account,
    ledger_of,
    run_account,
)

from . import _ledger_workers

T0 = 1_700_000_000.0
ACCOUNT = run_account("r")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    name: str
    factory: Callable[[], RunStore]
    clock: Clock
    opened: list[RunStore] = field(default_factory=list)

    def open(self) -> RunStore:
        store = self.factory()
        self.opened.append(store)
        return store


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    clock = Clock()
    factory: Callable[[], RunStore]
    if request.param == "memory":
        shared = MemoryStore(clock=clock)
        factory = lambda: shared  # noqa: E731 - one process, one memory
    elif request.param == "sqlite":
        factory = lambda: SQLiteStore(tmp_path / "runs.db", clock=clock)  # noqa: E731
    else:
        from orchestration.stores.postgres import PostgresStore

        dsn = request.getfixturevalue("postgres_dsn")
        factory = lambda: PostgresStore(dsn, clock=clock)  # noqa: E731
    backend = Backend(request.param, factory, clock)
    try:
        yield backend
    finally:
        for store in backend.opened:
            await store.close()


@pytest.fixture
async def store(backend: Backend) -> RunStore:
    return backend.open()


def ledger(store: RunStore) -> Ledger:
    found = ledger_of(store)
    assert found is not None
    return found


def hold(
    hold_id: str,
    cost: float = 1.0,
    *,
    run_id: str = "r",
    owner: str = "",
    accounts: tuple[str, ...] = (ACCOUNT,),
    ttl: float = 900.0,
    **metrics: float,
) -> Hold:
    return Hold(hold_id, run_id, owner, accounts, Charge(cost, 10, 20), ttl, **metrics)


def capped(cap: float, account: str = ACCOUNT) -> Callable[[Mapping[str, AccountTotals]], object | None]:
    """A decide that holds ``account`` to ``cap``, waiting while calls in flight are in the way."""

    def decide(accounts: Mapping[str, AccountTotals]) -> object | None:
        totals = accounts[account]
        if totals.cost_usd + 1.0 > cap:
            return "refused"
        return WAIT if totals.cost_usd + totals.held_cost_usd + 1.0 > cap else None

    return decide


def admit(accounts: Mapping[str, AccountTotals]) -> None:
    return None


class Full:
    """A decide for a call that does not fit while anything is in flight (so dead holds are
    reaped), keeping the views it was shown."""

    def __init__(self) -> None:
        self.seen: list[AccountTotals] = []

    def __call__(self, accounts: Mapping[str, AccountTotals]) -> object:
        self.seen.append(accounts[ACCOUNT])
        return WAIT


class EventWriter:
    """Appends events to one run's log of ``store``, numbering them."""

    def __init__(self, store: RunStore, run_id: str = "log") -> None:
        self.store, self.run_id, self.seq = store, run_id, 0

    async def __call__(self, kind: EventType, data: dict[str, Any]) -> None:
        self.seq += 1
        await self.store.append(self.run_id, [StreamEvent(kind, self.run_id, self.seq, T0 + self.seq, data)])

    async def answered(
        self, hold_id: str, cost: float, tokens: tuple[int, int] = (5, 7), latency: float = 3.0
    ) -> None:
        usage = {"input_tokens": tokens[0], "output_tokens": tokens[1]}
        await self(
            EventType.COST_UPDATE,
            {"cost": cost, "usage": usage, "hold": {"id": hold_id, "latency_ms": latency}},
        )

    async def released(self, hold_id: str) -> None:
        await self(EventType.CALL_RELEASED, {"hold": {"id": hold_id}})


async def test_a_hold_is_written_only_when_decide_admits_it(store: RunStore) -> None:
    seen: list[AccountTotals] = []

    def decide(accounts: Mapping[str, AccountTotals]) -> object | None:
        seen.append(accounts[ACCOUNT])
        return None

    assert await ledger(store).reserve(hold("h1", 0.25), decide) is None
    assert seen == [AccountTotals(ACCOUNT)]  # an account nobody used reads as zeros
    totals = await ledger(store).totals(ACCOUNT)
    assert (totals.held_cost_usd, totals.held_input_tokens, totals.held_output_tokens, totals.holds) == (
        0.25,
        10,
        20,
        1,
    )
    assert await ledger(store).reserve(hold("h2"), lambda accounts: WAIT) is WAIT
    assert await ledger(store).reserve(hold("h3"), lambda accounts: "no") == "no"
    assert (await ledger(store).totals(ACCOUNT)).holds == 1  # neither was held
    assert (await ledger(store).totals("run:other")) == AccountTotals("run:other")


async def test_a_cap_is_held_and_waits_until_a_settlement_frees_it(store: RunStore) -> None:
    book, log = ledger(store), EventWriter(store)
    for n in range(3):
        assert await book.reserve(hold(f"h{n}"), capped(3.5)) is None
    assert await book.reserve(hold("h3"), capped(3.5)) is WAIT  # fits once a call in flight settles
    await log.answered("h0", 0.5)
    assert await book.reserve(hold("h3"), capped(3.5)) is None
    totals = await book.totals(ACCOUNT)
    assert (totals.cost_usd, totals.calls, totals.holds, totals.held_cost_usd) == (0.5, 1, 3, 3.0)
    await log.answered("h1", 1.0)
    await log.answered("h2", 1.0)
    await log.answered("h3", 0.25)
    assert await book.reserve(hold("h4"), capped(3.5)) == "refused"  # $2.75 spent: it cannot fit even alone


async def test_settling_records_the_real_usage_once(store: RunStore) -> None:
    book, log = ledger(store), EventWriter(store)
    accounts = (ACCOUNT, label_account("tenant", "acme"))
    await book.reserve(hold("h1", 2.0, accounts=accounts), admit)
    await log.answered("h1", 0.75, (100, 40), latency=250.0)
    await log.answered("h1", 0.75, (100, 40), latency=250.0)  # a second settlement of one hold: nothing
    await log.released("h1")
    for account in accounts:
        totals = await book.totals(account)
        assert (totals.cost_usd, totals.input_tokens, totals.output_tokens, totals.calls) == (
            0.75,
            100,
            40,
            1,
        )
        assert (totals.max_cost_usd, totals.max_tokens_used, totals.max_latency_ms) == (0.75, 140, 250.0)
        assert (totals.holds, totals.held_cost_usd, totals.latency_ms) == (0, 0.0, 250.0)


async def test_a_released_hold_costs_nothing(store: RunStore) -> None:
    book, log = ledger(store), EventWriter(store)
    await book.reserve(hold("h1", 2.0), admit)
    await log.released("h1")
    totals = await book.totals(ACCOUNT)
    assert (totals.cost_usd, totals.calls, totals.holds) == (0.0, 0, 0)
    await log.released("never-held")  # unknown holds are ignored


async def test_a_call_that_could_not_hold_is_billed_to_its_accounts_afterwards(store: RunStore) -> None:
    log = EventWriter(store)
    usage = {"input_tokens": 3, "output_tokens": 4}
    await log(EventType.COST_UPDATE, {"cost": 0.5, "usage": usage, "hold": {"accounts": ["label:t=x"]}})
    totals = await ledger(store).totals("label:t=x")
    assert (totals.cost_usd, totals.calls, totals.input_tokens) == (0.5, 1, 3)


async def test_malformed_settlements_are_ignored(store: RunStore) -> None:
    log = EventWriter(store)
    await ledger(store).reserve(hold("h1"), admit)
    await log(EventType.COST_UPDATE, {"cost": "a lot", "hold": {"id": "h1"}})
    await log(EventType.COST_UPDATE, {"cost": 1.0, "hold": "h1"})
    await log(EventType.COST_UPDATE, {"cost": float("nan"), "usage": [], "hold": {"accounts": "x"}})
    await log(EventType.AGENT_PROGRESS, {"hold": {"id": "h1"}})
    totals = await ledger(store).totals(ACCOUNT)
    assert (totals.cost_usd, totals.calls, totals.holds) == (0.0, 1, 0)  # the first settled it at $0


async def test_a_hold_dies_with_its_runs_lease_and_counts_at_its_worst_case(store: RunStore) -> None:
    book, log = ledger(store), EventWriter(store)
    assert await store.acquire_lease("r", "old-owner", 30.0)
    await book.reserve(hold("h1", 2.0, owner="old-owner"), admit)
    await book.reserve(hold("h2", 1.0, owner=""), admit)  # a caller outside the lease: not tied to it
    assert await store.take_over_lease("r", "old-owner", "new-owner", 30.0)  # the old driver died: resume
    assert (await book.totals(ACCOUNT)).holds == 2  # a call that fits never looks at the holds
    full = Full()
    assert await book.reserve(hold("h3", 0.5, owner="new-owner"), full) is WAIT
    before, after = full.seen
    assert (before.cost_usd, before.holds, before.held_cost_usd) == (0.0, 2, 3.0)
    assert (after.cost_usd, after.calls, after.holds, after.held_cost_usd) == (2.0, 1, 1, 1.0)
    assert (await book.totals(ACCOUNT)).cost_usd == 2.0  # the reap was written, though h3 waits
    # The old driver was only stalled: its call settles after all, and is counted at what it cost.
    await log.answered("h1", 0.25)
    totals = await book.totals(ACCOUNT)
    assert (totals.cost_usd, totals.calls, totals.holds) == (0.25, 1, 1)


async def test_a_driver_that_lost_its_runs_lease_can_hold_nothing(backend: Backend, store: RunStore) -> None:
    book = ledger(store)
    assert await store.acquire_lease("r", "new-driver", 30.0)
    assert await book.reserve(hold("h1", owner="old-driver"), admit) is LEASE_LOST
    assert await book.reserve(hold("h2", owner="new-driver"), admit) is None
    assert await book.reserve(hold("h3", owner=""), admit) is None  # a caller outside any lease
    backend.clock.now += 31.0  # the new driver stalled: the lease is free to renew or take
    assert await book.reserve(hold("h4", owner="old-driver"), admit) is None
    await book.reserve(hold("h5"), Full())
    assert (await book.totals(ACCOUNT)).holds == 2  # h2 died with its expired lease


async def test_a_hold_dies_when_the_lease_is_released_or_expires(backend: Backend, store: RunStore) -> None:
    book = ledger(store)
    assert await store.acquire_lease("r", "driver", 30.0)
    await book.reserve(hold("h1", 1.0, owner="driver"), admit)
    await book.reserve(hold("h2", 1.0, run_id="s", owner="other", accounts=(ACCOUNT,)), admit)
    await book.reserve(hold("h3", 1.0, owner="", ttl=100.0), admit)  # no lease: its own expiry only
    backend.clock.now += 31.0  # the driver stopped renewing
    await book.reserve(hold("h4", 0.0), Full())
    assert (await book.totals(ACCOUNT)).holds == 2  # h1 reaped; h2 (never leased) and h3 live on
    backend.clock.now += 70.0
    await book.reserve(hold("h5", 0.0), Full())
    totals = await book.totals(ACCOUNT)
    assert (totals.holds, totals.cost_usd, totals.calls) == (1, 2.0, 2)  # h3 expired too


async def test_a_waiting_call_reaps_holds_of_processes_that_are_gone(store: RunStore) -> None:
    book = ledger(store)
    await book.reserve(hold("h1", 1.0, owner="dead-process"), admit)
    await book.reserve(hold("h2", 0.5, owner="live-process"), admit)
    asked: list[str] = []

    def dead(owner: str) -> bool:
        asked.append(owner)
        return owner == "dead-process"

    def fits(accounts: Mapping[str, AccountTotals]) -> object | None:
        return WAIT if accounts[ACCOUNT].held_cost_usd > 0.5 else None

    assert await book.reserve(hold("h3"), fits, dead=dead) is None  # h1's money is spent, not held
    assert sorted(asked) == ["dead-process", "live-process"]
    totals = await book.totals(ACCOUNT)
    assert (totals.cost_usd, totals.holds) == (1.0, 2)
    asked.clear()
    assert await book.reserve(hold("h4"), admit, dead=dead) is None
    assert asked == []  # asked only while a call waits


async def test_label_accounts_sum_the_other_runs_metrics(store: RunStore) -> None:
    book = ledger(store)
    tenant = label_account("tenant", "acme")
    await book.reserve(
        hold("a1", run_id="a", accounts=(tenant,), iterations=3, agents_failed=1, wall_time_s=5), admit
    )
    await book.reserve(
        hold("a2", run_id="a", accounts=(tenant,), iterations=4, agents_failed=1, wall_time_s=9), admit
    )
    await book.reserve(hold("b1", run_id="b", accounts=(tenant,), iterations=2, wall_time_s=1), admit)
    seen: list[AccountTotals] = []
    await book.reserve(hold("b2", run_id="b", accounts=(tenant,)), lambda a: seen.append(a[tenant]) or WAIT)
    assert (seen[0].iterations, seen[0].agents_failed, seen[0].wall_time_s) == (4, 1, 9)  # run a's latest
    everyone = await book.totals(tenant)
    assert (everyone.iterations, everyone.wall_time_s) == (6, 10)


async def test_reset_forgets_spending_but_keeps_holds_in_flight(store: RunStore) -> None:
    book, log = ledger(store), EventWriter(store)
    await book.reserve(hold("h1", 1.0), admit)
    await book.reserve(hold("h2", 1.0), admit)
    await log.answered("h1", 0.5)
    await book.reset(ACCOUNT)
    totals = await book.totals(ACCOUNT)
    assert (totals.cost_usd, totals.calls, totals.holds, totals.held_cost_usd) == (0.0, 0, 1, 1.0)
    await log.answered("h2", 0.25)
    assert (await book.totals(ACCOUNT)).cost_usd == 0.25


async def test_a_fenced_append_settles_nothing(store: RunStore) -> None:
    from orchestration.errors import LeaseLostError

    book = ledger(store)
    await book.reserve(hold("h1", 1.0), admit)
    assert await store.acquire_lease("log", "someone-else", 30.0)
    data = {"cost": 0.5, "usage": {}, "hold": {"id": "h1"}}
    with pytest.raises(LeaseLostError):
        await store.append("log", [StreamEvent(EventType.COST_UPDATE, "log", 1, T0, data)], fence="me")
    assert (await book.totals(ACCOUNT)).holds == 1  # the write was refused: so was its settlement


async def test_concurrent_reservations_from_two_store_objects_never_exceed_the_cap(backend: Backend) -> None:
    """Two store objects on one database (two connections): 60 calls against a $10 cap."""
    stores = [backend.open(), backend.open()]
    admitted_views: list[float] = []
    cap = 10.0

    def decide(accounts: Mapping[str, AccountTotals]) -> object | None:
        verdict = capped(cap)(accounts)
        if verdict is None:
            totals = accounts[ACCOUNT]
            admitted_views.append(totals.cost_usd + totals.held_cost_usd + 1.0)
        return verdict

    async def worker(n: int) -> int:
        store = stores[n % 2]
        log = EventWriter(store, f"log{n}")
        made = 0
        for i in range(6):
            hold_id = f"w{n}-{i}"
            while True:
                verdict = await ledger(store).reserve(hold(hold_id), decide)
                if verdict is not WAIT:
                    break
                await asyncio.sleep(0.001)  # the other workers' calls settle meanwhile
            if verdict == "refused":
                return made
            made += 1
            await asyncio.sleep(0)
            await log.answered(hold_id, 0.5)
        return made

    made = await asyncio.gather(*(worker(n) for n in range(10)))
    totals = await ledger(stores[0]).totals(ACCOUNT)
    assert max(admitted_views) <= cap
    assert totals.cost_usd == 0.5 * sum(made) <= cap and totals.holds == 0
    assert sum(made) == 19  # every call that could fit did: 19 * $0.5, and a 20th's $1 worst case would not


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_processes_sharing_a_store_never_exceed_a_cap_together(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Three OS processes, 20 calls each, against one $12 cap with calls worth up to $1
    that cost $0.5: the cap holds, and every call that could fit was made."""
    where = str(tmp_path / "runs.db") if kind == "sqlite" else request.getfixturevalue("postgres_dsn")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    results = context.Queue()
    processes = [
        context.Process(target=_ledger_workers.spend, args=(where, f"p{n}", 20, 12.0, barrier, results))
        for n in range(3)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    made = sum(m for m, _ in outcomes)
    assert max(peak for _, peak in outcomes) <= 12.0
    assert made == 23  # 23 * $0.5 = $11.5; a 24th call's $1 worst case would not fit

    async def totals() -> AccountTotals:
        store = _ledger_workers.open_store(where)
        try:
            return await ledger(store).totals(_ledger_workers.ACCOUNT)
        finally:
            await store.close()

    final = asyncio.run(totals())
    assert (final.cost_usd, final.calls, final.holds) == (11.5, 23, 0)
