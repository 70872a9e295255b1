"""OpenTelemetry traces of runs, following the GenAI semantic conventions.

A run's trace is derived from its events alone, so it is the same whether it is made
live (``stream_callback=RunTracer(processor)``) or afterwards from the store
(:func:`export_run`), and ids are deterministic: the trace id is a hash of the run id,
each span id a hash of the run id and the ``seq`` of the event that opened it.  A run
resumed in another process, or spread over workers, therefore forms one trace.

Spans (semantic conventions for generative AI, :data:`SEMCONV_VERSION`):

- ``invoke_agent {orchestrator}`` for the run (the root), with its usage;
- a run that paused and goes on (answers arrived, a guardrail pause was lifted) gets one
  more ``invoke_agent {orchestrator}`` per resume, a child of the root, from the resume
  to the next pause or the end: every span is closed at a pause (nothing is left open
  while a run waits, maybe for days), and what the resumed run does nests under its
  resume's span, in whichever process resumed it.  A process that died leaves its spans
  unexported; the ``workflow_resumed`` event of the resume names the segment and the
  visits it interrupted, so the resuming process ends them under the same ids (a graph
  run's resume; an orchestrator run's resume reopens the root);
- ``invoke_agent {agent}`` for each subtask's agent, the planner, the synthesizer and
  each graph node's visit;
- ``chat {model}`` for each model call (``cost_update``), a child of the agent that made
  it: ``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens``,
  ``gen_ai.usage.output_tokens``, cached, cache-write and reasoning tokens, and the cost.
- ``execute_tool {tool}`` for each tool call a node ran (``tool_call``,
  ``NodeContext.run_tools``), a child of the node's span: ``gen_ai.tool.name``,
  ``gen_ai.tool.call.id``, ``gen_ai.tool.type`` and, for a failed call, ``error.type``
  (the call's arguments and result are never put on it).

Nothing here is imported unless asked for (``pip install -e '.[otel]'``): tracing is off
by default and costs nothing then.  Prompts and answers are not put on spans.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import ConfigError
from ..events import TERMINAL_EVENTS, EventType, StreamEvent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.trace import SpanContext

__all__ = ["SEMCONV_VERSION", "RunTracer", "export_run", "span_id_for", "trace_id_for"]

#: The version of the OpenTelemetry semantic conventions (GenAI spans) these traces follow.
SEMCONV_VERSION = "1.38.0"


def _opening_agent(event: StreamEvent) -> str | None:
    """The agent whose span ``event`` opens, or None."""
    kind = event.event_type
    if kind is EventType.AGENT_START:
        return event.agent_id or str(event.data.get("subtask_id") or "agent")
    if kind is EventType.DECOMPOSITION_START:
        return "planner"
    if kind is EventType.SYNTHESIS_START:
        return event.agent_id or "synthesizer"
    if kind is EventType.GRAPH_NODE_STARTED:
        return str(event.data.get("node"))
    return None


_AGENT_CLOSE = {
    EventType.AGENT_COMPLETE: None,
    EventType.AGENT_ERROR: "agent failed",
    EventType.AGENT_SKIPPED: None,
    EventType.DECOMPOSITION_COMPLETE: None,
    EventType.SYNTHESIS_COMPLETE: None,
    EventType.GRAPH_NODE_COMPLETED: None,
    EventType.GRAPH_NODE_FAILED: "node failed",
    EventType.GRAPH_NODE_CANCELLED: "node cancelled",
    EventType.GRAPH_NODE_INTERRUPTED: None,
    EventType.GRAPH_NODE_REQUEUED: None,
}


def _id(text: str, size: int) -> int:
    value = int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:size], "big")
    return value or 1  # zero is the invalid id


def trace_id_for(run_id: str) -> int:
    """The run's trace id (128 bits, from the run id)."""
    return _id(f"trace:{run_id}", 16)


def span_id_for(run_id: str, key: str) -> int:
    """A span's id (64 bits): the run id and what opened the span (``run`` or an event seq)."""
    return _id(f"span:{run_id}:{key}", 8)


def _otel() -> Any:
    try:
        from opentelemetry import trace
        from opentelemetry.sdk import trace as sdk_trace
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    except ImportError as error:
        raise ConfigError(
            f"OpenTelemetry export needs the otel extra ({error}): pip install -e '.[otel]'"
        ) from None
    return trace, sdk_trace, InstrumentationScope


class _Open:
    __slots__ = ("attributes", "name", "parent", "span_id", "start")

    def __init__(self, name: str, span_id: int, parent: int | None, start: float, attributes: dict[str, Any]):
        self.name = name
        self.span_id = span_id
        self.parent = parent
        self.start = start
        self.attributes = attributes


