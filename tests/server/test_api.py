"""The JSON API: start, list, inspect, cancel runs, and download their reports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestration import MemoryStore
from orchestration.server import create_app, generate_token
from orchestration.server.auth import RedactTokenFilter, TokenAuthMiddleware
from orchestration.server.runs import RunRequest
from orchestration.stores.base import RunStore
from tests.streaming.demo import DemoOrchestrator

from .harness import AUTH, TOKEN, read_events, running_server

DEMO = "tests.streaming.demo:DemoOrchestrator"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(
        store=MemoryStore(), token=TOKEN, reports_dir=tmp_path / "reports", allow_patterns=[DEMO]
    )
    async with (
        running_server(app) as base,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=20) as client,
    ):
        yield client, app


async def test_start_list_and_inspect_a_run(api: tuple[httpx.AsyncClient, Any]) -> None:
    client, _app = api
    response = await client.post(
        "/runs",
        json={"pattern": DEMO, "task": "Compare SSE and WebSockets", "provider": "scripted",
              "model": "scripted-small", "options": {"title": "SSE vs WS", "max_retries": 1}},
    )  # fmt: skip
    assert response.status_code == 202
    run_id = response.json()["run_id"]
    assert response.headers["location"] == f"/runs/{run_id}"
    events = await read_events(client, f"/runs/{run_id}/events")
    assert events[-1].data["status"] == "completed"
    listing = (await client.get("/runs")).json()["runs"]
    assert [r["run_id"] for r in listing] == [run_id]
    assert listing[0]["title"] == "SSE vs WS" and listing[0]["status"] == "completed"
    detail = (await client.get(f"/runs/{run_id}")).json()
    assert detail["run"]["status"] == "completed"
    assert detail["result"]["task_id"] == run_id
    assert len(detail["result"]["agent_results"]) == 4
    assert detail["result"]["final_synthesis"]
    assert {r["model"] for r in detail["result"]["agent_results"]} <= {"scripted-small", None}
    assert (await client.get("/runs?status=failed")).json()["runs"] == []
    assert (await client.get("/runs/unknown")).status_code == 404


async def test_bad_requests_are_400_with_a_reason(api: tuple[httpx.AsyncClient, Any]) -> None:
    client, _ = api
    cases: list[tuple[Any, str]] = [
        ({"task": "x"}, "pattern"),
        ({"pattern": DEMO}, "task"),
        ({"pattern": "no-such-pattern", "task": "x"}, "not one this server runs"),
        ({"pattern": "os:path", "task": "x"}, "not one this server runs"),
        ({"pattern": "cascade", "task": "x"}, "not one this server runs"),  # only DEMO is registered
        ({"pattern": DEMO, "task": "x", "provider": "nope"}, "unknown provider"),
        ({"pattern": DEMO, "task": "x", "options": {"colour": "blue"}}, "colour"),
        ({"pattern": DEMO, "task": "x", "options": {"output_directory": "/etc"}}, "output_directory"),
        ({"pattern": DEMO, "task": "x", "options": {"max_retries": -1}}, "max_retries"),
        ({"pattern": DEMO, "task": "x", "extra": 1}, "unknown field"),
        (["not", "an", "object"], "JSON object"),
    ]
    for body, reason in cases:
        response = await client.post("/runs", json=body)
        assert response.status_code == 400, body
        assert reason in response.json()["error"], (body, response.json())
    assert (
        await client.post("/runs", content=b"{not json", headers={"content-type": "application/json"})
    ).status_code == 400
    assert (
        await client.post("/runs", content=b"pattern=x", headers={"content-type": "text/plain"})
    ).status_code == 415
    assert (await client.get("/runs?limit=lots")).status_code == 400


async def test_cancel_a_run_in_progress() -> None:
    gate = asyncio.Event()

    def factory(request: RunRequest, store: RunStore) -> DemoOrchestrator:
        return DemoOrchestrator(store=store, gate=gate)

    app = create_app(factory, MemoryStore(), TOKEN)
    async with (
        running_server(app) as base,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=20) as client,
    ):
        run_id = (await client.post("/runs", json={"pattern": "demo", "task": "Long job"})).json()["run_id"]
        await read_events(client, f"/runs/{run_id}/events", stop_after=5)
        response = await client.post(f"/runs/{run_id}/cancel", json={})
        assert response.json() == {"cancelled": True}
        events = await read_events(client, f"/runs/{run_id}/events")
        assert events[-1].data["status"] == "cancelled"
        again = await client.post(f"/runs/{run_id}/cancel", json={})
        assert again.status_code == 409
        assert (await client.post("/runs/unknown/cancel", json={})).status_code == 404


async def test_reports_are_listed_and_downloadable(
    api: tuple[httpx.AsyncClient, Any], tmp_path: Path
) -> None:
    client, _ = api
    options = {"generate_documents": True, "document_formats": ["markdown", "pdf"]}
    run_id = (
        await client.post("/runs", json={"pattern": DEMO, "task": "Report me", "options": options})
    ).json()["run_id"]
    events = await read_events(client, f"/runs/{run_id}/events")
    terminal = next(e for e in events if e.is_terminal)
    assert terminal.data["status"] == "completed", terminal.data
    assert events[-1].event_type == "document_generation_complete"  # the stream ends with the listing
    documents = (await client.get(f"/runs/{run_id}")).json()["documents"]
    assert [d["format"] for d in documents] == ["markdown", "pdf"]
    markdown = await client.get(documents[0]["url"])
    assert markdown.status_code == 200 and markdown.text.startswith("---\ntitle:")
    pdf = await client.get(documents[1]["url"])
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert (tmp_path / "reports").is_dir()
    assert (await client.get(f"/runs/{run_id}/documents/9")).status_code == 404


def test_token_never_shows_in_reprs_or_access_logs() -> None:
    import logging

    token = generate_token()
    middleware = TokenAuthMiddleware(app=None, token=token)
    assert token not in repr(middleware) and token not in repr(vars(middleware))
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/runs/x/events?token={token}&last_event_id=3", "1.1", 200), None,
    )  # fmt: skip
    RedactTokenFilter().filter(record)
    assert token not in record.getMessage() and "last_event_id=3" in record.getMessage()
    with pytest.raises(ValueError) as info:
        create_app(token="short")
    assert "short" not in str(info.value)
    with pytest.raises(ValueError):
        create_app(token="has spaces; and=semicolons")
