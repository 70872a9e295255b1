"""``self.provider`` is metered: direct provider calls (the seed README's custom
orchestrator) are admitted against the budget and billed to the agent like ``call_llm``."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from orchestration import (
    AgentResult,
    AgentType,
    BaseOrchestrator,
    EventType,
    MemoryStore,
    OrchestratorConfig,
    SubTask,
    TaskStatus,
)

from .helpers import Recorder

CAP = 0.05


class Message:
    """What the seed README's OpenAI example returns: ``.content`` and a ``.usage`` dict."""

    def __init__(self, content: str, usage: dict[str, int]) -> None:
        self.content = content
        self.usage = usage


class SyncProvider:
    """The seed README's provider shape: a blocking ``complete(messages, **kwargs)``."""

    def __init__(self, block: float = 0.0) -> None:
        self.calls = 0
        self.block = block

    def complete(self, messages: list[dict[str, Any]], **kwargs: Any) -> Message:
        self.calls += 1
        if self.block:
            time.sleep(self.block)  # stands for a blocking HTTP client waiting for the vendor
        return Message(
            f"answer {self.calls}", {"prompt_tokens": 20, "completion_tokens": 500, "total_tokens": 520}
        )


class AsyncProvider(SyncProvider):
    """The same provider with an async ``complete``."""

    async def complete(self, messages: list[dict[str, Any]], **kwargs: Any) -> Message:  # type: ignore[override]
        await asyncio.sleep(0.001)
        return super().complete(messages, **kwargs)


class SeedOrchestrator(BaseOrchestrator):
    """The seed README's custom orchestrator, with ``n`` research subtasks."""

    def __init__(self, *args: Any, n: int = 50, how: str = "sync", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.n = n
        self.how = how

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [
            SubTask(id=f"research_{i}", description=f"Research: {task} #{i}", agent_type=AgentType.RESEARCHER)
            for i in range(self.n)
        ]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        messages = [{"role": "user", "content": subtask.description}]
        if self.how == "sync":
            response = self.provider.complete(messages=messages)
        elif self.how == "async":
            response = await self.provider.complete(messages=messages)
        else:
            response = await asyncio.to_thread(self.provider.complete, messages=messages)
        return AgentResult(
            agent_id=f"agent_{subtask.id}",
            agent_type=subtask.agent_type,
            subtask_id=subtask.id,
            content=response.content,
            cost=response.usage.get("total_tokens", 0) * 0.00001,
        )

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        combined = "\n\n".join(r.content for r in agent_results)
        return f"## Summary\n\n{combined}"


def seed(provider: Any, how: str, n: int = 50, **options: Any) -> SeedOrchestrator:
    config = OrchestratorConfig(
        **{"primary_model": "gpt-4o", "max_tokens": 1000, "max_concurrent_agents": 50, **options}
    )
    return SeedOrchestrator(config, provider, n=n, how=how, store=MemoryStore())


@pytest.mark.parametrize("how", ["sync", "async", "thread"])
async def test_50_direct_provider_calls_never_exceed_the_cap(how: str) -> None:
    provider = AsyncProvider() if how == "async" else SyncProvider()
    recorder = Recorder()
    result = await seed(provider, how, max_total_cost=CAP).execute_workflow("tides", stream_callback=recorder)
    assert result.status is TaskStatus.BUDGET_EXCEEDED
    assert result.total_cost <= CAP
    # what the vendor would bill for the calls actually made ($2.50 / $10 per million tokens)
    assert provider.calls * (20 * 2.5 + 500 * 10.0) / 1e6 <= CAP
    assert provider.calls == result.usage.calls > 0
    done = [r for r in result.agent_results if r.succeeded]
    assert len(done) == provider.calls
    for agent in done:  # billed to the agent that made the call, at the model's price
        assert agent.cost == pytest.approx((20 * 2.5 + 500 * 10.0) / 1e6)
        assert result.cost_by_agent[agent.agent_id].calls == 1


async def test_direct_calls_without_a_cap_are_billed_to_their_agents() -> None:
    provider = AsyncProvider()
    result = await seed(provider, "async", n=3).execute_workflow("tides")
    assert result.status is TaskStatus.COMPLETED
    assert provider.calls == 3 == result.usage.calls
    assert set(result.cost_by_agent) == {f"agent_research_{i}" for i in range(3)}
    assert result.total_cost == pytest.approx(3 * (20 * 2.5 + 500 * 10.0) / 1e6)


async def test_a_blocking_provider_call_in_an_async_hook_is_reported_once(caplog: Any) -> None:
    provider = SyncProvider(block=0.15)
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="orchestration"):
        result = await seed(provider, "sync", n=3).execute_workflow("tides", stream_callback=recorder)
    assert result.status is TaskStatus.COMPLETED and provider.calls == 3
    warnings = [e.data["message"] for e in recorder.of(EventType.WARNING) if "blocked" in e.data["message"]]
    assert len(warnings) == 1
    for advice in (
        "blocked the event loop",
        "await self.call_llm(...)",
        "an async provider",
        "asyncio.to_thread",
    ):
        assert advice in warnings[0]
    logged = [r for r in caplog.records if "blocked the event loop" in r.getMessage()]
    assert len(logged) == 1


async def test_calls_outside_a_run_go_straight_to_the_provider() -> None:
    provider = SyncProvider()
    orch = seed(provider, "sync")
    assert orch.provider.complete(messages=[{"role": "user", "content": "hi"}]).content == "answer 1"
    assert orch.provider.unwrapped is provider and orch.provider.block == 0.0


class NoModel(BaseOrchestrator):
    """Hooks that call no model."""

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [SubTask(id="a", description="count words")]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        return str(len(subtask.description.split()))

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        if context and context.get("ask_model"):
            return (await self.call_llm("summarise")).content
        return agent_results[0].content


async def test_a_provider_is_needed_only_when_a_model_call_is_made() -> None:
    orch = NoModel(store=MemoryStore())  # no provider
    result = await orch.execute_workflow("t")
    assert result.status is TaskStatus.COMPLETED and result.final_synthesis == "2"

    failed = await orch.execute_workflow("t", context={"ask_model": True})
    assert failed.status is TaskStatus.PARTIAL
    error = failed.error or ""
    assert "no provider" in error and "provider=" in error and "\n" not in error


class Blocking(NoModel):
    """A hook doing blocking work between awaits (a synchronous client, say)."""

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        await asyncio.sleep(0)
        time.sleep(0.15)  # noqa: ASYNC251 - stands for a blocking library call: what is detected
        return "done"

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [SubTask(id=f"s{i}", description="work") for i in range(3)]


async def test_a_hook_that_blocks_the_event_loop_is_reported_once(caplog: Any) -> None:
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="orchestration"):
        result = await Blocking(store=MemoryStore()).execute_workflow("t", stream_callback=recorder)
    assert result.status is TaskStatus.COMPLETED
    warnings = [e.data["message"] for e in recorder.of(EventType.WARNING)]
    assert len(warnings) == 1 and "execute_subtask ran for" in warnings[0], warnings
    assert "await self.call_llm(...)" in warnings[0] and "asyncio.to_thread" in warnings[0]
    assert len([r for r in caplog.records if "blocks the event loop" in r.getMessage()]) == 1

    quiet = Recorder()
    await NoModel(store=MemoryStore()).execute_workflow("t", stream_callback=quiet)
    assert not quiet.of(EventType.WARNING)  # hooks that await do not trip it
