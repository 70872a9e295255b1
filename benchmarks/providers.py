"""Benchmark: the OpenAI adapter against raw httpx, same server, same run; plain answers
and tool-call answers.

1000 chat calls at concurrency 100 against the fake vendor (tests/providers/fakevendor.py),
which runs in its own process on 127.0.0.1 so that its CPU is not billed to the client.
Four paths, each with one pooled ``httpx.AsyncClient`` and the same limits:

- ``raw text`` / ``adapter text``: a plain answer; the raw path posts the same JSON and
  reads content and usage from the answer by hand;
- ``raw tools`` / ``adapter tools``: the request offers two tools and the answer holds two
  parallel tool calls; the raw path reads each call's id, name and ``json.loads`` of its
  arguments by hand, the adapter builds ``ToolCall`` objects (its tool-call parsing).

Rounds come in groups (every path once, the order rotating) until ``--rounds`` groups or
the time budget is used; the best round of each path is compared (the least disturbed by
other work on the machine), and the median of the per-group ratios is printed beside it.

Targets: the adapter costs at most 10% more wall time than raw httpx; tool-call parsing
adds at most 5% to a provider call: the tools ratio is at most the text ratio + 0.05.
Loopback wall time on a busy machine is noisy, so two quieter views follow: the same
comparison over ``httpx.MockTransport`` (no sockets, no server: the adapter's own cost),
and, with ``--instructions``, client instructions per call counted by callgrind over
loopback, where what the adapter adds for tool calls (beyond what the raw path does for
them) is printed as a share of a raw tool call.

Run: ``.venv/bin/python benchmarks/providers.py`` (options: ``--calls``, ``--concurrency``,
``--rounds``, ``--budget``, ``--instructions``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "providers"))

from fakevendor import BENCH_TOOL_CALLS  # noqa: E402

from orchestration.llm import CompletionRequest, ToolSpec  # noqa: E402
from providers._http import DEFAULT_LIMITS, DEFAULT_TIMEOUT  # noqa: E402
from providers.openai import OpenAIProvider  # noqa: E402

FAKEVENDOR = ROOT / "tests" / "providers" / "fakevendor.py"
KEY = "sk-bench-0000000000000000"
MESSAGES = [
    {"role": "system", "content": "You are a concise research assistant."},
    {"role": "user", "content": "Summarise the trade-offs of retrying LLM calls in one sentence."},
]
TOOLS = (
    ToolSpec(
        "weather",
        "The weather forecast for a city.",
        {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 1},
                "units": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    ),
    ToolSpec(
        "local_time",
        "The local time in a city.",
        {
            "type": "object",
            "properties": {"city": {"type": "string"}, "format": {"type": "string"}},
            "required": ["city"],
        },
    ),
)
CANNED_TEXT = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "An answer."}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33},
}
CANNED_TOOLS = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
                    }
                    for call in BENCH_TOOL_CALLS
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160},
}
PATHS = ("raw text", "adapter text", "raw tools", "adapter tools")


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
    canned = CANNED_TOOLS if b'"tools"' in request.content else CANNED_TEXT
    return httpx.Response(200, json=canned, headers={"x-request-id": "req_bench"})


class Paths:
    """The four ways to make a call, sharing nothing but the server."""

    def __init__(self, base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.provider = OpenAIProvider(
            "gpt-4o-mini", api_key=KEY, base_url=base_url, limits=DEFAULT_LIMITS, transport=transport
        )
        self.raw = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=DEFAULT_TIMEOUT,
            limits=DEFAULT_LIMITS,
            transport=transport,
        )
        self.text_request = CompletionRequest(messages=MESSAGES, max_tokens=64, temperature=0.0)
        self.tools_request = CompletionRequest(messages=MESSAGES, max_tokens=64, temperature=0.0, tools=TOOLS)
        self.text_payload = {
            "model": "gpt-4o-mini",
            "messages": MESSAGES,
            "max_tokens": 64,
            "temperature": 0.0,
        }
        self.tools_payload = {**self.text_payload, "tools": [tool.to_openai() for tool in TOOLS]}
        self.calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "raw text": self.raw_text,
            "adapter text": self.adapter_text,
            "raw tools": self.raw_tools,
            "adapter tools": self.adapter_tools,
        }

    async def raw_text(self) -> tuple[str, int]:
        response = await self.raw.post("/chat/completions", json=self.text_payload)
        response.raise_for_status()
        data = response.json()
        return data["choices"][0]["message"]["content"], data["usage"]["total_tokens"]

    async def adapter_text(self) -> tuple[str, int]:
        completion = await self.provider.complete(self.text_request)
        return completion.content, completion.usage.total_tokens

    async def raw_tools(self) -> tuple[list[tuple[str, str, Any]], int]:
        response = await self.raw.post("/chat/completions", json=self.tools_payload)
        response.raise_for_status()
        data = response.json()
        calls = [
            (call["id"], call["function"]["name"], json.loads(call["function"]["arguments"]))
            for call in data["choices"][0]["message"]["tool_calls"]
        ]
        return calls, data["usage"]["total_tokens"]

    async def adapter_tools(self) -> tuple[list[tuple[str, str, Any]], int]:
        completion = await self.provider.complete(self.tools_request)
        calls = [(call.id, call.name, call.arguments) for call in completion.tool_calls]
        return calls, completion.usage.total_tokens

    async def check(self) -> None:
        """Both sides of each workload do the same work and get the same answer."""
        assert await self.raw_text() == await self.adapter_text()
        tools = await self.raw_tools()
        assert tools == await self.adapter_tools() and len(tools[0]) == 2
        assert self.provider._payload(self.tools_request, "gpt-4o-mini", False) == self.tools_payload

    async def aclose(self) -> None:
        await self.raw.aclose()
        await self.provider.aclose()


async def benchmark(
    base_url: str,
    calls: int,
    concurrency: int,
    rounds: int,
    budget: float = 25.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, list[Round]]:
    """Groups of rounds, every path once per group (order rotating); every round by path."""
    paths = Paths(base_url, transport)
    results: dict[str, list[Round]] = {name: [] for name in PATHS}
    try:
        await paths.check()
        for name in PATHS:  # warm the pools and the server
            await run_batch(paths.calls[name], calls // 4, concurrency)
        started = time.perf_counter()
        for group in range(rounds):
            order = PATHS[group % 4 :] + PATHS[: group % 4]
            for name in order:
                results[name].append(await run_batch(paths.calls[name], calls, concurrency))
            if group >= 1 and time.perf_counter() - started > budget:
                break
    finally:
        await paths.aclose()
    return results


def report(title: str, results: dict[str, list[Round]], calls: int) -> None:
    """Print one comparison: best and median rounds, throughput, and the ratios."""
    groups = len(results["adapter text"])
    print(f"{title}: {groups} groups of rounds")
    print(f"  {'path':<14} {'best wall s':>11} {'median s':>9} {'calls/s':>9} {'client CPU ms/call':>19}")
    best: dict[str, Round] = {}
    for name, rounds in results.items():
        best[name] = min(rounds, key=lambda r: r.wall)
        median = statistics.median(r.wall for r in rounds)
        cpu = min(r.cpu for r in rounds) / calls * 1000
        print(
            f"  {name:<14} {best[name].wall:>11.3f} {median:>9.3f} {calls / best[name].wall:>9.0f} {cpu:>19.3f}"
        )
    ratios = {}
    for kind in ("text", "tools"):
        adapter, raw = results[f"adapter {kind}"], results[f"raw {kind}"]
        ratio = best[f"adapter {kind}"].wall / best[f"raw {kind}"].wall
        paired = statistics.median(a.wall / r.wall for a, r in zip(adapter, raw, strict=True))
        cpu_ratio = min(r.cpu for r in adapter) / min(r.cpu for r in raw)
        ratios[kind] = ratio
        verdict = "within" if ratio <= 1.10 else "OVER"
        print(
            f"  {kind:<5} adapter / raw wall time, best rounds: {ratio:.3f} ({verdict} the 1.10 target); "
            f"median of groups: {paired:.3f}; client CPU, best rounds: {cpu_ratio:.3f}"
        )
    added = ratios["tools"] - ratios["text"]
    verdict = "within" if added <= 0.05 else "OVER"
    print(f"  tool-call parsing adds {added:+.3f} to the adapter/raw ratio ({verdict} the +0.05 target)")


# -- instructions (callgrind) ---------------------------------------------------------------


async def child(base_url: str, name: str, calls: int) -> None:
    """Make ``calls`` sequential calls on one path (run under callgrind by the parent)."""
    paths = Paths(base_url)
    try:
        await paths.check()  # warm: imports, the connection, the tokenizer-free path
        call = paths.calls[name]
        for _ in range(calls):
            await call()
    finally:
        await paths.aclose()


def instructions(base_url: str, name: str, low: int = 20, high: int = 80) -> float | None:
    """Client instructions per call on ``name`` over loopback: (I(high) - I(low)) / (high - low)."""
    if shutil.which("valgrind") is None:
        return None
    counts = []
    for calls in (low, high):
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "cg.out")
            done = subprocess.run(
                [
                    *("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"),
                    *(sys.executable, __file__, "--child", base_url, name, str(calls)),
                ],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise SystemExit(f"the callgrind child for {name!r} failed:\n{done.stderr[-3000:]}")
            text = Path(out).read_text(encoding="utf-8")
            match = re.search(r"^summary:\s+(\d+)", text, flags=re.M) or re.search(
                r"^totals:\s+(\d+)", text, re.M
            )
            assert match, "callgrind wrote no summary"
            counts.append(int(match.group(1)))
    return (counts[1] - counts[0]) / (high - low)


def report_instructions(base_url: str) -> None:
    counts = {name: instructions(base_url, name) for name in PATHS}
    if any(count is None for count in counts.values()):
        print("instructions: valgrind is not installed")
        return
    got: dict[str, float] = {name: count for name, count in counts.items() if count is not None}
    print("client instructions per call (callgrind, loopback, sequential calls)")
    for name in PATHS:
        print(f"  {name:<14} {got[name]:>12,.0f}")
    for kind in ("text", "tools"):
        print(f"  {kind:<5} adapter / raw: {got[f'adapter {kind}'] / got[f'raw {kind}']:.3f}")
    added = (got["adapter tools"] - got["adapter text"]) - (got["raw tools"] - got["raw text"])
    share = added / got["raw tools"]
    verdict = "within" if share <= 0.05 else "OVER"
    print(
        f"  tool calls cost the adapter {added:+,.0f} instructions more than they cost raw httpx: "
        f"{share:+.1%} of a raw tool call ({verdict} the 5% target)"
    )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print throughput and ratios."""
    parser = argparse.ArgumentParser(
        description="OpenAI adapter vs raw httpx on loopback, text and tool calls"
    )
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="groups of rounds at most")
    parser.add_argument("--budget", type=float, default=25.0, help="seconds after which no new group starts")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with callgrind")
    parser.add_argument("--child", nargs=3, metavar=("URL", "PATH", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        url, name, calls = args.child
        asyncio.run(child(url, name, int(calls)))
        return
    print(f"{args.calls} chat calls per round, concurrency {args.concurrency}")
    process, base_url = start_server()
    try:
        loopback = asyncio.run(benchmark(base_url, args.calls, args.concurrency, args.rounds, args.budget))
        report("loopback (fake vendor in its own process)", loopback, args.calls)
        if args.instructions:
            report_instructions(base_url)
    finally:
        process.terminate()
        process.wait(timeout=10)
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
