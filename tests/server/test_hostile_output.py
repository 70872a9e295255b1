"""A vendor answering lone surrogates, through a real ``orchestrate serve`` app on uvicorn:
the run's SSE stream carries every event to the end and ``GET /runs/{id}`` is 200."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestration import MemoryStore
from orchestration.server import create_app
from tests.providers.fakevendor import FakeVendor, Reply

from .harness import AUTH, TOKEN, read_events, running_server


@pytest.fixture
def vendor(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVendor]:
    with FakeVendor() as server:
        server.default = Reply.ok("The finding \ud800 holds.")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        yield server


async def test_lone_surrogates_from_the_vendor_neither_kill_the_stream_nor_the_run_page(
    vendor: FakeVendor, tmp_path: Path
) -> None:
    app = create_app(store=MemoryStore(), token=TOKEN, reports_dir=tmp_path / "reports")
    async with (
        running_server(app) as base,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=60) as client,
    ):
        body = {"pattern": "cascade", "task": "Research tides", "provider": "openai", "model": "gpt-4o-mini"}
        started = await client.post("/runs", json=body)
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        events = await read_events(client, f"/runs/{run_id}/events")
        assert events[-1].data["status"] == "completed", events[-1].data
        deltas = [e for e in events if e.event_type == "cost_update"]
        assert deltas and all("\ufffd" in e.data["response"] for e in deltas)
        detail = await client.get(f"/runs/{run_id}")
        assert detail.status_code == 200
        assert "The finding \ufffd holds." in detail.json()["result"]["final_synthesis"]
    assert vendor.requests  # the answers really came from the vendor