class RunTracer:
    """A stream callback that turns each run's events into spans for ``processor``.

    ``processor`` is an OpenTelemetry ``SpanProcessor`` (e.g. ``BatchSpanProcessor(
    OTLPSpanExporter())``); finished spans are handed to its ``on_end``.  One tracer may
    watch many runs.
    """

    def __init__(self, processor: SpanProcessor, *, service_name: str = "orchestration") -> None:
        trace, sdk_trace, scope = _otel()
        from opentelemetry.sdk.resources import Resource

        self._trace = trace
        self._span_type = sdk_trace.ReadableSpan
        self._scope = scope(
            "orchestration", __version__, schema_url=f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
        )
        self._resource = Resource.create({"service.name": service_name})
        self.processor = processor
        self._runs: dict[str, dict[str, Any]] = {}
        self._paused: set[str] = set()  # runs whose pause this tracer saw (their spans ended)

    def _segment(self, event: StreamEvent, run: dict[str, Any]) -> None:
        """Open the span of the run (its start) or of a resumed segment (see the module docstring)."""
        data = event.data
        kind = event.event_type
        name = str(data.get("orchestrator") or data.get("title") or "run")
        key, parent, start = "run", None, event.timestamp
        if kind is EventType.WORKFLOW_RESUMED:
            after = data.get("after")
            if after == "paused" or (after is None and event.run_id in self._paused):
                key, parent = str(event.seq), span_id_for(event.run_id, "run")
            elif after == "stopped":
                segment = int(data.get("segment") or 0)
                if segment:
                    key, parent = str(segment), span_id_for(event.run_id, "run")
                started = data.get("segment_started_at")
                start = float(started) if isinstance(started, int | float) else start
                for node, opened in dict(data.get("open") or {}).items():
                    seq, at = opened
                    run["agents"][str(node)] = self._agent(event.run_id, str(node), str(seq), float(at), run)
        self._paused.discard(event.run_id)
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": name,
            "gen_ai.conversation.id": event.run_id,
        }
        run["root"] = _Open(f"invoke_agent {name}", span_id_for(event.run_id, key), parent, start, attributes)
        for opened in run["agents"].values():
            opened.parent = run["root"].span_id

    def _agent(self, run_id: str, agent: str, key: str, start: float, run: Mapping[str, Any]) -> _Open:
        root = run["root"]
        return _Open(
            f"invoke_agent {agent}",
            span_id_for(run_id, key),
            root.span_id if root is not None else span_id_for(run_id, "run"),
            start,
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent, "gen_ai.agent.id": agent},
        )

    def __call__(self, event: StreamEvent) -> None:
        run = self._runs.setdefault(event.run_id, {"agents": {}, "root": None, "usage": _Tally()})
        kind = event.event_type
        if kind is EventType.WORKFLOW_START or (
            kind is EventType.WORKFLOW_RESUMED
            and (run["root"] is None or event.data.get("after") is not None)
        ):
            self._segment(event, run)
        root = run["root"]
        agent = _opening_agent(event)
        if agent is not None:
            run["agents"][agent] = self._agent(event.run_id, agent, str(event.seq), event.timestamp, run)
        elif kind is EventType.COST_UPDATE:
            self._chat(event, run)
        elif kind is EventType.TOOL_CALL:
            self._tool(event, run)
        elif kind in _AGENT_CLOSE:
            opened = run["agents"].pop(_closing_agent(event), None)
            if opened is not None:
                self._end(event.run_id, opened, event.timestamp, _AGENT_CLOSE[kind])
        if kind in TERMINAL_EVENTS:
            for opened in run["agents"].values():  # e.g. a cancelled run's agents
                self._end(event.run_id, opened, event.timestamp, None)
            if root is not None:
                root.attributes.update(run["usage"].attributes())
                error = event.data.get("error") if kind is not EventType.WORKFLOW_COMPLETE else None
                self._end(event.run_id, root, event.timestamp, str(error) if error else None)
            del self._runs[event.run_id]
            if kind is EventType.WORKFLOW_PAUSED:
                self._paused.add(event.run_id)  # its next resume opens a new segment

    def _parent(self, event: StreamEvent, run: Mapping[str, Any]) -> int:
        """The span of the agent ``event`` concerns (else the run's)."""
        agent = run["agents"].get(event.agent_id or "")
        if agent is not None:
            return int(agent.span_id)
        root = run["root"]
        return int(root.span_id) if root is not None else span_id_for(event.run_id, "run")

    def _tool(self, event: StreamEvent, run: Mapping[str, Any]) -> None:
        data = event.data
        name = str(data.get("tool") or "unknown")
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": "function",
        }
        if data.get("call_id"):
            attributes["gen_ai.tool.call.id"] = str(data["call_id"])
        if event.agent_id:
            attributes["gen_ai.agent.name"] = event.agent_id
        started = data.get("started_at")
        start = float(started) if isinstance(started, int | float) and started else event.timestamp
        duration = data.get("duration_s")
        end = start + float(duration) if isinstance(duration, int | float) else event.timestamp
        error = None if data.get("ok", True) else str(data.get("error_type") or "tool_error")
        opened = _Open(
            f"execute_tool {name}",
            span_id_for(event.run_id, str(event.seq)),
            self._parent(event, run),
            start,
            attributes,
        )
        self._end(event.run_id, opened, end, error, error_type=error)

    def _chat(self, event: StreamEvent, run: Mapping[str, Any]) -> None:
        data = event.data
        usage = data.get("usage") or {}
        run["usage"].add(usage)
        model = str(data.get("model") or "unknown")
        parent = self._parent(event, run)
        started = data.get("started_at")
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.provider.name": str(data.get("provider") or "unknown"),
            **_usage_attributes(usage),
        }
        if data.get("finish_reason"):
            attributes["gen_ai.response.finish_reasons"] = (str(data["finish_reason"]),)
        if event.agent_id:
            attributes["gen_ai.agent.name"] = event.agent_id
        opened = _Open(
            f"chat {model}",
            span_id_for(event.run_id, str(event.seq)),
            parent,
            float(started) if isinstance(started, int | float) else event.timestamp,
            attributes,
        )
        self._end(event.run_id, opened, event.timestamp, None, client=True)

    def _end(
        self,
        run_id: str,
        opened: _Open,
        end: float,
        error: str | None,
        *,
        client: bool = False,
        error_type: str | None = None,
    ) -> None:
        trace = self._trace
        flags = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        context = trace.SpanContext(trace_id_for(run_id), opened.span_id, is_remote=False, trace_flags=flags)
        parent: SpanContext | None = (
            trace.SpanContext(trace_id_for(run_id), opened.parent, is_remote=False, trace_flags=flags)
            if opened.parent is not None
            else None
        )
        status = (
            trace.Status(trace.StatusCode.ERROR, error) if error else trace.Status(trace.StatusCode.UNSET)
        )
        if error:
            opened.attributes["error.type"] = error_type or (
                "run_error" if opened.parent is None else "agent_error"
            )
        span: ReadableSpan = self._span_type(
            opened.name,
            context=context,
            parent=parent,
            resource=self._resource,
            attributes=opened.attributes,
            kind=trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL,
            status=status,
            start_time=int(opened.start * 1e9),
            end_time=int(max(end, opened.start) * 1e9),
            instrumentation_scope=self._scope,
        )
        self.processor.on_end(span)


