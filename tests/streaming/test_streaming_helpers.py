"""SSE framing and the stream-callback helpers, against real runs of a small orchestrator."""

from __future__ import annotations

import asyncio
import io
import json
import queue
import threading
from typing import Any

import pytest

from orchestration import MemoryStore, SubTask
from orchestration.events import EventType, StreamEvent
from orchestration.streaming import (
    create_sse_callback,
    create_websocket_callback,
    format_sse,
    format_sse_comment,
    iter_sse,
    iter_workflow_sse,
    sse_frames,
    stream_workflow,
)

from .demo import NASTY, DemoOrchestrator
from .sse_parse import parse_stream


def _event(data: dict[str, Any], seq: int = 7, kind: EventType = EventType.TOKEN_DELTA) -> StreamEvent:
    return StreamEvent(kind, "run-1", seq, 1700000000.0, data, agent_id="agent_a", progress=12.5)


def test_format_sse_frames_hostile_text_as_one_event() -> None:
    event = _event({"delta": NASTY})
    frame = format_sse(event)
    assert frame.startswith("id: 7\nevent: token_delta\n")
    assert frame.endswith("\n\n") and frame.count("\n\n") == 1  # blank lines in the text did not leak
    frames, _ = parse_stream(frame)
    assert len(frames) == 1
    assert frames[0].id == "7" and frames[0].event == "token_delta"
    assert json.loads(frames[0].data)["data"]["delta"] == NASTY  # \u2028, CRLF, unicode intact


def test_format_sse_splits_multiline_data_into_data_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(StreamEvent, "to_json", lambda self: "first\nsecond\r\nthird\rfourth")
    frame = format_sse(_event({}), retry_ms=1500)
    assert frame == (
        "id: 7\nevent: token_delta\nretry: 1500\ndata: first\ndata: second\ndata: third\ndata: fourth\n\n"
    )
    frames, _ = parse_stream(frame)
    assert frames[0].data == "first\nsecond\nthird\nfourth"


def test_comment_frames_are_ignored_by_parsers() -> None:
    frames, comments = parse_stream(format_sse_comment("ping\nsecond line"))
    assert frames == [] and comments == ["ping", "second line"]


def test_iter_sse_turns_none_into_keepalive() -> None:
    text = "".join(iter_sse([_event({"delta": "a"}, 1), None, _event({"delta": "b"}, 2)]))
    frames, comments = parse_stream(text)
    assert [f.id for f in frames] == ["1", "2"] and comments == ["ping"]


async def test_sse_frames_pings_when_idle() -> None:
    async def slow() -> Any:
        yield _event({"delta": "x"}, 1)
        await asyncio.sleep(0.3)
        yield _event({"delta": "y"}, 2)

    text = "".join([frame async for frame in sse_frames(slow(), ping_interval=0.05)])
    frames, comments = parse_stream(text)
    assert [f.id for f in frames] == ["1", "2"] and "ping" in comments


async def test_sse_callback_to_asyncio_queue_ends_with_marker() -> None:
    frames: asyncio.Queue[str | None] = asyncio.Queue()
    orchestrator = DemoOrchestrator()
    result = await orchestrator.execute_workflow("Research", stream_callback=create_sse_callback(frames))
    received = []
    while (item := frames.get_nowait()) is not None:
        received.append(item)
    parsed, _ = parse_stream("".join(received))
    stored = await orchestrator.store.events(result.run_id)
    assert [json.loads(f.data) for f in parsed] == [e.to_dict() for e in stored]
    assert frames.empty()


async def test_sse_callback_to_thread_queue_and_streams() -> None:
    thread_queue: queue.Queue[str | None] = queue.Queue()
    text_stream = io.StringIO()
    binary_stream = io.BytesIO()

    class AsyncWriter:
        def __init__(self) -> None:
            self.chunks: list[str] = []
            self.drained = 0

        async def write(self, chunk: str) -> None:
            self.chunks.append(chunk)

        async def drain(self) -> None:
            self.drained += 1

    writer = AsyncWriter()
    sent: list[str] = []
    callbacks = [
        create_sse_callback(thread_queue),
        create_sse_callback(text_stream),
        create_sse_callback(binary_stream),
        create_sse_callback(writer),
        create_sse_callback(sent.append),
    ]

    async def fan_out(event: StreamEvent) -> None:
        for callback in callbacks:
            outcome = callback(event)
            if asyncio.iscoroutine(outcome):
                await outcome

    orchestrator = DemoOrchestrator()
    result = await orchestrator.execute_workflow("Research", stream_callback=fan_out)
    expected = "".join(format_sse(e) for e in await orchestrator.store.events(result.run_id))
    items = []
    while (item := thread_queue.get_nowait()) is not None:
        items.append(item)
    assert "".join(items) == expected
    assert text_stream.getvalue() == expected
    assert binary_stream.getvalue() == expected.encode("utf-8")
    assert "".join(writer.chunks) == expected and writer.drained == len(writer.chunks)
    assert "".join(sent) == expected


