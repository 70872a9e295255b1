"""A small real orchestrator for streaming, server and report tests (ScriptedProvider, offline)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from orchestration import AgentResult, AgentType, BaseOrchestrator, OrchestratorConfig, SubTask, TaskStatus
from orchestration.llm import CompletionRequest
from orchestration.scripted import ScriptedProvider
from orchestration.stores.base import RunStore

#: LLM text that is hostile to every markup boundary: SSE framing, HTML, reportlab markup.
NASTY = (
    "Line one\n\n\nevent: fake\ndata: injected\nid: 999\n\n"
    "<script>window.__pwned = true</script><img src=x onerror=alert(1)> "
    "R&D <b>unclosed — Καλημέρα 你好 \u2028 \r\n done"
)

PLAN = [
    SubTask(id="research", description="Gather background & sources", agent_type=AgentType.RESEARCHER),
    SubTask(
        id="analysis",
        description="Analyse the findings",
        agent_type=AgentType.ANALYST,
        dependencies=["research"],
    ),
    SubTask(
        id="critique",
        description="Critique <the> analysis",
        agent_type=AgentType.REVIEWER,
        dependencies=["research"],
    ),
    SubTask(
        id="summary",
        description="Summarise",
        agent_type=AgentType.WRITER,
        dependencies=["analysis", "critique"],
    ),
]


def replies(request: CompletionRequest) -> str:
    """Scripted answers: the synthesis and the critique carry hostile text."""
    prompt = request.prompt_text
    if "Synthesise" in prompt:
        return "## Final synthesis\n\nAll agents agree. " + NASTY
    if "Critique" in prompt:
        return "Critique: " + NASTY
    return f"Findings for: {prompt[:60]} — three points, with sources."


class DemoOrchestrator(BaseOrchestrator):
    """Four subtasks in a diamond; every model call streams, so token_delta events flow."""

    name = "demo"

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        provider: Any = None,
        *,
        store: RunStore | None = None,
        plan: list[SubTask] | None = None,
        delay: float = 0.0,
        gate: asyncio.Event | None = None,
        fail: Callable[[SubTask], bool] | None = None,
    ) -> None:
        super().__init__(
            config or OrchestratorConfig(max_retries=0),
            provider
            if provider is not None
            else ScriptedProvider(replies, latency=delay, count_tokens=False),
            store=store,
        )
        self.plan = plan or PLAN
        self.gate = gate
        self.fail = fail

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return list(self.plan)

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        if self.gate is not None and subtask.dependencies:
            await self.gate.wait()  # lets a test act mid-run
        if self.fail is not None and self.fail(subtask):
            raise RuntimeError(f"{subtask.id} failed on purpose")
        completion = await self.call_llm(f"{subtask.description}\nTask: {subtask.id}", stream=True)
        return AgentResult(
            agent_id=f"agent-{subtask.id}",
            agent_type=subtask.agent_type,
            subtask_id=subtask.id,
            content=completion.content,
            status=TaskStatus.COMPLETED,
        )

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        joined = "\n".join(r.content for r in agent_results)
        completion = await self.call_llm(f"Synthesise these findings:\n{joined}", stream=True)
        return completion.content
