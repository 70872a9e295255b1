"""Shared helpers for the pattern tests: a billing-aware scripted provider and checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from orchestration import (
    BadRequestError,
    BaseOrchestrator,
    Completion,
    CompletionRequest,
    EventType,
    OrchestratorResult,
    PriceTable,
    ScriptedProvider,
    StreamEvent,
)
from orchestration.scripted import demo_responder


class BillingProvider(ScriptedProvider):
    """A ScriptedProvider that keeps every answer, so tests can price each call themselves."""

    def __init__(self, replies: Any = demo_responder, **kwargs: Any) -> None:
        kwargs.setdefault("count_tokens", False)
        super().__init__(replies, **kwargs)
        self.completions: list[Completion] = []

    async def complete(self, request: CompletionRequest) -> Completion:
        completion = await super().complete(request)
        self.completions.append(completion)
        return completion

    def prompts(self) -> list[str]:
        """The prompt text of every call, in order."""
        return [request.prompt_text for request in self.calls]

    def expected_cost(self, prices: PriceTable | None = None) -> float:
        """The sum over every answered call of its price."""
        table = prices or PriceTable()
        return sum(table.cost(c.model, c.usage) or 0.0 for c in self.completions)


class Recorder:
    """A stream callback that keeps every event and can signal when one arrives."""

    def __init__(self, when: Callable[[StreamEvent], bool] | None = None) -> None:
        self.events: list[StreamEvent] = []
        self.when = when
        self.seen = asyncio.Event()

    async def __call__(self, event: StreamEvent) -> None:  # async: it sets an asyncio.Event
        self.events.append(event)
        if self.when is not None and self.when(event):
            self.seen.set()

    def of(self, kind: EventType) -> list[StreamEvent]:
        """The events of one type."""
        return [e for e in self.events if e.event_type is kind]


async def cancel_once_seen(
    orchestrator: BaseOrchestrator, task: str, recorder: Recorder
) -> OrchestratorResult:
    """Run ``task``, cancel the run once ``recorder`` has seen its event, and return the result."""
    run = asyncio.create_task(orchestrator.execute_workflow(task, stream_callback=recorder))
    await asyncio.wait_for(recorder.seen.wait(), 20)
    assert orchestrator.cancel()
    return await asyncio.wait_for(run, 20)


def check_bill(result: OrchestratorResult, recorder: Recorder, provider: BillingProvider) -> None:
    """Total cost = sum of cost events = sum over every call; one cost event per answered call."""
    costs = recorder.of(EventType.COST_UPDATE)
    assert len(costs) == len(provider.completions)
    assert result.usage.calls == len(provider.completions)
    assert result.total_cost > 0
    assert result.total_cost == pytest.approx(sum(e.data["cost"] for e in costs))
    assert result.total_cost == pytest.approx(provider.expected_cost())
    assert result.total_cost == pytest.approx(sum(u.cost_usd for u in result.cost_by_agent.values()))


def fail_when(*needles: str, error: BaseException | None = None) -> Callable[[int, CompletionRequest], Any]:
    """A ``failures`` callable: calls whose prompt contains every needle fail (not retryable)."""

    def failures(_number: int, request: CompletionRequest) -> BaseException | None:
        if all(needle in request.prompt_text for needle in needles):
            return error or BadRequestError("scripted failure (400)")
        return None

    return failures


class ReadmeProvider:
    """A provider of the seed README's shape: sync ``complete(messages, **kwargs)``
    returning an object with ``.content`` and ``.usage``."""

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        self.calls += 1
        request = CompletionRequest(messages=messages, model=kwargs.get("model"))
        content = demo_responder(request)
        prompt = sum(len(str(m["content"]).split()) for m in messages)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(content.split()),
            "total_tokens": prompt + len(content.split()),
        }
        return SimpleNamespace(content=content, usage=usage)
