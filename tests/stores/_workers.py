"""Code run in child processes by the multi-process SQLite tests (importable under spawn)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from orchestration.events import EventType, StreamEvent
from orchestration.stores.sqlite import SQLiteStore


def append_run(path: str, run_id: str, batches: int, batch_size: int, barrier: Any) -> None:
    """Append ``batches`` batches of ``batch_size`` events to ``run_id``."""

    async def main() -> None:
        store = SQLiteStore(path)
        try:
            barrier.wait(timeout=60)
            seq = 0
            for _ in range(batches):
                batch = []
                for _ in range(batch_size):
                    seq += 1
                    batch.append(StreamEvent(EventType.AGENT_PROGRESS, run_id, seq, time.time(), {"n": seq}))
                await store.append(run_id, batch)
        finally:
            await store.close()

    asyncio.run(main())


def race_leases(path: str, owner: str, run_ids: list[str], barrier: Any, results: Any) -> None:
    """Try to take each run's lease; report the runs this owner won."""

    async def main() -> list[str]:
        store = SQLiteStore(path)
        try:
            barrier.wait(timeout=60)
            return [run_id for run_id in run_ids if await store.acquire_lease(run_id, owner, 60.0)]
        finally:
            await store.close()

    results.put((owner, asyncio.run(main())))
