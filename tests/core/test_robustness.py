"""Edge cases found in review: cancellation from odd places, slow callbacks, leases."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orchestration import (
    BudgetExceededError,
    ConfigError,
    EventType,
    MemoryStore,
    OrchestratorConfig,
    ScriptedProvider,
    SubTask,
    TaskStatus,
)
from orchestration.base import RunLeasedError
from orchestration.guardrails import Guardrails
from orchestration.stores import SQLiteStore

from .helpers import GraphOrchestrator, Recorder, fan


def config(**kwargs: Any) -> OrchestratorConfig:
    return OrchestratorConfig(**{"retry_base_delay": 0.0, "retry_max_delay": 0.0, **kwargs})


async def test_a_callback_that_raises_cancelled_error_is_just_a_failing_callback(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    orch = GraphOrchestrator(config(), ScriptedProvider(), subtasks=fan(3), store=store)

    async def closed_socket(event: Any) -> None:
        if event.seq == 2:
            raise asyncio.CancelledError  # what a send on a closed websocket can do

    result = await asyncio.wait_for(orch.execute_workflow("task", stream_callback=closed_socket), 30)
    assert result.status is TaskStatus.COMPLETED
    stored = await store.events(result.run_id)
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    assert stored[-1].event_type is EventType.WORKFLOW_COMPLETE
    assert any(e.event_type is EventType.CALLBACK_ERROR for e in stored)
    await store.close()


async def test_a_callback_waiting_on_the_run_does_not_block_its_writes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    all_calls = asyncio.Event()
    provider = ScriptedProvider(failures=lambda n, r: all_calls.set() if n >= 4 else None)
    orch = GraphOrchestrator(config(parallel_execution=False), provider, subtasks=fan(3), store=store)

    async def waits_for_the_whole_run(event: Any) -> None:
        if event.seq == 1:
            await all_calls.wait()  # would deadlock if writes waited for callbacks

    result = await asyncio.wait_for(orch.execute_workflow("t", stream_callback=waits_for_the_whole_run), 30)
    assert result.status is TaskStatus.COMPLETED and provider.call_count == 4
    await store.close()


async def test_cancelling_the_callers_task_still_delivers_every_stored_event() -> None:
    received: list[int] = []

    async def slow(event: Any) -> None:
        await asyncio.sleep(0.02)
        received.append(event.seq)

    store = MemoryStore()
    orch = GraphOrchestrator(config(), ScriptedProvider(latency=0.01), subtasks=fan(10), store=store)
    task = asyncio.create_task(orch.execute_workflow("t", run_id="x", stream_callback=slow))
    await asyncio.sleep(0.07)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stored = [e.seq for e in await store.events("x")]
    assert received == stored


async def test_a_subtask_cancelled_by_its_own_code_fails_instead_of_hanging_the_run() -> None:
    async def cancelled_inside(*_: Any) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        future.cancel()
        return await future

    subtasks = [
        SubTask(id="a", description="a"),
        SubTask(id="b", description="b"),
        SubTask(id="c", description="c", dependencies=["a"]),
    ]
    orch = GraphOrchestrator(
        config(), ScriptedProvider(), subtasks=subtasks, behaviour={"a": cancelled_inside}
    )
    result = await asyncio.wait_for(orch.execute_workflow("t"), 30)
    statuses = {r.subtask_id: r.status for r in result.agent_results}
    assert statuses == {"a": TaskStatus.FAILED, "b": TaskStatus.COMPLETED, "c": TaskStatus.SKIPPED}
    assert result.status is TaskStatus.PARTIAL


async def test_an_abort_during_synthesis_fails_the_run() -> None:
    policy = "policies:\n  - name: three calls\n    when: calls >= 3\n    action: abort_run\n"
    orch = GraphOrchestrator(
        config(), ScriptedProvider(), subtasks=fan(2), guardrails=Guardrails.load(policy)
    )
    result = await orch.execute_workflow("t")
    assert result.status is TaskStatus.FAILED
    assert (result.error or "").startswith("aborted: guardrail 'three calls'")


async def test_a_call_refused_by_the_budget_holds_no_guardrail_tokens() -> None:
    policy = "policies:\n  - name: tokens\n    when: tokens_used > 150000\n    action: abort_run\n"

    async def big_then_small(orch: Any, subtask: SubTask, context: Any) -> str:
        for _ in range(2):  # each passes the guardrail (100k < 150k) and is refused by the budget
            with pytest.raises(BudgetExceededError):
                await orch.call_llm("x", max_tokens=100_000, model="gpt-4o")
        return (await orch.call_llm("small", max_tokens=10, model="gpt-4o")).content

    orch = GraphOrchestrator(
        config(max_total_cost=0.05),
        ScriptedProvider(),
        subtasks=fan(1),
        behaviour={"s0": big_then_small},
        guardrails=Guardrails.load(policy),
        synthesis=lambda *a: "done",
    )
    result = await orch.execute_workflow("t")
    assert result.status is TaskStatus.COMPLETED, result.error


async def test_a_run_id_that_exists_is_refused_before_any_work() -> None:
    store = MemoryStore()
    provider = ScriptedProvider()
    orch = GraphOrchestrator(config(), provider, subtasks=fan(1), store=store)
    await orch.execute_workflow("t", run_id="same")
    calls = provider.call_count
    with pytest.raises(ConfigError, match="already exists in the store"):
        await orch.execute_workflow("t", run_id="same")
    assert provider.call_count == calls


async def test_resume_waits_for_the_lease_then_sees_the_run_finished() -> None:
    store = MemoryStore()
    await GraphOrchestrator(config(), ScriptedProvider(), subtasks=fan(2), store=store).execute_workflow(
        "t", run_id="r"
    )
    assert await store.acquire_lease("r", "another-process", 0.3)
    provider = ScriptedProvider()
    orch = GraphOrchestrator(config(lease_seconds=0.3), provider, subtasks=fan(2), store=store)
    with pytest.raises(RunLeasedError):
        await orch.resume("r")
    result = await orch.resume("r", wait=True)
    assert result.status is TaskStatus.COMPLETED and provider.call_count == 0


async def test_losing_the_lease_stops_the_run() -> None:
    class Thief(MemoryStore):
        renewals = 0

        async def renew_lease(self, run_id: str, owner: str, ttl_seconds: float) -> bool:
            self.renewals += 1
            return False  # another process took the run over: every renewal is refused

    recorder = Recorder()
    orch = GraphOrchestrator(
        config(lease_seconds=0.3, max_concurrent_agents=1),
        ScriptedProvider(latency=0.05),
        subtasks=fan(40),
        store=Thief(),
    )
    result = await asyncio.wait_for(orch.execute_workflow("t", stream_callback=recorder), 30)
    assert result.status is TaskStatus.FAILED
    assert "lost the run's lease" in (result.error or "")
    assert len([r for r in result.agent_results if r.succeeded]) < 40
