"""The broadcaster and follow_run: replay + live, exactly once, lag and other writers."""

from __future__ import annotations

import asyncio
import time

from orchestration import MemoryStore
from orchestration.events import EventType, StreamEvent
from orchestration.server.broadcast import EventBroadcaster, follow_run, follow_run_batches


def _events(run_id: str, count: int) -> list[StreamEvent]:
    kinds = [EventType.WORKFLOW_START] + [EventType.TOKEN_DELTA] * (count - 2) + [EventType.WORKFLOW_COMPLETE]
    return [
        StreamEvent(kind, run_id, seq, time.time(), {"delta": str(seq)} if kind is EventType.TOKEN_DELTA else
                    {"status": "completed"} if kind is EventType.WORKFLOW_COMPLETE else {})
        for seq, kind in enumerate(kinds, start=1)
    ]  # fmt: skip


async def _write(
    store: MemoryStore, hub: EventBroadcaster | None, events: list[StreamEvent], pause: int = 0
) -> None:
    """What the core does: append to the store, then call the stream callback."""
    for event in events:
        await store.append(event.run_id, [event])
        if hub is not None:
            hub.publish(event)
        if pause and event.seq % pause == 0:
            await asyncio.sleep(0)


async def test_replay_then_live_exactly_once() -> None:
    store, hub = MemoryStore(), EventBroadcaster()
    events = _events("r", 300)
    await _write(store, hub, events[:100])
    follower = asyncio.create_task(_collect(follow_run(store, hub, "r", 40)))
    await asyncio.sleep(0)
    await _write(store, hub, events[100:], pause=7)
    received = await follower
    assert [e.seq for e in received] == list(range(41, 301))
    assert hub.subscriber_count() == 0  # unsubscribed at the end


async def test_a_lagging_subscriber_catches_up_from_the_store() -> None:
    store, hub = MemoryStore(), EventBroadcaster(queue_size=5)
    events = _events("r", 200)
    stream = follow_run_batches(store, hub, "r", 0, poll_interval=5)
    first = await asyncio.wait_for(_first_after(stream, store, hub, events[0]), 5)
    assert [e.seq for e in first] == [1]
    await _write(store, hub, events[1:])  # 199 events into a queue of 5: it overflows
    rest = [e async for batch in stream for e in batch]
    assert [e.seq for e in rest] == list(range(2, 201))


async def _first_after(
    stream: object, store: MemoryStore, hub: EventBroadcaster, event: StreamEvent
) -> list[StreamEvent]:
    getter = asyncio.ensure_future(stream.__anext__())  # type: ignore[attr-defined]
    await asyncio.sleep(0.01)
    await _write(store, hub, [event])
    return await getter  # type: ignore[no-any-return]


async def test_follows_a_run_written_by_another_process() -> None:
    store, hub = MemoryStore(), EventBroadcaster()  # nothing publishes: only the store moves
    events = _events("other", 50)
    follower = asyncio.create_task(_collect(follow_run(store, hub, "other", 0, poll_interval=0.02)))
    for start in range(0, 50, 10):
        await _write(store, None, events[start : start + 10])
        await asyncio.sleep(0.03)
    received = await asyncio.wait_for(follower, 5)
    assert [e.seq for e in received] == list(range(1, 51))


async def test_live_flags() -> None:
    hub = EventBroadcaster()
    hub.mark_live("x")
    assert hub.is_live("x")
    hub.mark_done("x")
    assert not hub.is_live("x")
    hub.publish(_events("nobody-listens", 2)[0])  # publishing without subscribers is fine


async def _collect(stream: object) -> list[StreamEvent]:
    return [event async for event in stream]  # type: ignore[attr-defined]
