"""Tool calls and structured output in every vendor format, against the fake vendor over
real sockets: what goes on the wire, what comes back, streamed and parallel calls,
malformed arguments, and a whole "model asks -> tools run -> model answers" loop."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakevendor import FakeVendor, Reply
from provider_helpers import ANTHROPIC_SECRET, SECRET, collect, request

from orchestration import (
    MalformedResponseError,
    OutputSchema,
    StructuredOutputError,
    ToolArgumentsError,
    ToolBox,
    ToolSpec,
    complete_structured,
)
from orchestration.llm import Completion, CompletionRequest
from orchestration.pricing import PriceTable
from providers.anthropic import AnthropicProvider
from providers.ollama import OllamaProvider
from providers.openai import OpenAIProvider

WEATHER = ToolSpec(
    "weather",
    "The weather in a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)
TIME = ToolSpec("time", "The time in a city.", {"type": "object", "properties": {"city": {"type": "string"}}})
PERSON = OutputSchema(
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    },
    name="person",
)

Vendor = str  # "openai" | "anthropic" | "ollama"
VENDORS = ("openai", "anthropic", "ollama")


def make(vendor: FakeVendor, which: Vendor) -> Any:
    if which == "openai":
        return OpenAIProvider("gpt-4o-mini", api_key=SECRET, base_url=f"{vendor.url}/v1")
    if which == "anthropic":
        return AnthropicProvider("claude-haiku-4-5", api_key=ANTHROPIC_SECRET, base_url=vendor.url)
    return OllamaProvider("llama3.2", host=vendor.url)


def asked(text: str = "Weather in Paris and the time in Rome?", **fields: Any) -> CompletionRequest:
    return request(text, tools=[WEATHER, TIME], **fields)


async def answer(provider: Any, req: CompletionRequest, stream: bool) -> Completion:
    """The completion, whole or assembled from the stream's chunks."""
    if not stream:
        return await provider.complete(req)  # type: ignore[no-any-return]
    chunks = await collect(provider, req)
    last = chunks[-1]
    assert all(not c.tool_calls for c in chunks[:-1])  # the calls come whole, on the last chunk
    assert last.usage is not None
    return Completion(
        content="".join(c.delta for c in chunks),
        usage=last.usage,
        finish_reason=last.finish_reason,
        tool_calls=last.tool_calls,
    )


# -- every vendor ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("which", VENDORS)
async def test_parallel_tool_calls_come_back_as_tool_calls(
    vendor: FakeVendor, which: Vendor, stream: bool
) -> None:
    vendor.script(
        Reply.tools(
            {"id": "call_a", "name": "weather", "arguments": {"city": "Paris", "days": 2}},
            {"id": "call_b", "name": "time", "arguments": {"city": "Rome"}},
            content="Let me look.",
            prompt_tokens=80,
            completion_tokens=31,
        )
    )
    async with make(vendor, which) as provider:
        completion = await answer(provider, asked(), stream)
    assert completion.content == "Let me look."
    assert [(c.id, c.name, c.arguments) for c in completion.tool_calls] == [
        ("call_a", "weather", {"city": "Paris", "days": 2}),
        ("call_b", "time", {"city": "Rome"}),
    ]
    # the vendor's usage is the bill, tool-call tokens included
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (80, 31)
    assert not completion.usage.estimated
    expected = {"openai": "tool_calls", "anthropic": "tool_use", "ollama": "stop"}[which]
    assert completion.finish_reason == expected


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("which", VENDORS)
async def test_malformed_arguments_are_kept_and_refused_when_read(
    vendor: FakeVendor, which: Vendor, stream: bool
) -> None:
    vendor.script(
        Reply.tools(
            {"id": "call_1", "name": "weather", "arguments": '{"city": "Paris", "days": '},  # cut short
            {"id": "call_2", "name": "weather", "arguments": {"city": 7}},  # wrong type
        )
    )
    async with make(vendor, which) as provider:
        completion = await answer(provider, asked(), stream)
    broken, mistyped = completion.tool_calls
    assert broken.problem is not None and "not valid JSON" in broken.problem
    with pytest.raises(ToolArgumentsError, match=r"'weather' .*not valid JSON") as caught:
        _ = broken.arguments
    assert caught.value.tool == "weather" and caught.value.call_id == "call_1"
    assert mistyped.problem is None and mistyped.arguments == {"city": 7}
    with pytest.raises(ToolArgumentsError, match=r"\$\.city: 7 is not of type 'string'"):
        mistyped.checked_arguments(WEATHER)


