"""``agent_progress`` events arrive while an agent's streamed answer is still coming in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from orchestration import (
    AgentResult,
    BaseOrchestrator,
    CompletionChunk,
    CompletionRequest,
    EventType,
    MemoryStore,
    OrchestratorConfig,
    ScriptedProvider,
    StreamEvent,
    SubTask,
    TaskStatus,
)

WORDS = [f"word{i} " for i in range(25)]


class HeldStream(ScriptedProvider):
    """Streams 25 chunks, but only the first until ``go`` is set."""

    def __init__(self) -> None:
        super().__init__("".join(WORDS))
        self.go = asyncio.Event()

    async def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        completion = await self.complete(request)
        for index, word in enumerate(WORDS):
            if index == 1:
                await self.go.wait()  # the rest waits for the first progress event to be seen
            yield CompletionChunk(delta=word, model=completion.model)
        yield CompletionChunk(usage=completion.usage, finish_reason="stop", model=completion.model)


class OneStreamingAgent(BaseOrchestrator):
    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [SubTask(id="write", description=task)]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        return (await self.call_llm(subtask.description, stream=True)).content

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return agent_results[0].content


def test_agent_progress_is_emitted_as_streamed_chunks_arrive() -> None:
    provider = HeldStream()
    seen: list[StreamEvent] = []

    async def callback(event: StreamEvent) -> None:
        seen.append(event)
        if event.event_type is EventType.AGENT_PROGRESS:
            provider.go.set()

    async def main() -> Any:
        orchestrator = OneStreamingAgent(OrchestratorConfig(), provider, store=MemoryStore())
        async with asyncio.timeout(30):  # without a progress event mid-stream the run would hang here
            return await orchestrator.execute_workflow("Write", stream_callback=callback)

    result = asyncio.run(main())
    assert result.status is TaskStatus.COMPLETED
    progress = [e for e in seen if e.event_type is EventType.AGENT_PROGRESS]
    assert [e.data["chunks"] for e in progress] == [1, 11, 21]
    assert [e.data["chars"] for e in progress] == [len("".join(WORDS[:n])) for n in (1, 11, 21)]
    assert {e.agent_id for e in progress} == {"agent_write"}
    done = next(i for i, e in enumerate(seen) if e.event_type is EventType.AGENT_COMPLETE)
    assert seen.index(progress[-1]) < done
