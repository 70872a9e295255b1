"""``kill -9`` a Temporal worker in the middle of a node, in seeded trials.

Three worker processes share one SQLite store; each run's nodes call a real HTTP vendor
on 127.0.0.1 that counts every call.  In each trial a seeded moment is picked (after so
many calls started), one seeded worker is killed with SIGKILL while calls are in flight
and replaced.  Then every run must complete with the result an uninterrupted run gives,
a node that had completed before the kill must not run again (its prompt was sent once),
and the extra calls must be at most the calls in flight at the kill.

CI runs ``ORCHESTRATION_TEMPORAL_TRIALS`` (default 3) trials of
``ORCHESTRATION_TEMPORAL_RUNS`` (default 10) runs; the issue's 20 trials of 50 runs are
``ORCHESTRATION_TEMPORAL_TRIALS=20 ORCHESTRATION_TEMPORAL_RUNS=50``.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from orchestration.stores import open_store
from tests.backends.temporal_support import CountingVendor, DevServer, WorkerProcess, expected_answers
from tests.backends.temporal_targets import VENDOR_NODES
from tests.backends.test_temporal import TARGETS

pytestmark = pytest.mark.temporal

TRIALS = int(os.environ.get("ORCHESTRATION_TEMPORAL_TRIALS", "3"))
RUNS = int(os.environ.get("ORCHESTRATION_TEMPORAL_RUNS", "10"))
WORKERS = 3


@pytest.fixture
def vendor() -> Iterator[CountingVendor]:
    server = CountingVendor(delay=0.4).start()
    try:
        yield server
    finally:
        server.stop()


def _completed_nodes(events: list[Any]) -> set[str]:
    return {e.agent_id for e in events if e.event_type.value == "graph_node_completed"}


@pytest.mark.timeout(900)
async def test_killed_workers_lose_no_completed_node_and_pay_at_most_the_calls_in_flight(
    temporal_server: DevServer, vendor: CountingVendor, tmp_path: Any
) -> None:
    from orchestration.backends.temporal import TemporalBackend
    from orchestration.backends.temporal.client import connect

    store_url = f"sqlite:///{tmp_path}/runs.db"
    store = open_store(store_url)
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    env = {"FAKE_VENDOR_URL": vendor.url}

    def start_worker() -> WorkerProcess:
        worker = WorkerProcess(temporal_server.address, queue, store_url, env, concurrency=50)
        worker.wait_ready()
        return worker

    workers = await asyncio.gather(*(asyncio.to_thread(start_worker) for _ in range(WORKERS)))
    backend = TemporalBackend(await connect(temporal_server.address), store, task_queue=queue)
    try:
        for trial in range(TRIALS):
            began = time.monotonic()
            rng = random.Random(20_000 + trial)
            payloads = [f"t{trial}r{i}" for i in range(RUNS)]
            base = vendor.started
            run_ids = [
                await backend.submit(f"{TARGETS}:vendor", payload=p, heartbeat_seconds=1.0) for p in payloads
            ]
            threshold = base + rng.randint(1, max(1, RUNS * VENDOR_NODES // 2))
            await asyncio.to_thread(vendor.wait_started, threshold)
            completed_before: set[tuple[str, str]] = set()
            for run_id, payload in zip(run_ids, payloads, strict=True):
                for node in _completed_nodes(await store.events(run_id)):
                    completed_before.add((payload, node))
            victim = rng.randrange(WORKERS)
            before, _ = vendor.snapshot()
            workers[victim].kill()
            after, _ = vendor.snapshot()  # the dead worker's calls are still open here
            in_flight = max(before, after)
            workers[victim] = await asyncio.to_thread(start_worker)

            results = await asyncio.wait_for(asyncio.gather(*(backend.result(r) for r in run_ids)), 300)
            _, calls = vendor.snapshot()
            for payload, result in zip(payloads, results, strict=True):
                assert result.status == "completed", (trial, payload, dict(result.errors))
                assert result.output("join") == expected_answers(payload, VENDOR_NODES)
            prompts = [f"{p}:n{i}" for p in payloads for i in range(VENDOR_NODES)]
            assert all(calls[prompt] >= 1 for prompt in prompts)
            for payload, node in completed_before:
                if node.startswith("n"):
                    assert calls[f"{payload}:{node}"] == 1, (trial, payload, node)
            extra = sum(calls[prompt] - 1 for prompt in prompts)
            assert extra <= in_flight, (trial, extra, in_flight)
            if trial == 0:  # the provider's key lives on the workers: never in Temporal's history
                history = await backend.client.get_workflow_handle(run_ids[0]).fetch_history()
                assert "sk-test-secret" not in history.to_json()
            print(
                f"trial {trial}: {time.monotonic() - began:.1f}s, {in_flight} in flight at the kill, {extra} extra"
            )
    finally:
        for worker in workers:
            worker.stop()
        await store.close()