@pytest.mark.parametrize("which", VENDORS)
async def test_a_tool_loop_runs_to_the_final_answer(vendor: FakeVendor, which: Vendor) -> None:
    """Model asks for two tools -> they run (one with bad arguments, told so) -> the
    results go back in the vendor's format -> the model answers."""
    box = ToolBox()

    @box.tool()
    def weather(city: str, days: int = 1) -> dict[str, Any]:
        """The weather in a city."""
        return {"city": city, "forecast": ["sun"] * days}

    vendor.script(
        Reply.tools(
            {"id": "call_a", "name": "weather", "arguments": {"city": "Paris"}},
            {"id": "call_b", "name": "weather", "arguments": {"days": 2}},  # no city
        ),
        Reply.ok("Sunny in Paris."),
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather?"}]
    async with make(vendor, which) as provider:
        for _turn in range(3):
            completion = await provider.complete(CompletionRequest(messages, tools=box.specs))
            messages.append(completion.message())
            if not completion.tool_calls:
                break
            messages.extend(await box.run(completion.tool_calls))
    assert completion.content == "Sunny in Paris."
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert json.loads(messages[2]["content"]) == {"city": "Paris", "forecast": ["sun"]}
    assert messages[3]["is_error"] and "'city' is a required property" in messages[3]["content"]
    sent = vendor.requests[1].body
    if which == "openai":
        assert sent["messages"][1]["tool_calls"][1] == {
            "id": "call_b",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"days": 2}'},
        }
        assert sent["messages"][2] == {
            "role": "tool",
            "tool_call_id": "call_a",
            "content": '{"city": "Paris", "forecast": ["sun"]}',
        }
        assert sent["messages"][3]["tool_call_id"] == "call_b" and set(sent["messages"][3]) == {
            "role",
            "tool_call_id",
            "content",
        }
    elif which == "anthropic":
        assert sent["messages"][1] == {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_a", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_b", "name": "weather", "input": {"days": 2}},
            ],
        }
        results = sent["messages"][2]
        assert results["role"] == "user" and len(sent["messages"]) == 3  # both results in one user turn
        assert [b["tool_use_id"] for b in results["content"]] == ["call_a", "call_b"]
        assert [b.get("is_error", False) for b in results["content"]] == [False, True]
        assert all(b["type"] == "tool_result" for b in results["content"])
    else:
        assert sent["messages"][1]["tool_calls"] == [
            {"function": {"name": "weather", "arguments": {"city": "Paris"}}},
            {"function": {"name": "weather", "arguments": {"days": 2}}},
        ]
        assert [m.get("tool_name") for m in sent["messages"][2:4]] == ["weather", "weather"]


@pytest.mark.parametrize("which", VENDORS)
async def test_structured_output_is_validated_and_corrected(vendor: FakeVendor, which: Vendor) -> None:
    def structured(text: str) -> Reply:
        if which == "anthropic":  # the answer is the forced tool's input
            return Reply.tools({"name": "person", "arguments": text})
        return Reply.ok(text)

    vendor.script(structured('{"name": "Ada", "age": "36"}'), structured('{"name": "Ada", "age": 36}'))
    async with make(vendor, which) as provider:
        completion = await complete_structured(provider, request("Who?", response_format=PERSON))
    assert completion.parsed == {"name": "Ada", "age": 36}
    assert json.loads(completion.content) == {"name": "Ada", "age": 36}
    assert not completion.tool_calls
    first, second = (r.body for r in vendor.requests)
    if which == "openai":
        assert first["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": dict(PERSON.schema), "strict": False},
        }
    elif which == "anthropic":
        assert first["tools"] == [
            {
                "name": "person",
                "description": first["tools"][0]["description"],
                "input_schema": dict(PERSON.schema),
            }
        ]
        assert first["tool_choice"] == {"type": "tool", "name": "person"}
        assert completion.finish_reason == "end_turn"
    else:
        assert first["format"] == dict(PERSON.schema)
    # the retry shows the model its answer and what is wrong with it
    assert second["messages"][-2]["role"] == "assistant"
    assert json.loads(second["messages"][-2]["content"]) == {"name": "Ada", "age": "36"}
    correction = second["messages"][-1]
    assert correction["role"] == "user" and "$.age: '36' is not of type 'integer'" in correction["content"]


@pytest.mark.parametrize("which", VENDORS)
async def test_structured_output_that_never_matches_is_a_clear_error(
    vendor: FakeVendor, which: Vendor
) -> None:
    bad = (
        Reply.tools({"name": "person", "arguments": {"name": "Ada"}})
        if which == "anthropic"
        else Reply.ok("Ada, 36")
    )
    vendor.default = bad
    schema = OutputSchema(PERSON.schema, name="person", retries=1)
    async with make(vendor, which) as provider:
        with pytest.raises(StructuredOutputError, match="after 2 answers") as caught:
            await complete_structured(provider, request("Who?", response_format=schema))
    assert len(vendor.requests) == 2 and caught.value.attempts == 2
    assert caught.value.errors


# -- OpenAI ------------------------------------------------------------------------------


