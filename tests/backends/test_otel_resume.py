"""Traces of runs that pause and go on, or whose process dies: one trace, no orphan spans.

A new :class:`RunTracer` stands for a new process: it has seen nothing of the run before
the resume.  The checks are the same everywhere: every span in the run's trace, no span
id twice, one root, and every parent among the spans exported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestration import Edge, EventType, Graph, MemoryStore, Node, NodeKind, OrchestratorConfig, StreamEvent
from orchestration.backends.otel import RunTracer, export_run, span_id_for, trace_id_for
from orchestration.graph import NodeContext, answer
from orchestration.guardrails import Guardrails
from orchestration.scripted import ScriptedProvider, demo_provider
from tests.core.cli_fixture import TwoStep

ROOT = Path(__file__).resolve().parents[2]


def collector() -> tuple[InMemorySpanExporter, RunTracer]:
    exporter = InMemorySpanExporter()
    return exporter, RunTracer(SimpleSpanProcessor(exporter))


def shape(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> set[tuple[str, int, int | None]]:
    return {(s.name, s.context.span_id, s.parent.span_id if s.parent else None) for s in spans}


def assert_one_whole_trace(spans: list[ReadableSpan], run_id: str) -> None:
    assert spans
    assert {s.context.trace_id for s in spans} == {trace_id_for(run_id)}
    ids = [s.context.span_id for s in spans]
    assert len(ids) == len(set(ids)), "a span was exported twice"
    roots = [s for s in spans if s.parent is None]
    assert [r.context.span_id for r in roots] == [span_id_for(run_id, "run")]
    orphans = [s.name for s in spans if s.parent is not None and s.parent.span_id not in set(ids)]
    assert orphans == [], f"spans whose parent was never exported: {orphans}"


def graph() -> Graph:
    return Graph(
        nodes=[Node(id="draft"), Node(id="title"), Node(id="publish", kind=NodeKind.TERMINAL)],
        edges=[Edge(source="draft", target="title"), Edge(source="title", target="publish")],
    )


async def draft(ctx: NodeContext) -> str:
    return (await ctx.call_llm("Draft a note on tides", max_tokens=30)).content


async def title(ctx: NodeContext) -> str:
    chosen = await ctx.interrupt("Title?", str)
    return str((await ctx.call_llm(f"Polish the title {chosen}", max_tokens=10)).content)


HANDLERS = {"draft": draft, "title": title}


async def test_a_paused_and_resumed_graph_run_is_one_trace_with_a_span_per_resume() -> None:
    store = MemoryStore()
    provider = ScriptedProvider("fine words")
    first_exporter, first = collector()
    paused = await graph().run(HANDLERS, store=store, run_id="gp", provider=provider, stream_callback=first)
    assert paused.status == "paused"
    before = list(first_exporter.get_finished_spans())
    assert {s.name for s in before} >= {"invoke_agent graph", "invoke_agent draft", "invoke_agent title"}
    assert_one_whole_trace(before, "gp")  # nothing left open while the run waits

    await answer(store, "gp", "title", "Tides")
    second_exporter, second = collector()  # another process
    done = await graph().run(HANDLERS, store=store, run_id="gp", provider=provider, stream_callback=second)
    assert done.status == "completed"
    after = list(second_exporter.get_finished_spans())
    spans = before + after
    assert_one_whole_trace(spans, "gp")
    [resumed] = [s for s in after if s.name == "invoke_agent graph"]
    assert resumed.parent is not None and resumed.parent.span_id == span_id_for("gp", "run")
    titles = [s for s in spans if s.name == "invoke_agent title"]
    assert len(titles) == 2  # the visit that asked, and the one that went on with the answer
    assert titles[-1].parent is not None and titles[-1].parent.span_id == resumed.context.span_id
    polish = [s for s in after if s.name.startswith("chat ")]
    assert len(polish) == 1 and polish[0].parent is not None
    assert polish[0].parent.span_id == titles[-1].context.span_id

    replayed = InMemorySpanExporter()
    export_run(await store.events("gp"), SimpleSpanProcessor(replayed))
    assert shape(replayed.get_finished_spans()) == shape(spans)  # the same trace from the store


async def test_a_graph_run_resumed_after_its_process_died_ends_the_spans_it_left_open() -> None:
    full = MemoryStore()
    await graph().run(HANDLERS, store=full, run_id="c", provider=ScriptedProvider("w"))
    events = await full.events("c")
    # The process died right after the first model call of "draft": that call's span went
    # out (a child of the draft visit's span, which was still open and never exported).
    cut = next(i for i, e in enumerate(events) if e.event_type is EventType.COST_UPDATE) + 1
    store = MemoryStore()
    await store.append("c", events[:cut])
    dead_exporter = InMemorySpanExporter()
    export_run(events[:cut], SimpleSpanProcessor(dead_exporter))  # what the dead process had sent
    sent = list(dead_exporter.get_finished_spans())
    assert [s.name for s in sent] == ["chat scripted"]
    resumed_exporter, resumed = collector()
    paused = await graph().run(
        HANDLERS, store=store, run_id="c", provider=ScriptedProvider("w"), stream_callback=resumed
    )
    assert paused.status == "paused"
    markers = [e for e in await store.events("c") if e.event_type is EventType.WORKFLOW_RESUMED]
    assert markers and markers[0].data["after"] == "stopped" and "draft" in markers[0].data["open"]
    assert_one_whole_trace(sent + list(resumed_exporter.get_finished_spans()), "c")


def test_a_workflow_resumed_by_other_processes_continues_its_trace(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def worker() -> list[dict[str, Any]]:
        done = subprocess.run(
            [sys.executable, "-m", "tests.backends.otel_worker", url, "wf-trace"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))

    def cli_answer(node: str, value: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "orchestration.cli", "answer", "wf-trace", node, value, "--store", url],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    spans = worker()  # pauses at the title question
    cli_answer("title", "Tides")
    spans += worker()  # pauses at the approval gate
    cli_answer("publish", "true")
    spans += worker()  # completes
    ids = [s["id"] for s in spans]
    assert len(ids) == len(set(ids))
    assert [s["id"] for s in spans if s["parent"] is None] == [span_id_for("wf-trace", "run")]
    assert all(s["parent"] is None or s["parent"] in set(ids) for s in spans)
    segments = [s for s in spans if s["name"] == "invoke_agent tests.graph.interrupt_worker:Publish"]
    assert len(segments) == 3  # the start and two resumes, each from its own process


async def test_an_orchestrator_run_paused_by_a_guardrail_and_resumed_is_one_trace() -> None:
    store = MemoryStore()
    policies = "policies:\n  - name: checkpoint\n    when: calls >= 1\n    action: pause_run\n"
    exporter, tracer = collector()
    orchestrator = TwoStep(
        OrchestratorConfig(), demo_provider(), store=store, guardrails=Guardrails.load(policies)
    )
    first = await orchestrator.execute_workflow("a task", run_id="op", stream_callback=tracer)
    assert str(first.status) == "paused"
    again = TwoStep(OrchestratorConfig(), demo_provider(), store=store)
    await again.resume("op", tracer)  # the same tracer: it saw the pause
    spans = list(exporter.get_finished_spans())
    assert_one_whole_trace(spans, "op")
    replayed = InMemorySpanExporter()
    export_run(await store.events("op"), SimpleSpanProcessor(replayed))
    assert shape(replayed.get_finished_spans()) == shape(spans)


def test_stream_events_for_the_marker_are_plain_json() -> None:
    event = StreamEvent(EventType.WORKFLOW_RESUMED, "r", 3, 0.0, {"after": "paused", "from_seq": 2})
    assert json.loads(json.dumps(event.to_dict()))["data"]["after"] == "paused"
