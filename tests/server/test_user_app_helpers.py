"""The helpers for users' own apps: an EventSourceResponse for Starlette/FastAPI, and the extra's guard."""

from __future__ import annotations

import asyncio
import importlib.util
import json

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orchestration import MemoryStore
from orchestration.events import EventType
from orchestration.server import ServerDependencyError, create_app
from orchestration.server.sse import workflow_event_response
from tests.streaming.demo import NASTY, DemoOrchestrator

from .harness import running_server, wait_for


async def test_workflow_event_response_streams_a_run_and_cancels_on_disconnect() -> None:
    store = MemoryStore()
    gate = asyncio.Event()
    orchestrators: list[DemoOrchestrator] = []

    async def endpoint(request: Request) -> Response:
        orchestrator = DemoOrchestrator(store=store, gate=gate if request.query_params.get("hold") else None)
        orchestrators.append(orchestrator)
        run_id = request.query_params.get("run_id", "user-run")
        return workflow_event_response(orchestrator, "Stream me", run_id=run_id, ping_interval=0.2)  # type: ignore[no-any-return]

    app = Starlette(routes=[Route("/stream", endpoint)])
    async with running_server(app) as base, httpx.AsyncClient(base_url=base, timeout=20) as client:
        async with client.stream("GET", "/stream") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            text = "".join([chunk async for chunk in response.aiter_text()])
        stored = await store.events("user-run")
        data = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
        assert data == [json.loads(e.to_json()) for e in stored]  # even str.splitlines() is safe
        assert any(NASTY in d["data"].get("synthesis", {}).get("content", "") for d in data)
        async with client.stream("GET", "/stream?hold=1&run_id=left") as response:
            async for line in response.aiter_lines():
                if line == "event: agent_complete":
                    break  # the client goes away mid-run
        await wait_for(lambda: not orchestrators[-1].active_runs)
        events = await store.events("left")
        assert events[-1].event_type is EventType.WORKFLOW_CANCELLED


def test_missing_server_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sse_starlette" else real(name, *a)
    )
    with pytest.raises(ServerDependencyError, match=r"pip install -e '\.\[server\]'"):
        create_app(store=MemoryStore(), token="0123456789abcdef")