async def test_openai_request_carries_tools_choice_and_parallel_flag(vendor: FakeVendor) -> None:
    strict = ToolSpec("lookup", "Look up.", {"type": "object", "properties": {}}, strict=True)
    async with make(vendor, "openai") as provider:
        await provider.complete(
            request(tools=[WEATHER, strict], tool_choice="weather", parallel_tool_calls=False)
        )
        await provider.complete(request(tools=[WEATHER], tool_choice="required"))
        await provider.complete(request("plain"))
    first, second, plain = (r.body for r in vendor.requests)
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": WEATHER.description,
                "parameters": dict(WEATHER.parameters),
            },
        },
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look up.",
                "parameters": {"type": "object", "properties": {}},
                "strict": True,
            },
        },
    ]
    assert first["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert first["parallel_tool_calls"] is False
    assert second["tool_choice"] == "required" and "parallel_tool_calls" not in second
    assert not {"tools", "tool_choice", "response_format"} & set(plain)


@pytest.mark.parametrize("interleave", [False, True], ids=["in-turn", "interleaved"])
async def test_openai_stream_assembles_indexed_argument_fragments(
    vendor: FakeVendor, interleave: bool
) -> None:
    arguments = {"city": "São Paulo", "days": 3, "note": "x" * 40}
    vendor.script(
        Reply.tools(
            {"id": "call_a", "name": "weather", "arguments": arguments},
            {"id": "call_b", "name": "time", "arguments": {"city": "Lima"}},
            fragment=3,
            interleave=interleave,
        )
    )
    async with make(vendor, "openai") as provider:
        chunks = await collect(provider, asked())
    calls = chunks[-1].tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_a", "weather", arguments),
        ("call_b", "time", {"city": "Lima"}),
    ]
    assert chunks[-1].finish_reason == "tool_calls"


async def test_openai_tool_call_without_a_name_is_malformed(vendor: FakeVendor) -> None:
    body = {
        "id": "x",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
    }
    vendor.script(Reply.raw(200, json.dumps(body), content_type="application/json"))
    async with make(vendor, "openai") as provider:
        with pytest.raises(MalformedResponseError, match="tool call 0 has no function name"):
            await provider.complete(asked())


async def test_openai_tool_call_answer_is_priced_like_any_answer(vendor: FakeVendor) -> None:
    vendor.script(
        Reply.tools(
            {"name": "weather", "arguments": {"city": "Oslo"}}, prompt_tokens=1000, completion_tokens=200
        )
    )
    async with make(vendor, "openai") as provider:
        completion = await provider.complete(asked())
    assert completion.tool_calls[0].id == "call_fake_0"
    # gpt-4o-mini: $0.15/M input, $0.60/M output
    assert PriceTable().cost("gpt-4o-mini", completion.usage) == pytest.approx(
        (1000 * 0.15 + 200 * 0.60) / 1e6
    )


async def test_openai_missing_usage_counts_the_calls_offline(vendor: FakeVendor) -> None:
    long_city = "Llanfairpwllgwyngyll " * 20
    vendor.script(Reply.tools({"name": "weather", "arguments": {"city": long_city}}, usage=False))
    async with make(vendor, "openai") as provider:
        completion = await provider.complete(asked())
        vendor.script(Reply.ok("", usage=False))
        plain = await provider.complete(request("Weather in Paris and the time in Rome?"))
    assert completion.usage.estimated
    # the arguments are output tokens, the tool definitions prompt tokens
    assert completion.usage.output_tokens > 20
    assert completion.usage.input_tokens > plain.usage.input_tokens + 20


# -- Anthropic ---------------------------------------------------------------------------


