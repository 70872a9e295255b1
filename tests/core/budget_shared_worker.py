"""A process of the shared-budget tests: one run of tenant ``acme`` against a billing "vendor".

``python -m tests.core.budget_shared_worker STORE LEDGER RUN_ID`` (STORE: a SQLite path or
a ``postgresql://`` URL) runs ``SUBTASKS`` subtasks of one model call each under a tenant
guardrail ``sum(cost_usd) > CAP`` (``reject_execution``: a call the tenant's budget cannot
fit fails its subtask, the others go on).  The vendor bills each call when it receives
it (appending its cost to LEDGER) and prints ``received``; the final result is printed as
JSON on the last line.  Settings come from the environment (see ``main``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from orchestration import AgentResult, BaseOrchestrator, CompletionRequest, OrchestratorConfig, SubTask
from orchestration.guardrails import Guardrails
from orchestration.llm import Completion, Provider
from orchestration.stores import open_store
from orchestration.tokens import count_message_tokens
from orchestration.usage import Usage

from .budget_crash_worker import PRICES

CAP = 0.3
MAX_TOKENS = 10
POLICY = f"policies:\n  - name: tenant budget\n    when: sum(cost_usd) > {CAP}\n    scope: tenant\n    action: reject_execution\n"


class Vendor(Provider):
    """Bills a call on receipt; answers after ``latency`` seconds with ``used`` of max_tokens."""

    name = "vendor"

    def __init__(self, ledger: str, latency: float, used: float) -> None:
        self.ledger, self.latency, self.used = ledger, latency, used

    async def complete(self, request: CompletionRequest) -> Completion:
        prompt = count_message_tokens(request.messages, request.model).tokens
        usage = Usage(
            input_tokens=prompt, output_tokens=round((request.max_tokens or 0) * self.used), calls=1
        )
        cost = PRICES.cost(request.model, usage)
        fd = os.open(self.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{cost!r}\n".encode())
        finally:
            os.close(fd)
        print("received", flush=True)
        await asyncio.sleep(self.latency)
        return Completion(content="ok", usage=usage, model=request.model)


class Many(BaseOrchestrator):
    """``subtasks`` independent subtasks of one model call each; the synthesis makes no call."""

    subtasks = 20

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [SubTask(id=f"t{i}", description=f"item {i} of {task}") for i in range(self.subtasks)]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        return (await self.call_llm(subtask.description)).content

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return f"{len(agent_results)} results"


async def main(where: str, ledger: str, run_id: str) -> None:
    env = os.environ.get
    config = OrchestratorConfig(
        primary_model="vendor-model",
        max_tokens=MAX_TOKENS,
        max_concurrent_agents=int(env("SHARED_WORKER_CONCURRENCY", "8")),
        lease_seconds=float(env("SHARED_WORKER_LEASE", "30")),
        max_retries=0,
    )
    vendor = Vendor(
        ledger, float(env("SHARED_WORKER_LATENCY", "0.05")), float(env("SHARED_WORKER_USED", "0.5"))
    )
    orchestrator = Many(
        config,
        vendor,
        store=open_store(where),
        prices=PRICES,
        guardrails=Guardrails.load(POLICY),
        labels={"tenant": "acme"},
    )
    orchestrator.subtasks = int(env("SHARED_WORKER_SUBTASKS", "20"))
    result = await orchestrator.execute_workflow("shared budget test", run_id=run_id)
    await orchestrator.store.close()
    print(json.dumps(result.to_dict()), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
