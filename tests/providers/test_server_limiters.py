"""Concurrent runs of one server process share one rate limiter per vendor, key and model:
a vendor's "stop" (a 429 with Retry-After) seen by one run's call holds back the next
run's calls too, through the server's own default orchestrator factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fakevendor import FakeVendor, Reply

from orchestration import AgentResult, BaseOrchestrator, EventType, MemoryStore, SubTask
from orchestration.server import create_app
from tests.server.harness import AUTH, TOKEN, read_events, running_server, wait_for


class OneCall(BaseOrchestrator):
    """One subtask making one model call; the synthesis makes none."""

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [SubTask(id="ask", description=task)]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        return (await self.call_llm(subtask.description)).content

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return agent_results[0].content


async def test_concurrent_server_runs_share_the_vendors_limiter(
    vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"{vendor.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-server-limiter-test")  # its own entry in the process's pool
    vendor.script(Reply.error(429, "slow down", error_type="rate_limit_error", headers={"retry-after": "1"}))
    store = MemoryStore()
    pattern = f"{__name__}:OneCall"
    app = create_app(store=store, token=TOKEN, reports_dir=tmp_path, allow_patterns=[pattern])
    body = {"pattern": pattern, "provider": "openai", "model": "gpt-4o-mini", "options": {"max_retries": 2}}

    async def retried(run_id: str) -> bool:
        return any(e.event_type is EventType.MODEL_RETRY for e in await store.events(run_id))

    async with (
        running_server(app) as base,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=20) as client,
    ):
        first = (await client.post("/runs", json={**body, "task": "first run"})).json()["run_id"]
        await wait_for(lambda: retried(first))  # its call got the 429: the vendor said stop for 1s
        second = (await client.post("/runs", json={**body, "task": "second run"})).json()["run_id"]
        for run_id in (first, second):
            assert (await read_events(client, f"/runs/{run_id}/events"))[-1].data["status"] == "completed"

    arrivals = [r.at for r in vendor.requests]
    prompts = [r.body["messages"][-1]["content"] for r in vendor.requests]
    assert prompts == ["first run", "first run", "second run"] or prompts == [
        "first run",
        "second run",
        "first run",
    ]
    # The second run's call, made by its own provider, waited out the pause the first run's 429 set.
    assert arrivals[prompts.index("second run")] - arrivals[0] >= 1.0
