"""Run the server on 127.0.0.1 (port 0) inside the test's event loop, and read SSE."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from orchestration.events import StreamEvent

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextlib.asynccontextmanager
async def running_server(app: Any, port: int = 0, **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on loopback (a free port unless given); yields the base URL.

    ``options`` go to ``uvicorn.Config`` (e.g. ``h11_max_incomplete_event_size``).
    """
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=2,
        **options,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn exited before it started")
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def read_events(
    client: httpx.AsyncClient,
    url: str,
    *,
    last_event_id: int | None = None,
    stop_after: int | None = None,
    headers: dict[str, str] | None = None,
) -> list[StreamEvent]:
    """Events from an SSE endpoint until it ends (or ``stop_after`` events), checking framing."""
    events: list[StreamEvent] = []
    send = dict(headers if headers is not None else AUTH)
    if last_event_id is not None:
        send["Last-Event-ID"] = str(last_event_id)
    async with aconnect_sse(client, "GET", url, headers=send) as source:
        source.response.raise_for_status()
        async for sse in source.aiter_sse():
            event = StreamEvent.from_dict(json.loads(sse.data))
            assert sse.id == str(event.seq), (sse.id, event.seq)
            assert sse.event == str(event.event_type)
            events.append(event)
            if stop_after is not None and len(events) >= stop_after:
                break
    return events


async def wait_for(predicate: Any, limit: float = 10.0) -> None:
    """Poll ``predicate()`` (sync or async) until true, for at most ``limit`` seconds."""
    async with asyncio.timeout(limit):
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return
            await asyncio.sleep(0.01)