def test_sse_callback_rejects_unusable_target() -> None:
    with pytest.raises(TypeError, match=r"asyncio\.Queue"):
        create_sse_callback(42)


async def test_websocket_callback_sends_json_messages() -> None:
    class StarletteLike:
        def __init__(self) -> None:
            self.messages: list[str] = []

        async def send_text(self, text: str) -> None:
            self.messages.append(text)

    class WebsocketsLike:
        def __init__(self) -> None:
            self.messages: list[str] = []

        def send(self, text: str) -> None:
            self.messages.append(text)

    first, second = StarletteLike(), WebsocketsLike()
    one, two = create_websocket_callback(first), create_websocket_callback(second)

    async def both(event: StreamEvent) -> None:
        await one(event)
        await two(event)

    orchestrator = DemoOrchestrator()
    result = await orchestrator.execute_workflow("Research", stream_callback=both)
    stored = await orchestrator.store.events(result.run_id)
    assert first.messages == second.messages
    decoded = [json.loads(m) for m in first.messages]
    assert decoded == [json.loads(json.dumps({"id": e.seq, **e.to_dict()})) for e in stored]
    assert any("<script>" in m for m in first.messages)
    with pytest.raises(TypeError):
        create_websocket_callback(object())


async def test_stream_workflow_yields_every_event_then_ends() -> None:
    orchestrator = DemoOrchestrator()
    events = [event async for event in stream_workflow(orchestrator, "Research", title="T")]
    assert events[-1].is_terminal and events[-1].data["status"] == "completed"
    stored = await orchestrator.store.events(events[0].run_id)
    assert events == stored


async def test_stream_workflow_closed_early_cancels_the_run() -> None:
    gate = asyncio.Event()
    orchestrator = DemoOrchestrator(gate=gate)
    stream = stream_workflow(orchestrator, "Research", run_id="early-close")
    async for event in stream:
        if event.event_type is EventType.AGENT_COMPLETE:
            break
    await stream.aclose()
    events = await orchestrator.store.events("early-close")
    assert events[-1].event_type is EventType.WORKFLOW_CANCELLED
    assert orchestrator.active_runs == []


async def test_stream_workflow_raises_what_the_run_raises() -> None:
    with pytest.raises(Exception, match="task"):
        async for _ in stream_workflow(DemoOrchestrator(), "   "):
            pass


def test_iter_workflow_sse_is_a_plain_generator() -> None:
    store = MemoryStore()
    orchestrator = DemoOrchestrator(store=store)
    text = "".join(iter_workflow_sse(orchestrator, "Research", run_id="sync-run", ping_interval=5))
    frames, _ = parse_stream(text)
    assert frames[-1].event == "workflow_complete"
    assert [int(f.id or 0) for f in frames] == list(range(1, len(frames) + 1))


def test_iter_workflow_sse_closed_early_cancels() -> None:
    release = threading.Event()
    plan = [SubTask(id="a", description="first"), SubTask(id="b", description="blocked", dependencies=["a"])]

    class Blocking(DemoOrchestrator):
        async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> Any:
            if subtask.id == "b":
                await asyncio.to_thread(release.wait)
            return await super().execute_subtask(subtask, context)

    orchestrator = Blocking(plan=plan)
    stream = iter_workflow_sse(orchestrator, "Research", run_id="sync-cancel", ping_interval=0.05)
    for frame in stream:
        if "event: agent_start" in frame and '"subtask_id":"b"' in frame:
            break
    stream.close()
    release.set()
    events = asyncio.run(orchestrator.store.events("sync-cancel"))
    assert events[-1].event_type is EventType.WORKFLOW_CANCELLED
