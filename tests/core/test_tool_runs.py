"""Tool calls and structured output through the framework's model calls (``call_llm``):
billed like any call, structured answers corrected with a ``model_retry`` event, tool
calls recorded so a resumed run gets them back without paying again, and foreign
provider objects offered the tools in the shape their clients know."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from orchestration import (
    AgentResult,
    Completion,
    CompletionRequest,
    Edge,
    EventType,
    Graph,
    MemoryStore,
    Node,
    NodeKind,
    OrchestratorConfig,
    OutputSchema,
    ScriptedProvider,
    StructuredOutputError,
    SubTask,
    TaskStatus,
    ToolCall,
    ToolSpec,
    as_provider,
)
from orchestration.graph import NodeContext

from .helpers import GraphOrchestrator

SEARCH = ToolSpec("search", "Search.", {"type": "object", "properties": {"query": {"type": "string"}}})
PERSON = OutputSchema(
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    },
    name="person",
    retries=1,
)
CONFIG = OrchestratorConfig(max_concurrent_agents=1, retry_base_delay=0, primary_model="gpt-4o-mini")


def one_subtask(
    provider: ScriptedProvider, behaviour: Any, store: MemoryStore | None = None
) -> GraphOrchestrator:
    return GraphOrchestrator(
        CONFIG,
        provider,
        subtasks=[SubTask(id="s0", description="find")],
        behaviour={"s0": behaviour},
        synthesis=lambda self, results, context: results[0].content,
        store=store or MemoryStore(),
    )


async def ask_person(self: GraphOrchestrator, subtask: SubTask, context: Any) -> AgentResult:
    completion = await self.call_llm("Who wrote the first program?", response_format=PERSON)
    return AgentResult(
        agent_id="agent_s0",
        agent_type=subtask.agent_type,
        subtask_id="s0",
        content=json.dumps(completion.parsed),
    )


async def test_a_structured_answer_is_corrected_and_every_attempt_billed() -> None:
    provider = ScriptedProvider(
        {"first program": "Ada Lovelace, 36", "cannot be used": '{"name": "Ada", "age": 36}'}
    )
    store = MemoryStore()
    result = await one_subtask(provider, ask_person, store).execute_workflow("task", run_id="r")
    assert result.status is TaskStatus.COMPLETED
    assert json.loads(result.final_synthesis) == {"name": "Ada", "age": 36}
    events = await store.events("r")
    retries = [e for e in events if e.event_type is EventType.MODEL_RETRY]
    assert len(retries) == 1 and "StructuredOutputError" in retries[0].data["error"]
    assert "not valid JSON" in retries[0].data["error"] and retries[0].agent_id == "agent_s0"
    bills = [e for e in events if e.event_type is EventType.COST_UPDATE]
    assert len(bills) == provider.call_count == 2
    assert result.usage.calls == 2 and result.total_cost == pytest.approx(sum(e.data["cost"] for e in bills))
    assert result.total_cost > 0
    # the second attempt saw the first answer and what was wrong with it
    retry = provider.calls[1]
    assert retry.messages[-2] == {"role": "assistant", "content": "Ada Lovelace, 36"}
    assert "not valid JSON" in retry.messages[-1]["content"] and retry.response_format == PERSON


async def test_a_structured_answer_that_never_matches_fails_the_subtask_clearly() -> None:
    provider = ScriptedProvider('{"name": "Ada"}')
    result = await one_subtask(provider, ask_person).execute_workflow("task")
    assert result.status is not TaskStatus.COMPLETED
    error = result.agent_results[0].error or ""
    assert StructuredOutputError.__name__ in error and "'age' is a required property" in error
    assert provider.call_count == 2  # 1 + retries, each billed
    assert result.usage.calls == 2


async def plan_with_tools(self: GraphOrchestrator, subtask: SubTask, context: Any) -> AgentResult:
    completion = await self.call_llm("Plan the search.", tools=[SEARCH], tool_choice="required")
    (call,) = completion.tool_calls
    return AgentResult(
        agent_id="agent_s0", agent_type=subtask.agent_type, subtask_id="s0", content=call.arguments["query"]
    )


async def test_tool_calls_are_recorded_and_a_resumed_run_gets_them_back_unpaid() -> None:
    store = MemoryStore()
    provider = ScriptedProvider([ToolCall("search", {"query": "analytical engine"})])
    full = await one_subtask(provider, plan_with_tools, store).execute_workflow("task", run_id="r")
    assert full.final_synthesis == "analytical engine"
    assert provider.calls[0].tools == (SEARCH,) and provider.calls[0].tool_choice == "required"
    events = await store.events("r")
    bill = next(e for e in events if e.event_type is EventType.COST_UPDATE)
    assert bill.data["tool_calls"] == [
        {"id": "call_1_0", "name": "search", "arguments": '{"query": "analytical engine"}'}
    ]
    # the process died right after the call was paid for
    crashed = MemoryStore()
    await crashed.append("r", events[: events.index(bill) + 1])
    silent = ScriptedProvider(
        failures=lambda n, r: AssertionError("the paid-for call must not be made again")
    )
    resumed = await one_subtask(silent, plan_with_tools, crashed).resume("r")
    assert resumed.status is TaskStatus.COMPLETED and resumed.final_synthesis == "analytical engine"
    assert silent.call_count == 0


async def test_a_streamed_call_brings_its_tool_calls() -> None:
    async def streamed(self: GraphOrchestrator, subtask: SubTask, context: Any) -> AgentResult:
        completion = await self.call_llm("Look it up.", tools=[SEARCH], stream=True)
        return AgentResult(
            agent_id="agent_s0",
            agent_type=subtask.agent_type,
            subtask_id="s0",
            content=f"{completion.content}|{completion.tool_calls[0].arguments['query']}",
        )

    provider = ScriptedProvider([Completion("On it.", tool_calls=(ToolCall("search", {"query": "x"}),))])
    store = MemoryStore()
    result = await one_subtask(provider, streamed, store).execute_workflow("task", run_id="r")
    assert result.final_synthesis == "On it.|x"
    deltas = [e.data["delta"] for e in await store.events("r") if e.event_type is EventType.TOKEN_DELTA]
    assert "".join(deltas) == "On it."


async def test_a_foreign_client_is_offered_the_tools_and_its_calls_are_read() -> None:
    class OpenAIStyleClient:
        def __init__(self) -> None:
            self.seen: dict[str, Any] = {}

        async def complete(self, messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
            self.seen = kwargs
            return {
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "search", "arguments": '{"query": "q"}'},
                    }
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 9},
            }

    client = OpenAIStyleClient()
    request = CompletionRequest(
        [{"role": "user", "content": "go"}], tools=[SEARCH], tool_choice="search", response_format=PERSON
    )
    completion = await as_provider(client).complete(request)
    assert client.seen["tools"] == [SEARCH.to_openai()]
    assert client.seen["tool_choice"] == {"type": "function", "function": {"name": "search"}}
    assert client.seen["response_format"]["json_schema"]["name"] == "person"
    assert completion.content == "" and completion.tool_calls == (
        ToolCall("search", {"query": "q"}, id="c1"),
    )
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (50, 9)

    class AnthropicStyleClient:
        def complete(self, messages: list[dict[str, Any]]) -> Any:  # takes no tools: none are passed
            blocks = [
                SimpleNamespace(type="text", text="Searching."),
                SimpleNamespace(type="tool_use", id="toolu_1", name="search", input={"query": "z"}),
            ]
            return SimpleNamespace(content=blocks, usage=None)

    completion = await as_provider(AnthropicStyleClient()).complete(request)
    assert completion.content == "Searching."
    assert completion.tool_calls == (ToolCall("search", {"query": "z"}, id="toolu_1"),)
    assert completion.usage.estimated and completion.usage.output_tokens > 0


async def test_graph_handlers_get_tool_calls_and_structured_answers() -> None:
    async def plan(ctx: NodeContext) -> str:
        completion = await ctx.call_llm("Plan the search.", tools=[SEARCH])
        return str(completion.tool_calls[0].arguments["query"])

    async def profile(ctx: NodeContext) -> object:
        return (await ctx.call_llm("Who wrote the first program?", response_format=PERSON)).parsed

    provider = ScriptedProvider(
        {"Plan": ToolCall("search", {"query": "engines"}), "first program": '{"name": "Ada", "age": 36}'}
    )
    graph = Graph(
        nodes=[Node(id="plan"), Node(id="profile", kind=NodeKind.TERMINAL)],
        edges=[Edge(source="plan", target="profile")],
        entry="plan",
    )
    store = MemoryStore()
    result = await graph.run({"plan": plan, "profile": profile}, store=store, run_id="g", provider=provider)
    assert result.status == "completed"
    assert result.output("plan") == "engines" and result.output("profile") == {"name": "Ada", "age": 36}
    bills = [e for e in await store.events("g") if e.event_type is EventType.COST_UPDATE]
    assert bills[0].agent_id == "plan" and bills[0].data["tool_calls"][0]["name"] == "search"
