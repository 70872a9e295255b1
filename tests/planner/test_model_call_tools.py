"""Graph handlers offer tools through ``ctx.call_llm`` (the path the planner's turns take):
dict tools become ToolSpecs, the choice and the calls come back, and the call is billed."""

from __future__ import annotations

from orchestration import CompletionRequest, Graph, MemoryStore, Node, ScriptedProvider, ToolCall, ToolSpec

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


async def test_a_handler_offers_tools_in_the_vendors_dict_shape_and_gets_the_calls() -> None:
    seen: list[CompletionRequest] = []

    def reply(request: CompletionRequest) -> ToolCall:
        seen.append(request)
        return ToolCall("weather", {"city": "Oslo"})

    async def ask(ctx):  # type: ignore[no-untyped-def]
        completion = await ctx.call_llm("Weather in Oslo?", tools=[WEATHER], tool_choice="required")
        return [(call.name, call.arguments) for call in completion.tool_calls]

    graph = Graph(nodes=[Node(id="ask")], entry="ask")
    result = await graph.run({"ask": ask}, store=MemoryStore(), provider=ScriptedProvider(reply))

    assert result.status == "completed", result.errors
    assert result.output("ask") == [("weather", {"city": "Oslo"})]
    [request] = seen
    assert request.tools == (ToolSpec.from_dict(WEATHER),) and request.tool_choice == "required"
    assert "tools" not in request.options  # typed fields, not raw options sent as they are
    assert result.usage.calls == 1 and result.total_cost > 0
