"""A decorator workflow's per-step cost against the graph runtime's per-node cost.

The same shapes three ways, in one process, on the memory store: a ``Workflow`` of
``@step`` methods, the equivalent ``Graph.run`` with plain handlers, and plain asyncio
(one task per step for a chain, ``gather`` for a fan-out).  A step's work is
``await asyncio.sleep(0)`` returning a small dict.

- chain: N steps, each after the one before;
- fanout: a start step, N parallel steps, one join step taking ``**inputs``.

Printed: microseconds per step for each side and the ratios workflow/graph (the target
is 1.2x) and workflow/asyncio.  ``--instructions`` adds instructions per step counted by
``valgrind --tool=callgrind``, free of wall-clock noise: a child process builds one side
once and runs it once or three times; the difference, divided by twice the steps, is
what a run costs per step (building the benchmark's generated classes is left out).  Run: ``python benchmarks/workflow.py
[--quick] [--instructions]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from orchestration import Flow, MemoryStore, Workflow, step
from orchestration.graph import Edge, Graph, Node, NodeContext, NodeKind


async def work(i: int) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"node": i}


def chain_workflow(n: int) -> Workflow:
    namespace: dict[str, Any] = {}
    for i in range(n):

        async def method(self: Any, previous: Any = None, _i: int = i) -> dict[str, int]:
            return await work(_i)

        method.__name__ = f"s{i}"
        namespace[f"s{i}"] = step(method)

    def build(self: Any, flow: Flow) -> None:
        chain = flow.start(self.s0)
        for i in range(1, n):
            chain = chain.then(getattr(self, f"s{i}"))

    namespace["build"] = build
    flow: Workflow = type("Chain", (Workflow,), namespace)()
    return flow


def fanout_workflow(n: int) -> Workflow:
    namespace: dict[str, Any] = {}

    async def begin(self: Any, payload: Any = None) -> dict[str, int]:
        return await work(-1)

    async def join(self: Any, **inputs: Any) -> dict[str, int]:
        return await work(len(inputs))

    namespace["begin"] = step(begin)
    namespace["join"] = step(join)
    for i in range(n):

        async def part(self: Any, begin: Any, _i: int = i) -> dict[str, int]:
            return await work(_i)

        part.__name__ = f"p{i}"
        namespace[f"p{i}"] = step(part)

    def build(self: Any, flow: Flow) -> None:
        flow.start(self.begin).then([getattr(self, f"p{i}") for i in range(n)]).then(self.join)

    namespace["build"] = build
    flow: Workflow = type("FanOut", (Workflow,), namespace)()
    return flow


async def handler(ctx: NodeContext) -> dict[str, int]:
    return await work(0)


def chain_graph(n: int) -> Graph:
    nodes = [Node(id=f"s{i}") for i in range(n)]
    edges = [Edge(source=f"s{i - 1}", target=f"s{i}") for i in range(1, n)]
    return Graph(nodes=nodes, edges=edges, entry="s0")


def fanout_graph(n: int) -> Graph:
    nodes = [Node(id="begin"), *(Node(id=f"p{i}") for i in range(n)), Node(id="join", kind=NodeKind.TASK)]
    edges = [Edge(source="begin", target=f"p{i}") for i in range(n)]
    edges += [Edge(source=f"p{i}", target="join") for i in range(n)]
    return Graph(nodes=nodes, edges=edges, entry="begin")


async def baseline_chain(n: int) -> None:
    previous: Any = None
    for i in range(n):
        previous = await asyncio.create_task(work(i))
    assert previous == {"node": n - 1}


async def baseline_fanout(n: int) -> None:
    await work(-1)
    results = await asyncio.gather(*(work(i) for i in range(n)))
    await work(len(results))


def side(shape: str, name: str, n: int) -> Callable[[], Awaitable[Any]]:
    """One way to run ``shape`` at size ``n``, built here, outside the measured part."""
    if name == "workflow":
        workflow = chain_workflow(n) if shape == "chain" else fanout_workflow(n)
        workflow.graph()  # wire and check the flow once
        return lambda: workflow.run(store=MemoryStore())
    if name == "graph":
        graph = chain_graph(n) if shape == "chain" else fanout_graph(n)
        handlers = {node.id: handler for node in graph.nodes}
        return lambda: graph.run(handlers, store=MemoryStore())
    baseline = baseline_chain if shape == "chain" else baseline_fanout
    return lambda: baseline(n)


SIDES = ("workflow", "graph", "asyncio")


def timed(factory: Callable[[], Awaitable[Any]], rounds: int) -> float:
    """Best wall time of ``rounds`` runs, in seconds."""
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        asyncio.run(factory())  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - started)
    return best


def instructions(shape: str, name: str, n: int) -> float | None:
    """Instructions per step by callgrind: (I(3 runs) - I(1 run)) / (2 n)."""
    if shutil.which("valgrind") is None:
        return None
    counts = []
    for runs in (1, 3):
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "cg.out")
            subprocess.run(
                [
                    *("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"),
                    *(sys.executable, __file__, "--child", shape, name, str(n), str(runs)),
                ],
                check=True,
                capture_output=True,
            )
            text = Path(out).read_text(encoding="utf-8")
            match = re.search(r"^summary:\s+(\d+)", text, flags=re.M) or re.search(
                r"^totals:\s+(\d+)", text, re.M
            )
            assert match, "callgrind wrote no summary"
            counts.append(int(match.group(1)))
    return (counts[1] - counts[0]) / (2 * n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer rounds")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with callgrind")
    parser.add_argument("--child", nargs=4, metavar=("SHAPE", "SIDE", "N", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        shape, name, n, runs = args.child
        factory = side(shape, name, int(n))
        for _ in range(int(runs)):
            asyncio.run(factory())  # type: ignore[arg-type]
        return
    sizes = (100, 1000) if args.quick else (100, 1000, 5000)
    rounds = 3 if args.quick else 5
    print("per step, best of", rounds, "rounds, memory store")
    print(
        f"{'shape':8} {'N':>6} {'workflow us':>12} {'graph us':>10} {'asyncio us':>11} {'wf/graph':>9} {'wf/asyncio':>11}"
    )
    for shape in ("chain", "fanout"):
        for n in sizes:
            us = {name: timed(side(shape, name, n), rounds) / n * 1e6 for name in SIDES}
            print(
                f"{shape:8} {n:>6} {us['workflow']:>12.1f} {us['graph']:>10.1f} {us['asyncio']:>11.1f} "
                f"{us['workflow'] / us['graph']:>8.2f}x {us['workflow'] / us['asyncio']:>10.2f}x"
            )
    if args.instructions:
        print("instructions per step (callgrind, N=1000, (I(3 runs) - I(1 run)) / 2000)")
        for shape in ("chain", "fanout"):
            counted = {name: instructions(shape, name, 1000) for name in SIDES}
            if None in counted.values():
                print("valgrind is not installed")
                return
            wf, graph, base = (counted[s] or 0.0 for s in ("workflow", "graph", "asyncio"))
            print(
                f"{shape:8} workflow {wf:,.0f}  graph {graph:,.0f}  asyncio {base:,.0f}  "
                f"wf/graph {wf / graph:.2f}x  wf/asyncio {wf / base:.2f}x"
            )


if __name__ == "__main__":
    main()