async def test_anthropic_request_carries_tools_and_choice(vendor: FakeVendor) -> None:
    async with make(vendor, "anthropic") as provider:
        await provider.complete(asked(tool_choice="required", parallel_tool_calls=False))
        await provider.complete(asked(tool_choice="time"))
        await provider.complete(asked(tool_choice="none"))
        await provider.complete(asked())
    required, named, none, auto = (r.body for r in vendor.requests)
    assert required["tools"] == [
        {"name": "weather", "description": WEATHER.description, "input_schema": dict(WEATHER.parameters)},
        {"name": "time", "description": TIME.description, "input_schema": dict(TIME.parameters)},
    ]
    assert required["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert named["tool_choice"] == {"type": "tool", "name": "time"}
    assert none["tool_choice"] == {"type": "none"}
    assert "tool_choice" not in auto
    assert required["system"] == "You are terse."  # system messages still go to the top


async def test_anthropic_stream_assembles_input_json_deltas(vendor: FakeVendor) -> None:
    vendor.script(
        Reply.tools(
            {"id": "toolu_1", "name": "weather", "arguments": {"city": "Kraków", "days": 5}},
            {"id": "toolu_2", "name": "time", "arguments": {}},
            content="Checking.",
            fragment=2,
        )
    )
    async with make(vendor, "anthropic") as provider:
        chunks = await collect(provider, asked())
    assert "".join(c.delta for c in chunks) == "Checking."
    assert [(c.id, c.name, c.arguments) for c in chunks[-1].tool_calls] == [
        ("toolu_1", "weather", {"city": "Kraków", "days": 5}),
        ("toolu_2", "time", {}),
    ]
    assert chunks[-1].finish_reason == "tool_use"


async def test_anthropic_structured_stream_streams_the_answer_as_text(vendor: FakeVendor) -> None:
    vendor.script(Reply.tools({"name": "person", "arguments": {"name": "Ada", "age": 36}}, fragment=4))
    async with make(vendor, "anthropic") as provider:
        chunks = await collect(provider, request("Who?", response_format=PERSON))
    deltas = [c.delta for c in chunks if c.delta]
    assert len(deltas) > 1 and json.loads("".join(deltas)) == {"name": "Ada", "age": 36}
    assert chunks[-1].tool_calls == () and chunks[-1].finish_reason == "end_turn"


async def test_anthropic_structured_output_beside_tools_may_call_a_tool_first(vendor: FakeVendor) -> None:
    vendor.script(Reply.tools({"id": "toolu_w", "name": "weather", "arguments": {"city": "Oslo"}}))
    async with make(vendor, "anthropic") as provider:
        completion = await complete_structured(provider, asked(response_format=PERSON))
    sent = vendor.requests[0].body
    assert [t["name"] for t in sent["tools"]] == ["weather", "time", "person"]
    assert sent["tool_choice"] == {"type": "any"}
    assert completion.parsed is None and completion.tool_calls[0].name == "weather"  # not checked yet


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_anthropic_non_object_schema_is_wrapped_and_unwrapped(vendor: FakeVendor, stream: bool) -> None:
    cities = OutputSchema({"type": "array", "items": {"type": "string"}}, name="cities")
    vendor.script(Reply.tools({"name": "cities", "arguments": {"value": ["Oslo", "Rome"]}}))
    async with make(vendor, "anthropic") as provider:
        completion = await answer(provider, request("Two cities", response_format=cities), stream)
    assert json.loads(completion.content) == ["Oslo", "Rome"]
    assert cities.parse(completion.content) == ["Oslo", "Rome"]
    schema = vendor.requests[0].body["tools"][0]["input_schema"]
    assert schema == {"type": "object", "properties": {"value": dict(cities.schema)}, "required": ["value"]}


async def test_anthropic_hostile_tool_input_is_kept_as_malformed(vendor: FakeVendor) -> None:
    vendor.script(Reply.tools({"id": "toolu_x", "name": "weather", "arguments": "[1, 2]"}))
    async with make(vendor, "anthropic") as provider:
        completion = await provider.complete(asked())
    call = completion.tool_calls[0]
    assert call.problem is not None and "a JSON list, not an object" in call.problem
    result = await ToolBox([]).run([call])
    assert result[0]["is_error"] and "no tool named 'weather'" in result[0]["content"]


# -- Ollama ------------------------------------------------------------------------------


async def test_ollama_tools_choice_and_generated_ids(vendor: FakeVendor) -> None:
    vendor.script(
        Reply.tools(
            {"name": "weather", "arguments": {"city": "Lagos"}},
            {"name": "time", "arguments": '{"city": "Lima"'},  # a model's broken text
        )
    )
    async with make(vendor, "ollama") as provider:
        completion = await provider.complete(asked())
        await provider.complete(asked(tool_choice="time"))
        await provider.complete(asked(tool_choice="none"))
    first, named, none = (r.body for r in vendor.requests)
    assert first["tools"] == [WEATHER.to_openai(), TIME.to_openai()]
    assert named["tools"] == [TIME.to_openai()]  # Ollama cannot force a call: only that tool is offered
    assert "tools" not in none
    weather, broken = completion.tool_calls
    assert (weather.id, weather.arguments) == ("call_0", {"city": "Lagos"})
    assert broken.id == "call_1" and broken.problem is not None


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("which", VENDORS)
async def test_lone_surrogates_in_arguments_become_valid_text(
    vendor: FakeVendor, which: Vendor, stream: bool
) -> None:
    # A "\ud800" escape in the model's JSON decodes to a lone surrogate: never stored as such.
    vendor.script(Reply.tools({"id": "call_s", "name": "weather", "arguments": '{"city": "Par\\ud800is"}'}))
    async with make(vendor, which) as provider:
        completion = await answer(provider, asked(), stream)
    (call,) = completion.tool_calls
    assert call.arguments == {"city": "Par\ufffdis"}
    json.dumps(call.to_dict(), ensure_ascii=False).encode("utf-8")