def _closing_agent(event: StreamEvent) -> str:
    kind = event.event_type
    if kind is EventType.DECOMPOSITION_COMPLETE:
        return "planner"
    if kind is EventType.SYNTHESIS_COMPLETE:
        return event.agent_id or "synthesizer"
    if kind.value.startswith("graph_"):
        return str(event.data.get("node"))
    result = event.data.get("result") or {}
    return event.agent_id or str(result.get("subtask_id") or "agent")


def _usage_attributes(usage: Mapping[str, Any]) -> dict[str, Any]:
    names = {
        "input_tokens": "gen_ai.usage.input_tokens",
        "output_tokens": "gen_ai.usage.output_tokens",
        "cached_input_tokens": "gen_ai.usage.cache_read.input_tokens",
        "cache_write_tokens": "gen_ai.usage.cache_creation.input_tokens",
        "reasoning_tokens": "gen_ai.usage.reasoning.output_tokens",
    }
    attributes: dict[str, Any] = {
        name: int(usage.get(key) or 0) for key, name in names.items() if key in usage
    }
    attributes["orchestration.cost_usd"] = float(usage.get("cost_usd") or 0.0)
    if usage.get("estimated"):
        attributes["orchestration.usage.estimated"] = True
    return attributes


class _Tally:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add(self, usage: Mapping[str, Any]) -> None:
        for key, value in usage.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.totals[key] = self.totals.get(key, 0) + value

    def attributes(self) -> dict[str, Any]:
        return _usage_attributes(self.totals)


def export_run(events: Iterable[StreamEvent], processor: SpanProcessor) -> None:
    """Make a stored run's trace (its events, in order) and hand the spans to ``processor``."""
    tracer = RunTracer(processor)
    for event in events:
        tracer(event)
