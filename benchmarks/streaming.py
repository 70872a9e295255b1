"""SSE fan-out: one run of ~2000 events streamed to 100 clients on loopback.

The server (uvicorn + the framework's app, in-memory store) runs in this process; the
100 SSE clients run in a child process (httpx, one connection each), so client parsing
does not share the server's event loop.  All clients connect first, then the run is
released and emits its events as fast as it can.  Printed: events delivered per second
across all clients (total deliveries / time from release to the last client's final
event), per-client throughput, the server's peak memory allocated during the run
(tracemalloc, in a second pass since tracing slows Python down) and the peak RSS of both
processes; then the same fan-out as plain asyncio queues in one process
(the baseline: no HTTP, no framing) and the ratio.  Each client checks that it received
every ``id`` exactly once, in order.

Run: ``python benchmarks/streaming.py [--clients 100] [--events 2000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestration import (
    AgentResult,
    BaseOrchestrator,
    MemoryStore,
    OrchestratorConfig,
    ScriptedProvider,
    SubTask,
)
from orchestration.events import EventType
from orchestration.server.runs import RunRequest

TOKEN = "benchmark-token-0123456789"
SUBTASKS = 4


class Emitter(BaseOrchestrator):
    """Emits ``per_agent`` token deltas from each of 4 agents once the gate opens (no model calls)."""

    def __init__(self, *args: Any, per_agent: int, gate: asyncio.Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.per_agent = per_agent
        self.gate = gate

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        await self.gate.wait()
        return [SubTask(id=f"s{i}", description=f"stream part {i}") for i in range(SUBTASKS)]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        for n in range(self.per_agent):
            self.emit_event(EventType.TOKEN_DELTA, {"delta": f"token {n} of {subtask.id}\n\n"})
            if n % 50 == 0:
                await asyncio.sleep(0)
        return AgentResult(f"agent-{subtask.id}", "worker", subtask.id, "done")

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return "all parts streamed"


async def _client_main(url: str, clients: int, ready: Any, results: Any) -> None:
    import httpx

    async def one(client: httpx.AsyncClient) -> tuple[int, float, bool]:
        expected = 1
        in_order = True
        async with client.stream("GET", url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            ready.put(1)
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    in_order &= int(line[4:]) == expected
                    expected += 1
                elif line.startswith("event: workflow_") and line != "event: workflow_start":
                    break
        return expected - 1, time.monotonic(), in_order

    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(timeout=httpx.Timeout(120.0), limits=limits) as client:
        outcome = await asyncio.gather(*(one(client) for _ in range(clients)))
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results.put((outcome, usage))


def _client_process(url: str, clients: int, ready: Any, results: Any) -> None:
    asyncio.run(_client_main(url, clients, ready, results))


async def served(clients: int, events: int, *, trace: bool = False) -> dict[str, float]:
    import uvicorn

    from orchestration.server import create_app

    gate = asyncio.Event()
    per_agent = max(1, (events - 16) // SUBTASKS)
    store = MemoryStore()

    def factory(request: Any, run_store: Any) -> Emitter:
        config = OrchestratorConfig(max_retries=0)
        return Emitter(config, ScriptedProvider(), store=run_store, per_agent=per_agent, gate=gate)

    app = create_app(factory, store, TOKEN)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    run_id = app.state.runs.start(RunRequest("bench", "stream 2000 events"))

    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    process = context.Process(
        target=_client_process, args=(f"{base}/runs/{run_id}/events", clients, ready, results)
    )
    process.start()
    loop = asyncio.get_running_loop()
    for _ in range(clients):
        await loop.run_in_executor(None, ready.get)
    while app.state.broadcaster.subscriber_count(run_id) < clients:  # noqa: ASYNC110 - a count, no event
        await asyncio.sleep(0.01)

    if trace:
        tracemalloc.start()
    started = time.monotonic()
    gate.set()
    await app.state.runs.wait(run_id)
    outcome, client_rss = await loop.run_in_executor(None, results.get)
    peak = 0
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    process.join()
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await serving

    total = len(await store.events(run_id))
    counts = [count for count, _, _ in outcome]
    assert all(count == total for count in counts), (total, sorted(set(counts)))
    assert all(in_order for _, _, in_order in outcome)
    finished = max(at for _, at, _ in outcome)
    elapsed = finished - started
    return {
        "events": total,
        "elapsed": elapsed,
        "delivered_per_s": total * clients / elapsed,
        "per_client_per_s": total / elapsed,
        "server_peak_traced_mb": peak / 2**20,
        "server_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "client_rss_mb": client_rss / 1024,
    }


async def baseline(clients: int, events: int) -> float:
    """The same fan-out with plain asyncio queues: one producer, ``clients`` consumers."""
    queues: list[asyncio.Queue[str | None]] = [asyncio.Queue() for _ in range(clients)]

    async def consume(queue: asyncio.Queue[str | None]) -> int:
        received = 0
        while await queue.get() is not None:
            received += 1
        return received

    consumers = [asyncio.create_task(consume(q)) for q in queues]
    started = time.monotonic()
    for n in range(events):
        item = f'{{"seq": {n + 1}, "data": {{"delta": "token {n}"}}}}'
        for queue in queues:
            queue.put_nowait(item)
        if n % 50 == 0:
            await asyncio.sleep(0)
    for queue in queues:
        queue.put_nowait(None)
    received = await asyncio.gather(*consumers)
    elapsed = time.monotonic() - started
    assert all(r == events for r in received)
    return events * clients / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    numbers = asyncio.run(served(args.clients, args.events))
    traced = asyncio.run(served(args.clients, args.events, trace=True))  # tracemalloc slows it: own pass
    plain = asyncio.run(baseline(args.clients, int(numbers["events"])))
    print(f"SSE fan-out: {int(numbers['events'])} events x {args.clients} clients on loopback")
    print(f"  delivered          {numbers['delivered_per_s']:>12,.0f} events/s  ({numbers['elapsed']:.2f} s)")
    print(f"  per client         {numbers['per_client_per_s']:>12,.0f} events/s")
    print(
        f"  server peak traced {traced['server_peak_traced_mb']:>12.1f} MB allocated during the run (tracemalloc)"
    )
    print(f"  server peak RSS    {numbers['server_rss_mb']:>12.1f} MB")
    print(f"  clients peak RSS   {numbers['client_rss_mb']:>12.1f} MB (100 httpx streams, separate process)")
    print(f"baseline (asyncio queues, no HTTP): {plain:,.0f} events/s")
    print(f"ratio SSE / baseline: {numbers['delivered_per_s'] / plain:.3f}")


if __name__ == "__main__":
    main()
