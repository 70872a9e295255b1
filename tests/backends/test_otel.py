"""OpenTelemetry traces (orchestration.backends.otel): GenAI spans, deterministic ids, one trace per run."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestration import (
    EventType,
    Graph,
    MemoryStore,
    Node,
    OrchestratorConfig,
    ScriptedProvider,
    ToolBox,
    ToolCall,
)
from orchestration.backends.otel import SEMCONV_VERSION, RunTracer, export_run, span_id_for, trace_id_for
from orchestration.graph import NodeContext
from orchestration.scripted import demo_provider
from tests.core.cli_fixture import TwoStep


def collector() -> tuple[InMemorySpanExporter, RunTracer]:
    exporter = InMemorySpanExporter()
    return exporter, RunTracer(SimpleSpanProcessor(exporter))


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


async def test_a_run_is_one_trace_of_agent_and_chat_spans_with_genai_attributes() -> None:
    exporter, tracer = collector()
    store = MemoryStore()
    result = await TwoStep(OrchestratorConfig(), demo_provider(), store=store).execute_workflow(
        "a task", run_id="traced", stream_callback=tracer
    )
    spans = exporter.get_finished_spans()
    assert {span.context.trace_id for span in spans} == {trace_id_for("traced")}
    names = by_name(spans)
    [root] = names["invoke_agent TwoStep"]
    assert root.parent is None and root.context.span_id == span_id_for("traced", "run")
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.conversation.id"] == "traced"
    assert root.attributes["gen_ai.usage.input_tokens"] == result.usage.input_tokens
    assert root.attributes["gen_ai.usage.output_tokens"] == result.usage.output_tokens
    assert root.instrumentation_scope is not None
    assert root.instrumentation_scope.schema_url == f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

    chats = [span for span in spans if span.name.startswith("chat ")]
    assert len(chats) == result.usage.calls
    ids = {span.context.span_id: span for span in spans}
    for chat in chats:
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.provider.name"] == "scripted"
        assert chat.attributes["gen_ai.request.model"] == chat.name.removeprefix("chat ")
        assert chat.parent is not None and chat.parent.span_id in ids  # a child of its agent
        agent = ids[chat.parent.span_id]
        assert agent.name.startswith("invoke_agent ")
        assert agent.start_time <= chat.start_time <= chat.end_time <= agent.end_time
    agents = {span.attributes.get("gen_ai.agent.name") for span in spans if span.parent is not None}
    assert {"planner", "synthesizer"} <= agents
    assert sum(int(c.attributes["gen_ai.usage.input_tokens"]) for c in chats) == result.usage.input_tokens


async def test_the_trace_of_a_stored_run_is_the_same_as_the_live_one() -> None:
    exporter, tracer = collector()
    store = MemoryStore()
    await TwoStep(OrchestratorConfig(), demo_provider(), store=store).execute_workflow(
        "a task", run_id="again", stream_callback=tracer
    )
    live = {
        (s.name, s.context.span_id, s.parent.span_id if s.parent else None)
        for s in exporter.get_finished_spans()
    }
    replayed_exporter = InMemorySpanExporter()
    export_run(await store.events("again"), SimpleSpanProcessor(replayed_exporter))
    replayed = {
        (s.name, s.context.span_id, s.parent.span_id if s.parent else None)
        for s in replayed_exporter.get_finished_spans()
    }
    assert replayed == live


async def test_a_resumed_run_continues_the_same_trace_under_the_same_root() -> None:
    full = MemoryStore()
    await TwoStep(OrchestratorConfig(), demo_provider(), store=full).execute_workflow(
        "a task", run_id="crashy"
    )
    events = await full.events("crashy")
    cut = next(i for i, e in enumerate(events) if e.event_type is EventType.AGENT_COMPLETE) + 1
    crashed = MemoryStore()
    await crashed.append("crashy", events[:cut])

    before_exporter = InMemorySpanExporter()
    export_run(events[:cut], SimpleSpanProcessor(before_exporter))  # what the dead process had sent
    exporter, tracer = collector()
    await TwoStep(OrchestratorConfig(), demo_provider(), store=crashed).resume("crashy", tracer)
    spans = (*before_exporter.get_finished_spans(), *exporter.get_finished_spans())
    assert {s.context.trace_id for s in spans} == {trace_id_for("crashy")}
    roots = [s for s in spans if s.parent is None]
    assert [r.context.span_id for r in roots] == [span_id_for("crashy", "run")]  # one root, from the resume
    assert all(s.parent is None or s.parent.span_id in {x.context.span_id for x in spans} for s in spans)
    assert len({s.context.span_id for s in spans}) == len(spans)  # nothing doubled


async def test_spans_carry_no_prompts_answers_or_keys() -> None:
    exporter, tracer = collector()
    await TwoStep(OrchestratorConfig(), demo_provider(), store=MemoryStore()).execute_workflow(
        "a secret task sk-live-1234567890abcdef", run_id="private", stream_callback=tracer
    )
    text = repr([dict(s.attributes or {}) for s in exporter.get_finished_spans()])
    assert "secret task" not in text and "sk-live" not in text and "Synthesize" not in text


KEY = "sk-live-1234567890abcdef"


async def test_each_tool_a_node_ran_is_an_execute_tool_span_under_the_nodes_span() -> None:
    box = ToolBox()

    @box.tool()
    def forecast(city: str, api_key: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    @box.tool()
    def tides(port: str) -> str:
        """High and low water."""
        raise RuntimeError(f"the tide service refused key {KEY}")

    calls = [
        ToolCall("forecast", {"city": "Paris", "api_key": KEY}, id="call-1"),
        ToolCall("tides", {"port": "Brest"}, id="call-2"),
    ]
    provider = ScriptedProvider([calls, "Sunny; the tides are unknown."])

    async def weather(ctx: NodeContext) -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather and tides?"}]
        asked = await ctx.call_llm(messages, tools=box.specs)
        messages.append(asked.message())
        messages.extend(await ctx.run_tools(box, asked.tool_calls))
        assert [m["tool_call_id"] for m in messages[2:]] == ["call-1", "call-2"]
        return (await ctx.call_llm(messages, tools=box.specs)).content

    exporter, tracer = collector()
    store = MemoryStore()
    result = await Graph(nodes=[Node(id="weather")], entry="weather").run(
        {"weather": weather}, store=store, run_id="tools", provider=provider, stream_callback=tracer
    )
    assert result.status == "completed"

    ran = [e for e in await store.events("tools") if e.event_type is EventType.TOOL_CALL]
    assert [(e.agent_id, e.data["tool"], e.data["call_id"], e.data["ok"]) for e in ran] == [
        ("weather", "forecast", "call-1", True),
        ("weather", "tides", "call-2", False),
    ]
    assert ran[1].data["error_type"] == "RuntimeError"
    assert all(e.data["duration_s"] >= 0 for e in ran)
    assert KEY not in repr([e.data for e in ran]) and "Paris" not in repr([e.data for e in ran])

    spans = exporter.get_finished_spans()
    names = by_name(spans)
    [node] = names["invoke_agent weather"]
    [ok] = names["execute_tool forecast"]
    [failed] = names["execute_tool tides"]
    for span, event in ((ok, ran[0]), (failed, ran[1])):
        assert span.context.trace_id == trace_id_for("tools")
        assert span.context.span_id == span_id_for("tools", str(event.seq))  # deterministic
        assert span.parent is not None and span.parent.span_id == node.context.span_id
        assert span.attributes["gen_ai.operation.name"] == "execute_tool"
        assert span.attributes["gen_ai.tool.type"] == "function"
        assert node.start_time <= span.start_time <= span.end_time <= node.end_time
    assert ok.attributes["gen_ai.tool.name"] == "forecast"
    assert ok.attributes["gen_ai.tool.call.id"] == "call-1"
    assert ok.status.is_ok and "error.type" not in ok.attributes
    assert not failed.status.is_ok and failed.attributes["error.type"] == "RuntimeError"
    assert len([s for s in spans if s.name.startswith("chat ")]) == 2
    text = repr([(s.name, dict(s.attributes or {}), s.status.description) for s in spans])
    assert KEY not in text and "Paris" not in text and "sunny" not in text

    replayed = InMemorySpanExporter()
    export_run(await store.events("tools"), SimpleSpanProcessor(replayed))
    assert {(s.name, s.context.span_id) for s in replayed.get_finished_spans()} == {
        (s.name, s.context.span_id) for s in spans
    }


def test_tracing_costs_nothing_unless_asked_for() -> None:
    code = "import sys, orchestration; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_without_the_extra_the_error_names_it() -> None:
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from orchestration.backends.otel import RunTracer\n"
        "try:\n    RunTracer(None)\n"
        "except Exception as error:\n    print(type(error).__name__, error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ConfigError OpenTelemetry export needs the otel extra")
    assert "pip install -e '.[otel]'" in out


@pytest.fixture(autouse=True)
def _no_global_provider(monkeypatch: Any) -> None:
    """Traces go only to the processor given: the global tracer provider is never touched."""
    from opentelemetry import trace

    monkeypatch.setattr(trace, "set_tracer_provider", lambda *_: pytest.fail("set_tracer_provider called"))
