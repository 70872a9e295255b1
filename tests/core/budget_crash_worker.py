"""A process the budget crash test kills: a capped run on SQLite against a billing "vendor".

``python -m tests.core.budget_crash_worker DB LEDGER RUN_ID start|resume`` prints
``received`` on stdout each time the vendor receives a call (after it has billed it, by
appending the call's cost to LEDGER), then the final result as JSON on the last line.
A call is billed when it is received, as a vendor does, so a call in flight when the
process dies is paid for even though the run never sees its answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from orchestration import (
    AgentResult,
    BaseOrchestrator,
    CompletionRequest,
    ModelPrice,
    OrchestratorConfig,
    PriceTable,
    SubTask,
)
from orchestration.llm import Completion, Provider
from orchestration.stores import SQLiteStore
from orchestration.tokens import count_message_tokens
from orchestration.usage import Usage

SUBTASKS = 60
CONCURRENCY = 8
MAX_TOKENS = 10
CAP = 0.5
#: $0.001 a token: a call costs about $0.025, exactly its worst case (it uses all of max_tokens).
PRICES = PriceTable({"vendor-model": ModelPrice(1000.0, 1000.0)})


class Vendor(Provider):
    """Bills every call on receipt, answers after ``latency`` seconds with all of max_tokens."""

    name = "vendor"

    def __init__(self, ledger: str, latency: float) -> None:
        self.ledger = ledger
        self.latency = latency

    async def complete(self, request: CompletionRequest) -> Completion:
        prompt = count_message_tokens(request.messages, request.model).tokens
        usage = Usage(input_tokens=prompt, output_tokens=request.max_tokens or 0, calls=1)
        cost = PRICES.cost(request.model, usage)
        fd = os.open(self.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{cost!r}\n".encode())
        finally:
            os.close(fd)
        print("received", flush=True)
        await asyncio.sleep(self.latency)
        return Completion(content=f"answer to {request.prompt_text}", usage=usage, model=request.model)


class Many(BaseOrchestrator):
    """``SUBTASKS`` independent subtasks of one model call each, one synthesis call."""

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [SubTask(id=f"t{i}", description=f"item {i}") for i in range(SUBTASKS)]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        return (await self.call_llm(subtask.description)).content

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return (await self.call_llm(f"combine {len(agent_results)} results")).content


async def main(db: str, ledger: str, run_id: str, mode: str) -> None:
    config = OrchestratorConfig(
        primary_model="vendor-model",
        max_tokens=MAX_TOKENS,
        max_total_cost=CAP,
        max_concurrent_agents=CONCURRENCY,
        lease_seconds=1.0,
        max_retries=0,
    )
    latency = float(os.environ.get("BUDGET_WORKER_LATENCY", "0.3"))
    orchestrator = Many(config, Vendor(ledger, latency), store=SQLiteStore(db), prices=PRICES)
    if mode == "start":
        result = await orchestrator.execute_workflow("budget crash test", run_id=run_id)
    else:
        result = await orchestrator.resume(run_id, wait=True)
    print(json.dumps(result.to_dict()), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
