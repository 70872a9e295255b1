"""Graph workloads through the engine vs plain asyncio, in one process.

A node's work is ``await asyncio.sleep(0)`` returning a small dict (no model call), so
what is measured is the engine itself:

- W1 fan-out 1 -> N -> 1 (baseline: ``asyncio.gather`` under a semaphore);
- W2 a chain of N steps, each depending on the one before (baseline: one task per step);
- W3 a loop of N visits through a switch (baseline: one task per visit). The
  orchestrator engine has no loops, so W3 has only the graph side.

Two engine sides: ``engine`` is ``BaseOrchestrator`` (decompose -> subtasks ->
synthesize), ``graph`` is ``Graph.run`` (orchestration.graph, the graph runtime).

Each workload runs on the memory store and on the default SQLite store (a file in a
temporary folder).  Printed: microseconds per node for the engine and the baseline, and
the ratio.  With ``--instructions`` each is also run under ``valgrind --tool=callgrind``
at two sizes, and the difference in instructions divided by the difference in nodes is
printed: wall-clock on a shared machine moves by 1.5x between runs, instruction counts do
not.  Run: ``python benchmarks/graph.py [--quick] [--instructions]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from orchestration import (
    AgentResult,
    BaseOrchestrator,
    MemoryStore,
    OrchestratorConfig,
    ScriptedProvider,
    SubTask,
)
from orchestration.graph import Edge, Graph, Node, NodeContext, NodeKind
from orchestration.stores import RunStore
from orchestration.stores.sqlite import SQLiteStore

CONCURRENCY = 100


async def work(i: int) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"node": i}


class FanOut(BaseOrchestrator):
    """Entry (decompose) -> N subtasks -> join (synthesize), no model calls."""

    def __init__(self, *args: Any, n: int, chain: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.n = n
        self.chain = chain

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        await work(-1)
        if self.chain:
            return [
                SubTask(id=f"s{i}", description="step", dependencies=[f"s{i - 1}"] if i else [])
                for i in range(self.n)
            ]
        return [SubTask(id=f"s{i}", description="part") for i in range(self.n)]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        return str(await work(0))

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        await work(-2)
        return str(len(agent_results))


# --- baselines: the same work in plain asyncio --------------------------------------------


async def baseline_fanout(n: int) -> None:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> dict[str, int]:
        async with semaphore:
            return await work(i)

    await work(-1)
    results = await asyncio.gather(*(one(i) for i in range(n)))
    await work(len(results))


async def baseline_chain(n: int) -> None:
    previous: dict[str, int] = {}
    for i in range(n):
        previous = await asyncio.create_task(work(i + len(previous)))


async def baseline_loop(n: int) -> None:
    visits = 0
    while True:  # body, then the switch deciding whether to go round again
        await asyncio.create_task(work(visits))
        visits += 1
        route = await asyncio.create_task(work(visits))
        if route["node"] >= n:
            break


# --- the engine ------------------------------------------------------------------------


def make_store(kind: str, folder: str) -> RunStore:
    if kind == "memory":
        return MemoryStore()
    return SQLiteStore(os.path.join(folder, f"runs-{time.monotonic_ns()}.db"))


async def engine_run(n: int, *, chain: bool, store_kind: str, folder: str) -> None:
    config = OrchestratorConfig(max_concurrent_agents=CONCURRENCY, max_retries=0)
    store = make_store(store_kind, folder)
    orchestrator = FanOut(config, ScriptedProvider(), n=n, chain=chain, store=store)  # never called
    result = await orchestrator.execute_workflow("benchmark")
    assert result.status == "completed" and len(result.agent_results) == n, result.error
    close = getattr(store, "close", None)
    if close is not None:
        await close()


async def node_work(ctx: NodeContext) -> dict[str, int]:
    return await work(ctx.visit)


def graph_of(name: str, n: int) -> Graph:
    if name == "W1":
        nodes = [Node(id="entry"), *(Node(id=f"s{i}") for i in range(n)), Node(id="join")]
        edges = [Edge(source="entry", target=f"s{i}") for i in range(n)]
        edges += [Edge(source=f"s{i}", target="join") for i in range(n)]
        return Graph(nodes=nodes, edges=edges, entry="entry")
    if name == "W2":
        nodes = [Node(id=f"s{i}") for i in range(n)]
        edges = [Edge(source=f"s{i - 1}", target=f"s{i}") for i in range(1, n)]
        return Graph(nodes=nodes, edges=edges, entry="s0")
    nodes = [Node(id="body"), Node(id="switch", kind=NodeKind.SWITCH), Node(id="end")]
    edges = [
        Edge(source="body", target="switch"),
        Edge(source="switch", target="body"),
        Edge(source="switch", target="end"),
    ]
    return Graph(nodes=nodes, edges=edges, entry="body")


async def graph_run(name: str, n: int, *, store_kind: str, folder: str) -> None:
    store = make_store(store_kind, folder)

    async def switch(ctx: NodeContext) -> str:
        await work(ctx.visit)
        return "end" if ctx.visit >= n else "body"

    handlers: dict[Any, Any] = {NodeKind.TASK: node_work, "switch": switch}
    result = await graph_of(name, n).run(handlers, store=store, concurrency=CONCURRENCY)
    expected = n + 2 if name == "W1" else n
    assert result.status == "completed", result.error
    if name == "W3":
        assert len(result.outputs["body"]) == n, len(result.outputs["body"])
    else:
        assert sum(len(v) for v in result.outputs.values()) == expected
    close = getattr(store, "close", None)
    if close is not None:
        await close()


def workload(name: str, side: str, store_kind: str, folder: str) -> Callable[[int], Awaitable[None]] | None:
    if side == "baseline":
        return {"W1": baseline_fanout, "W2": baseline_chain, "W3": baseline_loop}[name]
    if side == "graph":
        return lambda n: graph_run(name, n, store_kind=store_kind, folder=folder)
    if name == "W3":
        return None  # BaseOrchestrator has no loops
    return lambda n: engine_run(n, chain=name == "W2", store_kind=store_kind, folder=folder)


def timed(fn: Callable[[int], Awaitable[None]], n: int) -> float:
    gc.collect()
    start = time.perf_counter()
    asyncio.run(fn(n))
    return time.perf_counter() - start


def instructions(name: str, side: str, store_kind: str, n: int) -> int:
    """Instructions for one whole process running the workload once at size ``n``."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--one",
        name,
        side,
        store_kind,
        str(n),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    match = re.search(r"Collected : (\d+)", output)
    assert match, output[-2000:]
    return int(match.group(1))


