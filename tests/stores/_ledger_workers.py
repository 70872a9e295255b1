"""Code run in child processes by the multi-process ledger tests (importable under spawn)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from orchestration.events import EventType, StreamEvent
from orchestration.stores import RunStore, SQLiteStore
from orchestration.stores.ledger import WAIT, AccountTotals, Charge, Hold, ledger_of, run_account

ACCOUNT = run_account("shared-run")


def open_store(where: str) -> RunStore:
    if where.startswith("postgresql://"):
        from orchestration.stores.postgres import PostgresStore

        return PostgresStore(where)
    return SQLiteStore(where)


def spend(where: str, name: str, calls: int, cap: float, barrier: Any, results: Any) -> None:
    """Make up to ``calls`` calls held at $1 that cost $0.5 against ``cap`` on the shared
    run's account, waiting while calls in flight are in the way; report how many were
    made and the most that was ever spent and held when one was admitted."""
    peak = [0.0]

    def decide(accounts: Mapping[str, AccountTotals]) -> object | None:
        totals = accounts[ACCOUNT]
        if totals.cost_usd + 1.0 > cap:
            return "refused"
        if totals.cost_usd + totals.held_cost_usd + 1.0 > cap:
            return WAIT
        peak[0] = max(peak[0], totals.cost_usd + totals.held_cost_usd + 1.0)
        return None

    async def main() -> int:
        store = open_store(where)
        ledger = ledger_of(store)
        assert ledger is not None
        made = 0
        try:
            barrier.wait(timeout=60)
            for seq in range(1, calls + 1):
                hold = Hold(f"{name}-{seq}", "shared-run", "", (ACCOUNT,), Charge(1.0, 1, 1))
                while True:
                    verdict = await ledger.reserve(hold, decide)
                    if verdict is not WAIT:
                        break
                    await asyncio.sleep(0.002)  # calls in flight in other processes settle meanwhile
                if verdict is not None:
                    break
                made += 1
                await asyncio.sleep(0.001)  # the call is in flight
                data = {"cost": 0.5, "usage": {}, "hold": {"id": hold.hold_id}}
                await store.append(name, [StreamEvent(EventType.COST_UPDATE, name, seq, 0.0, data)])
        finally:
            await store.close()
        return made

    results.put((asyncio.run(main()), peak[0]))
