"""A run whose agents call tools through real HTTP adapters (the fake vendor): the bill
is the vendor's usage priced by the table, and the cost events carry the calls."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from fakevendor import FakeVendor, Reply
from provider_helpers import ANTHROPIC_SECRET, SECRET

from orchestration import (
    AgentResult,
    BaseOrchestrator,
    EventType,
    MemoryStore,
    OrchestratorConfig,
    OutputSchema,
    SubTask,
    TaskStatus,
    ToolBox,
)
from orchestration.pricing import ModelPrice, PriceTable
from providers.anthropic import AnthropicProvider
from providers.ollama import OllamaProvider
from providers.openai import OpenAIProvider

CITY = OutputSchema(
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, name="city"
)


def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class ToolAgent(BaseOrchestrator):
    """One subtask: the model calls a tool, gets its result, then answers in a schema."""

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [SubTask(id="s0", description=task)]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        box = ToolBox([weather])
        messages: list[dict[str, Any]] = [{"role": "user", "content": subtask.description}]
        first = await self.call_llm(messages, tools=box.specs)
        messages += [first.message(), *await box.run(first.tool_calls)]
        final = await self.call_llm(messages, response_format=CITY)
        return AgentResult(
            agent_id="agent_s0",
            agent_type=subtask.agent_type,
            subtask_id="s0",
            content=json.dumps(final.parsed),
        )

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return agent_results[0].content


def provider(vendor: FakeVendor, which: str) -> tuple[Any, str]:
    if which == "openai":
        return OpenAIProvider(api_key=SECRET, base_url=f"{vendor.url}/v1"), "gpt-4o-mini"
    if which == "anthropic":
        return AnthropicProvider(api_key=ANTHROPIC_SECRET, base_url=vendor.url), "claude-haiku-4-5"
    return OllamaProvider(host=vendor.url), "llama3.2"


@pytest.mark.parametrize("which", ["openai", "anthropic", "ollama"])
async def test_tool_calls_in_a_run_are_billed_as_the_vendor_reports(vendor: FakeVendor, which: str) -> None:
    answer = (
        Reply.tools({"name": "city", "arguments": {"city": "Oslo"}})
        if which == "anthropic"
        else Reply.ok('{"city": "Oslo"}')
    )
    vendor.script(
        Reply.tools(
            {"id": "call_w", "name": "weather", "arguments": {"city": "Oslo"}},
            prompt_tokens=900,
            completion_tokens=40,
        ),
        replace(answer, prompt_tokens=1000, completion_tokens=12),
    )
    llm, model = provider(vendor, which)
    prices = PriceTable({"llama3.2": ModelPrice(0.1, 0.2)})
    store = MemoryStore()
    async with llm:
        orch = ToolAgent(OrchestratorConfig(primary_model=model), llm, store=store, prices=prices)
        result = await orch.execute_workflow("Weather in Oslo?", run_id="r")
    assert result.status is TaskStatus.COMPLETED, result.agent_results[0].error
    assert json.loads(result.final_synthesis) == {"city": "Oslo"}
    bills = [e for e in await store.events("r") if e.event_type is EventType.COST_UPDATE]
    assert [(b.data["usage"]["input_tokens"], b.data["usage"]["output_tokens"]) for b in bills] == [
        (900, 40),
        (1000, 12),
    ]
    assert bills[0].data["tool_calls"][0]["name"] == "weather" and "tool_calls" not in bills[1].data
    price = prices.lookup(model)
    assert price is not None
    assert result.total_cost == pytest.approx((1900 * price.input + 52 * price.output) / 1e6)
    assert result.usage.calls == 2 and result.total_cost > 0
    # the second request carried the tool's result back in the vendor's format
    second = vendor.requests[1].body
    assert "sunny in Oslo" in json.dumps(second["messages"])
