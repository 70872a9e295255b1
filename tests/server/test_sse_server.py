"""The SSE endpoint on a real uvicorn (127.0.0.1, port 0) read with an httpx SSE client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from orchestration import MemoryStore
from orchestration.events import EventType, StreamEvent
from orchestration.server import create_app
from orchestration.server.runs import RunRequest
from orchestration.stores.base import RunStore
from tests.streaming.demo import NASTY, DemoOrchestrator
from tests.streaming.sse_parse import parse_stream

from .harness import AUTH, TOKEN, read_events, running_server, wait_for


class Gates:
    """Builds gated demo orchestrators and keeps their gates, so a test can hold a run mid-way."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.gates: list[asyncio.Event] = []

    def __call__(self, request: RunRequest, store: RunStore) -> DemoOrchestrator:
        gate = asyncio.Event()
        self.gates.append(gate)
        return DemoOrchestrator(store=store, gate=gate, delay=self.delay)

    def open_all(self) -> None:
        for gate in self.gates:
            gate.set()


@pytest.fixture
async def served() -> AsyncIterator[Callable[..., Any]]:
    """``await served(factory)`` -> (client, app); everything is torn down after the test."""
    stack: list[Any] = []

    async def start(factory: Any = None, **options: Any) -> tuple[httpx.AsyncClient, Any]:
        factory = factory or (lambda request, store: DemoOrchestrator(store=store))
        app = create_app(
            factory, MemoryStore(), TOKEN, ping_interval=options.pop("ping_interval", 15), **options
        )
        server = running_server(app)
        base = await server.__aenter__()
        stack.append(server)
        client = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(20.0))
        stack.append(client)
        return client, app

    yield start
    for item in reversed(stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            await item.__aexit__(None, None, None)


async def _start(client: httpx.AsyncClient, **body: Any) -> str:
    payload = {"pattern": "tests.streaming.demo:DemoOrchestrator", "task": "Research SSE", **body}
    response = await client.post("/runs", json=payload, headers=AUTH)
    assert response.status_code == 202, response.text
    return str(response.json()["run_id"])


def _assert_complete(events: list[StreamEvent], stored: list[StreamEvent]) -> None:
    assert [e.seq for e in events] == list(range(1, len(stored) + 1))
    assert events == stored


async def test_full_stream_framing_with_hostile_text(served: Any) -> None:
    client, app = await served()
    run_id = await _start(client)
    async with client.stream("GET", f"/runs/{run_id}/events", headers=AUTH) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = "".join([chunk async for chunk in response.aiter_text()])
    frames, _ = parse_stream(raw)  # fails on any line that is not id/event/data/retry/comment
    stored = await app.state.store.events(run_id)
    assert [int(f.id or 0) for f in frames] == [e.seq for e in stored]
    assert [f.event for f in frames] == [str(e.event_type) for e in stored]
    assert [json.loads(f.data) for f in frames] == [json.loads(e.to_json()) for e in stored]
    synthesis = next(e for e in stored if e.event_type is EventType.SYNTHESIS_COMPLETE)
    assert NASTY in synthesis.data["synthesis"]["content"]  # the hostile text made the round trip


async def test_reconnect_with_last_event_id_mid_run(served: Any) -> None:
    gates = Gates()
    client, app = await served(gates)
    run_id = await _start(client)
    url = f"/runs/{run_id}/events"
    first = await read_events(client, url, stop_after=5)  # the run is held at the gate meanwhile
    second = await read_events(client, url, last_event_id=first[-1].seq, stop_after=10)
    gates.open_all()
    third = await read_events(client, f"{url}?last_event_id={second[-1].seq}")  # query form
    stored = await app.state.store.events(run_id)
    _assert_complete(first + second + third, stored)
    assert third[-1].is_terminal


async def test_finished_run_answers_204_and_replays_the_rest(served: Any) -> None:
    client, _app = await served()
    run_id = await _start(client)
    everything = await read_events(client, f"/runs/{run_id}/events")
    last = everything[-1].seq
    done = await client.get(f"/runs/{run_id}/events", headers={**AUTH, "Last-Event-ID": str(last)})
    assert done.status_code == 204
    beyond = await client.get(f"/runs/{run_id}/events?last_event_id={last + 50}", headers=AUTH)
    assert beyond.status_code == 204
    tail = await read_events(client, f"/runs/{run_id}/events", last_event_id=last - 3)
    assert [e.seq for e in tail] == [last - 2, last - 1, last]
    bad = await client.get(f"/runs/{run_id}/events", headers={**AUTH, "Last-Event-ID": "abc"})
    assert bad.status_code == 400
    missing = await client.get("/runs/nope/events", headers=AUTH)
    assert missing.status_code == 404


async def test_wrong_or_missing_token_is_refused(served: Any) -> None:
    client, _ = await served()
    port = client.base_url.port
    run_id = await _start(client)
    url = f"/runs/{run_id}/events"
    for headers, query in [
        ({}, ""),
        ({"Authorization": "Bearer wrong-token-000000"}, ""),
        ({"Authorization": f"Basic {TOKEN}"}, ""),
        ({}, "?token=wrong-token-000000"),
        ({"Cookie": f"orchestration_token_{port}=wrong-token-000000"}, ""),
        ({"Cookie": f"orchestration_token={TOKEN}"}, ""),  # another port's name is not this server's
    ]:
        for path in (url + query, "/runs" + query, "/" + query):
            response = await client.get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert TOKEN not in response.text
            assert response.headers["www-authenticate"].startswith("Bearer")
    refused = await client.post("/runs", json={"pattern": "x", "task": "y"})
    assert refused.status_code == 401
    page = await client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "token" in page.text
    # the three accepted forms
    assert (await client.get("/runs", headers=AUTH)).status_code == 200
    by_query = await client.get(f"/?token={TOKEN}")
    assert by_query.status_code == 200
    cookie = by_query.headers["set-cookie"]
    assert cookie.startswith(f"orchestration_token_{port}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    jar = {"Cookie": f"orchestration_token_{port}={TOKEN}"}
    assert (await client.get("/runs", headers=jar)).status_code == 200


async def test_fifty_concurrent_clients_get_the_whole_run(served: Any) -> None:
    gates = Gates(delay=0.005)
    client, app = await served(gates)
    run_id = await _start(client)
    url = f"/runs/{run_id}/events"
    readers = [asyncio.create_task(read_events(client, url)) for _ in range(50)]
    await wait_for(lambda: app.state.broadcaster.subscriber_count(run_id) == 50, limit=30)
    gates.open_all()
    results = await asyncio.gather(*readers)
    stored = await app.state.store.events(run_id)
    assert stored[-1].is_terminal
    for events in results:
        _assert_complete(events, stored)
    await wait_for(lambda: app.state.broadcaster.subscriber_count() == 0)


async def test_keepalive_pings_and_disconnect_cleanup(served: Any) -> None:
    gates = Gates()
    client, app = await served(gates, ping_interval=0.1)
    run_id = await _start(client)
    async with client.stream("GET", f"/runs/{run_id}/events", headers=AUTH) as response:
        received = ""
        async for chunk in response.aiter_text():
            received += chunk
            if received.count(": ping") >= 2:
                break
    assert app.state.broadcaster.subscriber_count(run_id) <= 1
    await wait_for(lambda: app.state.broadcaster.subscriber_count(run_id) == 0)
    gates.open_all()
    await app.state.runs.wait(run_id)
