"""Hostile and oversized requests against a real uvicorn: answered at once, in linear time, never 500."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from orchestration import MemoryStore
from orchestration.events import EventType, StreamEvent
from orchestration.server import create_app
from orchestration.server.runs import RunRequest
from orchestration.stores.base import RunStore
from orchestration.stores.sqlite import SQLiteStore
from tests.streaming.demo import DemoOrchestrator

from .harness import AUTH, TOKEN, read_events, running_server, wait_for

DEMO = "tests.streaming.demo:DemoOrchestrator"
# A quoted cookie full of backslashes: quadratic for http.cookies before Python 3.11.10 (CVE-2024-7592).
HOSTILE_COOKIE = 'orchestration_token="' + "\\" * (64 * 1024) + '"'


@pytest.mark.parametrize("max_header_bytes", [None, 1024 * 1024])
async def test_a_hostile_cookie_is_answered_at_once_and_does_not_delay_others(
    max_header_bytes: int | None,
) -> None:
    # The protocol layer lets a large head through, as httptools or a proxy in front would,
    # so what is tested is the app's own handling (the header cap, or the linear cookie scan).
    options = {} if max_header_bytes is None else {"max_header_bytes": max_header_bytes}
    app = create_app(None, MemoryStore(), TOKEN, **options)
    async with (
        running_server(app, h11_max_incomplete_event_size=4 * 1024 * 1024) as base,
        httpx.AsyncClient(base_url=base, timeout=60) as client,
    ):
        hostile = [
            asyncio.create_task(client.get("/runs", headers={"Cookie": HOSTILE_COOKIE})) for _ in range(4)
        ]
        # Before the fix each hostile request held the event loop for seconds; 20 s only turns
        # a hang into a failure.
        async with asyncio.timeout(20):
            authorised = await client.get("/runs", headers=AUTH)
            answers = await asyncio.gather(*hostile)
        assert authorised.status_code == 200
        expected = 431 if max_header_bytes is None else 401
        assert {answer.status_code for answer in answers} == {expected}
        if expected == 431:
            assert "request headers too large" in answers[0].json()["error"]


async def test_the_body_is_capped_while_it_streams(tmp_path: Path) -> None:
    app = create_app(None, MemoryStore(), TOKEN, max_body_bytes=64 * 1024, allow_patterns=[DEMO])
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"pattern": "' + DEMO.encode() + b'", "task": "'
        for _ in range(50 * 16):  # 50 MB if nobody stops it
            sent += 64 * 1024
            yield b"x" * (64 * 1024)

    async with (
        running_server(app) as base,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client,
    ):
        declared = await client.post(
            "/runs", content=b"x" * (100 * 1024), headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413
        assert "larger than 65536 bytes" in declared.json()["error"]
        try:
            streamed = await client.post(
                "/runs", content=endless(), headers={"content-type": "application/json"}
            )
        except httpx.TransportError:
            pass  # the server answered and closed while we were still sending: also a refusal
        else:
            assert streamed.status_code == 413
        assert sent < 10 * 1024 * 1024  # stopped long before the 50 MB were read
        assert await app.state.store.list_runs() == []
        ok = await client.post("/runs", json={"pattern": DEMO, "task": "small"})
        assert ok.status_code == 202


async def test_task_length_json_depth_and_last_event_id_are_bounded(tmp_path: Path) -> None:
    gate = asyncio.Event()

    def factory(request: RunRequest, store: RunStore) -> DemoOrchestrator:
        return DemoOrchestrator(store=store, gate=gate)

    store = SQLiteStore(tmp_path / "runs.db")
    app = create_app(factory, store, TOKEN, max_task_chars=1000)
    async with (
        running_server(app) as base,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client,
    ):
        long_task = await client.post("/runs", json={"pattern": "demo", "task": "x" * 1001})
        assert long_task.status_code == 413 and "at most 1000" in long_task.json()["error"]
        for depth in (40, 100_000):
            deep = (
                '{"pattern": "demo", "task": "x", "options": {"context": {"a": '
                + "[" * depth
                + "]" * depth
                + "}}}"
            )
            response = await client.post("/runs", content=deep, headers={"content-type": "application/json"})
            assert response.status_code == 400, depth
            assert "nested too deeply" in response.json()["error"]
        run_id = (await client.post("/runs", json={"pattern": "demo", "task": "held"})).json()["run_id"]
        await read_events(client, f"/runs/{run_id}/events", stop_after=3)  # in progress, at the gate
        for bad in (str(2**70), "-1", "1e3", "9" * 5000):
            header = await client.get(f"/runs/{run_id}/events", headers={**AUTH, "Last-Event-ID": bad})
            query = await client.get(f"/runs/{run_id}/events", params={"last_event_id": bad})
            assert header.status_code == query.status_code == 400, bad
            assert "Last-Event-ID" in header.json()["error"]
        gate.set()
        events = await read_events(client, f"/runs/{run_id}/events", last_event_id=1)
        assert events[-1].is_terminal and events[0].seq == 2
    await store.close()


async def test_documents_outside_the_reports_folder_are_not_served(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    app = create_app(None, MemoryStore(), TOKEN, reports_dir=reports, allow_patterns=[DEMO])
    options = {"generate_documents": True, "document_formats": ["markdown"]}
    async with (
        running_server(app) as base,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client,
    ):
        run_id = (
            await client.post("/runs", json={"pattern": DEMO, "task": "Report", "options": options})
        ).json()["run_id"]
        events = await read_events(client, f"/runs/{run_id}/events")
        assert (await client.get(f"/runs/{run_id}/documents/0")).status_code == 200  # its own report
        link = reports / "passwd-link.md"
        link.symlink_to("/etc/passwd")
        outside = tmp_path / "outside.md"
        outside.write_text("secret")
        planted = [
            {"format": "markdown", "path": "/etc/passwd", "size_bytes": 1},
            {"format": "markdown", "path": str(link), "size_bytes": 1},
            {"format": "markdown", "path": str(reports / ".." / "outside.md"), "size_bytes": 1},
        ]
        store = app.state.store
        await store.append(
            run_id,
            [
                StreamEvent(
                    EventType.DOCUMENT_GENERATION_COMPLETE,
                    run_id,
                    events[-1].seq + 1,
                    0.0,
                    {"documents": planted},
                )
            ],
        )
        listed = (await client.get(f"/runs/{run_id}")).json()["documents"]
        assert len(listed) == 4
        for index in (1, 2, 3):
            response = await client.get(f"/runs/{run_id}/documents/{index}")
            assert response.status_code == 404, planted[index - 1]
            assert "root:" not in response.text and "secret" not in response.text


async def test_runs_name_only_registered_patterns_and_never_import_one(tmp_path: Path) -> None:
    evil = "tests.server.evil_pattern"
    assert evil not in sys.modules
    app = create_app(None, MemoryStore(), TOKEN, allow_patterns=["fanout", DEMO])
    async with (
        running_server(app) as base,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client,
    ):
        refused = await client.post("/runs", json={"pattern": f"{evil}:EvilOrchestrator", "task": "x"})
        assert refused.status_code == 400
        assert "not one this server runs" in refused.json()["error"] and DEMO in refused.json()["error"]
        assert evil not in sys.modules and "ORCHESTRATION_EVIL_PATTERN_IMPORTED" not in os.environ
        for name in ("fanout", "FanOut".lower(), DEMO):
            response = await client.post("/runs", json={"pattern": name, "task": "ok"})
            assert response.status_code == 202, response.text
        assert (await client.post("/runs", json={"pattern": "cascade", "task": "x"})).status_code == 400
        await wait_for(lambda: not app.state.runs._tasks)


def test_bad_registrations_fail_at_start_up() -> None:
    from orchestration.errors import ConfigError

    with pytest.raises(ConfigError, match="--allow-pattern 'os:path'"):
        create_app(None, MemoryStore(), TOKEN, allow_patterns=["os:path"])
    with pytest.raises(ConfigError, match="not a built-in pattern"):
        create_app(None, MemoryStore(), TOKEN, allow_patterns=["nope"])


async def test_lone_surrogates_in_a_request_become_valid_text() -> None:
    app = create_app(None, MemoryStore(), TOKEN, allow_patterns=[DEMO])
    async with (
        running_server(app) as base,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client,
    ):
        body = '{"pattern": "' + DEMO + '", "task": "tides \\ud800 now", "options": {"title": "\\udfff"}}'
        started = await client.post("/runs", content=body, headers={"content-type": "application/json"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        events = await read_events(client, f"/runs/{run_id}/events")
        assert events[-1].data["status"] == "completed"
        detail = await client.get(f"/runs/{run_id}")
        assert detail.status_code == 200
        assert (
            detail.json()["run"]["task"] == "tides \ufffd now" and detail.json()["run"]["title"] == "\ufffd"
        )
        listing = await client.get("/runs")
        assert listing.status_code == 200
