"""A process the crash tests kill: a 200-subtask run, counting provider calls.

``python -m tests.core.crash_worker STORE CALLS RUN_ID start|resume`` (STORE: a SQLite
path or a ``postgresql://`` URL, as ``--store`` takes) prints the final
result as JSON when it gets to the end.  Every provider call appends a line to CALLS
before it answers, so calls are counted even when the process dies right after.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from orchestration import AgentResult, BaseOrchestrator, CompletionRequest, OrchestratorConfig, SubTask
from orchestration.llm import Completion
from orchestration.scripted import ScriptedProvider
from orchestration.stores import open_store

SUBTASKS = 200
CONCURRENCY = 8


class CountingProvider(ScriptedProvider):
    """Echo replies after a short wait; each call is appended to a file first."""

    def __init__(self, calls_file: str) -> None:
        latency = float(os.environ.get("CRASH_WORKER_LATENCY", "0.004"))
        super().__init__(latency=latency, count_tokens=False)
        self.calls_file = calls_file

    async def complete(self, request: CompletionRequest) -> Completion:
        completion = await super().complete(request)
        fd = os.open(self.calls_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"call\n")
        finally:
            os.close(fd)
        return completion


class Wide(BaseOrchestrator):
    """200 subtasks in 4 layers of 50 (each depends on one of the layer before), one synthesis."""

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        subtasks = []
        for i in range(SUBTASKS):
            layer, slot = divmod(i, 50)
            deps = [f"t{(layer - 1) * 50 + slot}"] if layer else []
            subtasks.append(SubTask(id=f"t{i}", description=f"item {i}", dependencies=deps))
        return subtasks

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        before = " ".join(r.content[-12:] for r in (context or {})["dependency_results"].values())
        return (await self.call_llm(f"{subtask.description} after [{before}]")).content

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return (await self.call_llm(f"combine {len(agent_results)} results")).content


async def main(store: str, calls: str, run_id: str, mode: str) -> None:
    lease = float(os.environ.get("CRASH_WORKER_LEASE", "1.0"))
    config = OrchestratorConfig(max_concurrent_agents=CONCURRENCY, lease_seconds=lease, max_retries=0)
    # The class as ``tests.core.crash_worker:Wide`` (not ``__main__``), so the CLI can resume it.
    from tests.core.crash_worker import Wide as Importable

    orchestrator = Importable(config, CountingProvider(calls), store=open_store(store))
    if mode == "start":
        result = await orchestrator.execute_workflow("crash test", run_id=run_id)
    else:
        result = await orchestrator.resume(run_id, wait=True)
    print(json.dumps(result.to_dict()))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