def per_node_instructions(name: str, side: str, store_kind: str, small: int, large: int) -> float:
    return (instructions(name, side, store_kind, large) - instructions(name, side, store_kind, small)) / (
        large - small
    )


def peak_rss(side: str) -> float:
    """Peak RSS (MB) of a fresh process running W1 at N=100000 on the memory store."""
    command = [sys.executable, __file__, "--one", "W1", side, "memory", "100000", "--rss"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return float(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with callgrind")
    parser.add_argument("--rss", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help="peak RSS of W1 N=100000 in a fresh process")
    parser.add_argument(
        "--graph-only", action="store_true", help="instruction counts for the graph side and baseline only"
    )
    parser.add_argument("--one", nargs=4, metavar=("W", "SIDE", "STORE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="graph-bench-")
    try:
        if args.one:
            name, side, store_kind, n = args.one
            fn = workload(name, side, store_kind, folder)
            assert fn is not None
            asyncio.run(fn(int(n)))
            if args.rss:
                print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            return
        fanout_sizes = [100, 1000, 10000] if args.quick else [100, 1000, 10000, 100000]
        rows = [("W1", n) for n in fanout_sizes] + [("W2", 1000), ("W3", 1000)]
        print(f"node work: await asyncio.sleep(0) returning a small dict; concurrency {CONCURRENCY}")
        print(
            f"{'workload':<10} {'N':>7} {'store':<7} {'engine us/node':>15} {'baseline us/node':>17} {'ratio':>7}"
            f" {'graph us/node':>14} {'ratio':>7}"
        )
        for name, n in rows:
            for store_kind in ("memory", "sqlite"):
                base_fn = workload(name, "baseline", store_kind, folder)
                ours_fn = workload(name, "engine", store_kind, folder)
                graph_fn = workload(name, "graph", store_kind, folder)
                assert base_fn is not None and graph_fn is not None
                repeats = 1 if n >= 100000 else 3
                base = ours = graph = float("inf")
                for _ in range(repeats):  # interleaved, best of each
                    base = min(base, timed(base_fn, n))
                    if ours_fn is not None:
                        ours = min(ours, timed(ours_fn, n))
                    graph = min(graph, timed(graph_fn, n))
                per_base = base / n * 1e6
                per_graph = graph / n * 1e6
                tail = f" {per_graph:>14.1f} {per_graph / per_base:>6.2f}x"
                if ours_fn is None:
                    print(
                        f"{name:<10} {n:>7} {store_kind:<7} {'(no loops)':>15} {per_base:>17.1f} {'-':>7}{tail}"
                    )
                    continue
                per_ours = ours / n * 1e6
                print(
                    f"{name:<10} {n:>7} {store_kind:<7} {per_ours:>15.1f} {per_base:>17.1f} "
                    f"{per_ours / per_base:>6.2f}x{tail}"
                )
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak RSS of this process: {peak_mb:.0f} MB")
        if args.memory:
            for kind in ("baseline", "graph"):
                print(f"peak RSS, one process, W1 N=100000 {kind} (memory store): {peak_rss(kind):.0f} MB")
        if args.instructions:
            if shutil.which("valgrind") is None:
                sys.exit("--instructions needs valgrind (apt-get install valgrind)")
            small, large = (200, 600) if args.quick else (500, 1500)
            print(f"\ninstructions per node (callgrind, (I({large}) - I({small})) / {large - small})")
            print(
                f"{'workload':<10} {'store':<7} {'engine':>12} {'baseline':>12} {'ratio':>7}"
                f" {'graph':>12} {'ratio':>7}"
            )
            for name in ("W1", "W2", "W3"):
                base_i = per_node_instructions(name, "baseline", "memory", small, large)
                for store_kind in ("memory", "sqlite"):
                    graph_i = per_node_instructions(name, "graph", store_kind, small, large)
                    tail = f" {graph_i:>12,.0f} {graph_i / base_i:>6.2f}x"
                    if name == "W3" or args.graph_only:
                        print(f"{name:<10} {store_kind:<7} {'-':>12} {base_i:>12,.0f} {'-':>7}{tail}")
                        continue
                    ours_i = per_node_instructions(name, "engine", store_kind, small, large)
                    print(
                        f"{name:<10} {store_kind:<7} {ours_i:>12,.0f} {base_i:>12,.0f} {ours_i / base_i:>6.2f}x{tail}"
                    )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
