"""ToolBox: a model's tool calls run, in parallel, each answered with a tool message; what
the model got wrong goes back to it as an error it can correct.  Driven offline by the
ScriptedProvider's scripted tool calls."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal

import pytest

from orchestration import (
    Completion,
    CompletionRequest,
    ConfigError,
    ScriptedProvider,
    Tool,
    ToolBox,
    ToolCall,
    ToolSpec,
)


def calculator() -> ToolBox:
    box = ToolBox()

    @box.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers.

        More text that the model does not need."""
        return a + b

    @box.tool(description="Multiply two numbers.")
    async def mul(a: int, b: int) -> int:
        return a * b

    return box


def test_specs_come_from_the_functions() -> None:
    def forecast(
        city: str, days: int = 1, units: Literal["C", "F"] = "C", tags: list[str] | None = None
    ) -> str:
        """The forecast."""
        return city

    (spec,) = ToolBox([forecast]).specs
    assert spec == ToolSpec(
        "forecast",
        "The forecast.",
        {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "units": {"enum": ["C", "F"]},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["city"],
        },
    )
    assert calculator().specs[0].description == "Add two numbers."
    with pytest.raises(ConfigError, match="already in it"):
        ToolBox([forecast, forecast])

    def positional(a: int, /) -> int:
        return a

    with pytest.raises(ConfigError, match="positional-only"):
        ToolBox([positional])


async def test_a_scripted_tool_loop_runs_to_the_answer() -> None:
    box = calculator()
    llm = ScriptedProvider(
        [
            ToolCall("add", {"a": 2, "b": 3}),
            [ToolCall("mul", {"a": 5, "b": 4}), ToolCall("add", {"a": 1, "b": 1})],  # parallel
            "The answer is 20.",
        ]
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "(2+3)*4?"}]
    while True:
        completion = await llm.complete(CompletionRequest(messages, tools=box.specs))
        messages.append(completion.message())
        if not completion.tool_calls:
            break
        messages.extend(await box.run(completion.tool_calls))
    assert completion.content == "The answer is 20." and completion.finish_reason == "stop"
    assert [m["role"] for m in messages] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    assert [(m["tool_call_id"], m["content"]) for m in messages if m["role"] == "tool"] == [
        ("call_1_0", "5"),
        ("call_2_0", "20"),
        ("call_2_1", "2"),
    ]
    assert llm.calls[1].messages[-1]["tool_call_id"] == "call_1_0"  # the model saw the result
    assert llm.calls[0].tools == box.specs


async def test_what_the_model_got_wrong_goes_back_to_it() -> None:
    box = calculator()

    @box.tool()
    def fail(reason: str) -> None:
        raise ValueError(f"cannot: {reason} (key sk-live-abcdefghijklmnop1234)")

    results = await box.results(
        [
            ToolCall("sub", {"a": 1}, id="1"),
            ToolCall("add", '{"a": 1, "b":', id="2"),
            ToolCall("add", {"a": "one", "b": 2}, id="3"),
            ToolCall("fail", {"reason": "no"}, id="4"),
            ToolCall("add", {"a": 1, "b": 2}, id="5"),
        ]
    )
    assert [r.is_error for r in results] == [True, True, True, True, False]
    unknown, broken, mistyped, failed, fine = (r.content for r in results)
    assert unknown == "Error: there is no tool named 'sub'; the tools are: add, mul, fail."
    assert "not valid JSON" in broken and "Call it again, corrected." in broken
    assert "$.a: 'one' is not of type 'integer'" in mistyped
    assert failed.startswith("Error: 'fail' failed: ValueError: cannot: no")
    assert "sk-live" not in failed  # a secret in an exception never reaches the model
    assert fine == "3" and results[4].value == 3
    message = results[1].message()
    assert message["is_error"] is True and message["tool_call_id"] == "2"


async def test_parallel_calls_run_at_the_same_time() -> None:
    arrived = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def meet(me: str, other: str) -> str:
        arrived[me].set()
        await arrived[other].wait()  # only returns if the other call runs meanwhile
        return me

    box = ToolBox([meet])
    async with asyncio.timeout(10):  # a box that ran calls one by one would hang here
        messages = await box.run(
            [
                ToolCall("meet", {"me": "a", "other": "b"}, id="x"),
                ToolCall("meet", {"me": "b", "other": "a"}, id="y"),
            ]
        )
    assert [m["content"] for m in messages] == ["a", "b"]


async def test_sync_tools_run_off_the_event_loop_unless_told() -> None:
    threads: list[str] = []

    def where() -> str:
        threads.append(threading.current_thread().name)
        return "ok"

    box = ToolBox([Tool(ToolSpec("off"), where), Tool(ToolSpec("on"), where, thread=False)])
    await box.run([ToolCall("off", id="1")])
    await box.run([ToolCall("on", id="2")])
    assert threads[0] != threading.current_thread().name
    assert threads[1] == threading.current_thread().name


async def test_a_slow_tool_times_out_and_a_cancelled_run_stays_cancelled() -> None:
    never = asyncio.Event()
    started = asyncio.Event()

    async def wait() -> None:
        started.set()
        await never.wait()

    slow = ToolBox([wait], timeout=0.05)
    (result,) = await slow.results([ToolCall("wait", id="1")])
    assert result.is_error and result.content == "Error: 'wait' did not finish within 0.05 s."

    patient = ToolBox([wait])
    started.clear()
    task = asyncio.create_task(patient.run([ToolCall("wait", id="1"), ToolCall("wait", id="2")]))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_scripted_completions_and_streams_carry_calls() -> None:
    call = ToolCall("add", {"a": 1, "b": 2})
    llm = ScriptedProvider([Completion("Adding.", tool_calls=(call,)), call])
    first = await llm.complete(CompletionRequest([{"role": "user", "content": "go"}]))
    assert first.content == "Adding." and first.tool_calls == (call.with_id("call_1_0"),)
    assert first.usage.calls == 1 and first.usage.output_tokens > 0 and first.finish_reason == "tool_calls"
    chunks = [c async for c in llm.stream(CompletionRequest([{"role": "user", "content": "go"}]))]
    assert chunks[-1].tool_calls == (call.with_id("call_2_0"),) and chunks[-1].usage is not None
    assert all(not c.tool_calls for c in chunks[:-1])
    with pytest.raises(ConfigError, match="a scripted reply must be"):
        await ScriptedProvider([[1, 2]]).complete(CompletionRequest([{"role": "user", "content": "go"}]))  # type: ignore[list-item]
