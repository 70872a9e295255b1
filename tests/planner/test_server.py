"""A planner run started through the HTTP API streams over SSE like any run."""

from __future__ import annotations

from pathlib import Path

import httpx

from orchestration import EventType, MemoryStore
from orchestration.server import create_app
from tests.server.harness import AUTH, TOKEN, read_events, running_server


async def test_post_runs_starts_a_planner_run_whose_events_stream_over_sse(tmp_path: Path) -> None:
    app = create_app(store=MemoryStore(), token=TOKEN, reports_dir=tmp_path, allow_patterns=["planner"])
    async with (
        running_server(app) as base,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=20) as client,
    ):
        response = await client.post(
            "/runs",
            json={
                "pattern": "planner",
                "task": "Tide prediction",
                "provider": "scripted",
                "options": {"max_nodes": 4},
            },
        )
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        events = await read_events(client, f"/runs/{run_id}/events")
        detail = (await client.get(f"/runs/{run_id}")).json()

    kinds = [e.event_type for e in events]
    assert kinds[0] is EventType.WORKFLOW_START and events[-1].data["status"] == "completed"
    added = [e.data["node"]["id"] for e in events if e.event_type is EventType.GRAPH_NODE_ADDED]
    assert added == ["background", "applications", "review"]
    assert [e.agent_id for e in events if e.event_type is EventType.AGENT_COMPLETE] == [
        "background",
        "applications",
        "review",
    ]
    assert EventType.SYNTHESIS_COMPLETE in kinds
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert detail["run"]["orchestrator"] == "planner" and detail["run"]["status"] == "completed"
    assert detail["result"]["final_synthesis"]
