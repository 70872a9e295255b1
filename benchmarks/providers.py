"""Benchmark: the OpenAI adapter against raw httpx, same server, same run.

1000 chat calls at concurrency 100 against the fake vendor (tests/providers/fakevendor.py),
which runs in its own process on 127.0.0.1 so that its CPU is not billed to the client.
Both paths use one pooled ``httpx.AsyncClient`` with the same limits; the raw path posts
the same JSON and reads content and usage from the answer by hand.  Rounds come in
pairs (raw then adapter, adapter then raw, ...) until ``--rounds`` pairs or the time
budget is used; the best round of each path is compared (the least disturbed by other
work on the machine), and the median of the per-pair ratios is printed beside it.

A second comparison runs both paths over ``httpx.MockTransport`` (no sockets, no server),
which isolates the adapter's own cost from the noise of the network stack.

Run: ``.venv/bin/python benchmarks/providers.py`` (options: ``--calls``, ``--concurrency``,
``--rounds``, ``--budget``).  Target: the adapter costs at most 10% more wall time than
raw httpx.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestration.llm import CompletionRequest  # noqa: E402
from providers._http import DEFAULT_LIMITS, DEFAULT_TIMEOUT  # noqa: E402
from providers.openai import OpenAIProvider  # noqa: E402

FAKEVENDOR = ROOT / "tests" / "providers" / "fakevendor.py"
KEY = "sk-bench-0000000000000000"
CANNED = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "An answer."}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33},
}
MESSAGES = [
    {"role": "system", "content": "You are a concise research assistant."},
    {"role": "user", "content": "Summarise the trade-offs of retrying LLM calls in one sentence."},
]


@dataclass
class Round:
    """One timed batch of calls."""

    wall: float
    cpu: float
    calls: int


async def run_batch(call: Callable[[], Awaitable[Any]], calls: int, concurrency: int) -> Round:
    """``calls`` calls, at most ``concurrency`` in flight (workers pull from a shared counter)."""
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    cpu, wall = time.process_time(), time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return Round(time.perf_counter() - wall, time.process_time() - cpu, calls)


def start_server() -> tuple[subprocess.Popen[str], str]:
    """The fake vendor in a child process; returns it and its base URL."""
    process = subprocess.Popen(
        [sys.executable, str(FAKEVENDOR)], stdout=subprocess.PIPE, text=True, cwd=str(ROOT)
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("PORT "):
        process.kill()
        raise SystemExit(f"the fake vendor did not start: {line!r}")
    return process, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def canned_answer(request: httpx.Request) -> httpx.Response:
    """What the fake vendor answers, without a socket (for the in-process comparison)."""
    return httpx.Response(200, json=CANNED, headers={"x-request-id": "req_bench"})


async def benchmark(
    base_url: str,
    calls: int,
    concurrency: int,
    rounds: int,
    budget: float = 25.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, list[Round]]:
    """Pairs of raw and adapter rounds (order alternating); return every round by path."""
    provider = OpenAIProvider(
        "gpt-4o-mini", api_key=KEY, base_url=base_url, limits=DEFAULT_LIMITS, transport=transport
    )
    request = CompletionRequest(messages=MESSAGES, max_tokens=64, temperature=0.0)
    raw = httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=DEFAULT_TIMEOUT,
        limits=DEFAULT_LIMITS,
        transport=transport,
    )
    payload = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 64, "temperature": 0.0}

    async def raw_call() -> tuple[str, int]:
        response = await raw.post("/chat/completions", json=payload)
        response.raise_for_status()
        data = response.json()
        return data["choices"][0]["message"]["content"], data["usage"]["total_tokens"]

    async def adapter_call() -> tuple[str, int]:
        completion = await provider.complete(request)
        return completion.content, completion.usage.total_tokens

    assert await raw_call() == await adapter_call()  # same work on both paths
    results: dict[str, list[Round]] = {"raw httpx": [], "adapter": []}
    try:
        await run_batch(raw_call, calls // 2, concurrency)  # warm the pools and the server
        await run_batch(adapter_call, calls // 2, concurrency)
        started = time.perf_counter()
        for pair in range(rounds):
            order = [("raw httpx", raw_call), ("adapter", adapter_call)]
            for name, call in order if pair % 2 == 0 else order[::-1]:
                results[name].append(await run_batch(call, calls, concurrency))
            if pair >= 1 and time.perf_counter() - started > budget:
                break
    finally:
        await raw.aclose()
        await provider.aclose()
    return results


def report(title: str, results: dict[str, list[Round]], calls: int) -> None:
    """Print one comparison: best and median rounds, throughput, and the ratios."""
    pairs = len(results["adapter"])
    print(f"{title}: {pairs} pairs of rounds")
    print(f"  {'path':<10} {'best wall s':>11} {'median s':>9} {'calls/s':>9} {'client CPU ms/call':>19}")
    best: dict[str, Round] = {}
    for name, rounds in results.items():
        best[name] = min(rounds, key=lambda r: r.wall)
        median = statistics.median(r.wall for r in rounds)
        cpu = min(r.cpu for r in rounds) / calls * 1000
        print(
            f"  {name:<10} {best[name].wall:>11.3f} {median:>9.3f} {calls / best[name].wall:>9.0f} {cpu:>19.3f}"
        )
    ratio = best["adapter"].wall / best["raw httpx"].wall
    paired = statistics.median(
        a.wall / r.wall for a, r in zip(results["adapter"], results["raw httpx"], strict=True)
    )
    cpu_ratio = min(r.cpu for r in results["adapter"]) / min(r.cpu for r in results["raw httpx"])
    verdict = "within" if ratio <= 1.10 else "OVER"
    print(f"  adapter / raw wall time, best rounds: {ratio:.3f} ({verdict} the 1.10 target)")
    print(
        f"  adapter / raw wall time, median of pairs: {paired:.3f}; client CPU, best rounds: {cpu_ratio:.3f}"
    )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print throughput and ratios."""
    parser = argparse.ArgumentParser(description="OpenAI adapter vs raw httpx on loopback")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="pairs of rounds at most")
    parser.add_argument("--budget", type=float, default=25.0, help="seconds after which no new pair starts")
    args = parser.parse_args(argv)
    print(f"{args.calls} chat calls per round, concurrency {args.concurrency}")
    process, base_url = start_server()
    try:
        loopback = asyncio.run(benchmark(base_url, args.calls, args.concurrency, args.rounds, args.budget))
    finally:
        process.terminate()
        process.wait(timeout=10)
    report("loopback (fake vendor in its own process)", loopback, args.calls)
    # The same comparison without sockets or a server isolates the adapter's own cost.
    in_process = asyncio.run(
        benchmark(
            base_url,
            args.calls,
            args.concurrency,
            args.rounds,
            args.budget,
            httpx.MockTransport(canned_answer),
        )
    )
    report("in-process (httpx.MockTransport, no sockets)", in_process, args.calls)


if __name__ == "__main__":
    main()
