"""Durability cost: the core fan-out workload on memory, SQLite and Postgres stores, in one run.

Workload (from ``overhead.py``): 1 decompose call -> N subtasks (one model call each) -> 1
synthesis call on the offline ScriptedProvider with zero latency, concurrency 100.  Every
backend runs the same orchestrator; only ``store=`` changes.  Printed per N: each store's
time per node, its overhead per node over the memory store, and the ratio to memory
(target: SQLite at most 3x).  SQLite is measured with ``synchronous=NORMAL`` (the default)
and ``FULL``; Postgres uses a throw-away schema in ``--postgres DSN`` (default
``$ORCHESTRATION_DATABASE_URL`` or the local ``test`` database) and is skipped, saying why,
when it is not reachable.

Run: ``python benchmarks/durability.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import FanOut

from orchestration import OrchestratorConfig, ScriptedProvider
from orchestration.stores import MemoryStore, RunStore, SQLiteStore

StoreFactory = Callable[[], Awaitable[RunStore]]


async def run_once(store: RunStore, n: int) -> float:
    config = OrchestratorConfig(max_concurrent_agents=100, max_retries=0)
    gc.collect()
    start = time.perf_counter()
    result = await FanOut(config, ScriptedProvider(), n=n, store=store).execute_workflow("benchmark task")
    elapsed = time.perf_counter() - start
    assert result.status == "completed" and len(result.agent_results) == n, result.error
    summary = await store.get_run(result.run_id)
    assert summary is not None and summary.status == "completed", summary
    return elapsed


async def measure(
    backends: list[tuple[str, StoreFactory]], n: int, repeats: int
) -> dict[str, tuple[float, int]]:
    """Best time per backend of ``repeats`` runs, interleaved (so load from elsewhere hits all
    backends alike), each backend on one fresh store after a warm-up run; and events per run."""
    stores = {name: await make() for name, make in backends}
    try:
        times: dict[str, list[float]] = {name: [] for name in stores}
        for store in stores.values():
            await run_once(store, 50)
        for _ in range(repeats):
            for name, store in stores.items():
                times[name].append(await run_once(store, n))
        events = {name: (await store.list_runs(limit=1))[0].last_seq for name, store in stores.items()}
        return {name: (min(times[name]), events[name]) for name in stores}
    finally:
        for store in stores.values():
            await store.close()


def postgres_factory(dsn: str, **options: Any) -> tuple[StoreFactory | None, str, Callable[[], None]]:
    """A factory of stores in fresh schemas, why Postgres is unavailable, and a cleanup."""
    try:
        import psycopg

        from orchestration.stores.postgres import PostgresStore
    except ImportError as error:
        return None, str(error), lambda: None
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            pass
    except psycopg.Error as error:
        return None, f"cannot connect to {dsn}: {error}".strip(), lambda: None
    schemas: list[str] = []

    async def make() -> RunStore:
        schema = f"orch_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        schemas.append(schema)
        separator = "&" if "?" in dsn else "?"
        return PostgresStore(f"{dsn}{separator}options=-csearch_path%3D{schema}", **options)

    def cleanup() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    return make, "", cleanup


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N = 1000 only, fewer repeats (CI smoke run)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("ORCHESTRATION_DATABASE_URL", "postgresql://127.0.0.1:5432/test"),
        help="Postgres DSN (a throw-away schema is created and dropped)",
    )
    args = parser.parse_args()
    sizes = [1000] if args.quick else [1000, 10000]
    repeats = 2 if args.quick else 3
    workdir = Path(tempfile.mkdtemp(prefix="orchestration-durability-"))

    def sqlite(synchronous: str) -> StoreFactory:
        async def make() -> RunStore:
            return SQLiteStore(workdir / f"{synchronous}-{uuid.uuid4().hex[:8]}.db", synchronous=synchronous)  # type: ignore[arg-type]

        return make

    async def memory() -> RunStore:
        return MemoryStore()

    backends: list[tuple[str, StoreFactory]] = [
        ("memory", memory),
        ("sqlite", sqlite("NORMAL")),
        ("sqlite synchronous=FULL", sqlite("FULL")),
    ]
    make_pg, why_not, cleanup = postgres_factory(args.postgres)
    make_pg_async, _, cleanup_async = postgres_factory(args.postgres, synchronous_commit="off")
    if make_pg is not None and make_pg_async is not None:
        backends.append(("postgres", make_pg))
        backends.append(("postgres sync_commit=off", make_pg_async))
    print(f"durable fan-out, zero-latency provider, concurrency 100 (best of {repeats}, interleaved)")
    print(f"{'N':>6} {'store':<24} {'us/node':>9} {'overhead us/node':>17} {'ratio':>6} {'events/run':>11}")
    try:
        for n in sizes:
            results = asyncio.run(measure(backends, n, repeats))
            base = results["memory"][0] / n * 1e6
            for name, (elapsed, events) in results.items():
                per_node = elapsed / n * 1e6
                print(
                    f"{n:>6} {name:<24} {per_node:>9.1f} {per_node - base:>17.1f} "
                    f"{per_node / base:>5.2f}x {events:>11}"
                )
    finally:
        cleanup()
        cleanup_async()
    if make_pg is None:
        print(f"\npostgres skipped: {why_not}")
    print("\ntarget: sqlite (synchronous=NORMAL, the default) at most 3x memory per node")


if __name__ == "__main__":
    main()
