"""Resume after an interruption without paying twice; replay a run with zero provider calls."""

from __future__ import annotations

import pytest

from orchestration import EventType, MemoryStore, OrchestratorConfig, ScriptedProvider, SubTask, TaskStatus
from orchestration.replay import ReplayMismatchError

from .helpers import GraphOrchestrator, Recorder

PLAN = [
    SubTask(id="a", description="find a"),
    SubTask(id="b", description="find b"),
    SubTask(id="c", description="combine", dependencies=["a", "b"]),
    SubTask(id="d", description="find d"),
]


def orchestrator(provider: ScriptedProvider, store: MemoryStore) -> GraphOrchestrator:
    config = OrchestratorConfig(max_concurrent_agents=2, retry_base_delay=0, primary_model="gpt-4o-mini")
    return GraphOrchestrator(config, provider, subtasks=PLAN, store=store)


async def crashed_copy(full_store: MemoryStore, run_id: str, keep: int) -> MemoryStore:
    """A store holding only the first ``keep`` events: the process died right after them."""
    store = MemoryStore()
    await store.append(run_id, (await full_store.events(run_id))[:keep])
    return store


def comparable(result: object) -> dict[str, object]:
    data = result.to_dict()  # type: ignore[attr-defined]
    agents = sorted(
        (r["subtask_id"], r["status"], r["content"], r["usage"]["total_tokens"])
        for r in data["agent_results"]
    )
    return {
        "status": data["status"],
        "agents": agents,
        "synthesis": data["final_synthesis"],
        "tokens": data["usage"]["total_tokens"],
        "cost": round(data["total_cost"], 12),
    }


async def test_resume_at_every_cut_point_gives_the_uninterrupted_result_without_paying_twice() -> None:
    full_store = MemoryStore()
    full = await orchestrator(ScriptedProvider(), full_store).execute_workflow("task", run_id="r1")
    events = await full_store.events("r1")
    assert full.status is TaskStatus.COMPLETED
    for keep in range(1, len(events)):
        store = await crashed_copy(full_store, "r1", keep)
        provider = ScriptedProvider()
        resumed = await orchestrator(provider, store).resume("r1")
        assert comparable(resumed) == comparable(full), f"cut after event {keep}"
        paid_before = sum(1 for e in events[:keep] if e.event_type is EventType.COST_UPDATE)
        assert provider.call_count == full.usage.calls - paid_before, f"cut after event {keep}"
        stored = await store.events("r1")
        assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
        assert any(e.event_type is EventType.WORKFLOW_RESUMED for e in stored)


async def test_completed_subtasks_are_not_run_again() -> None:
    full_store = MemoryStore()
    await orchestrator(ScriptedProvider(), full_store).execute_workflow("task", run_id="r2")
    events = await full_store.events("r2")
    cut = next(i for i, e in enumerate(events) if e.event_type is EventType.AGENT_COMPLETE) + 1
    store = await crashed_copy(full_store, "r2", cut)
    orch = orchestrator(ScriptedProvider(), store)
    await orch.resume("r2")
    finished_before = events[cut - 1].data["result"]["subtask_id"]
    assert finished_before not in orch.started


async def test_resuming_a_finished_run_returns_its_result() -> None:
    store = MemoryStore()
    orch = orchestrator(ScriptedProvider(), store)
    first = await orch.execute_workflow("task", run_id="done")
    provider = ScriptedProvider()
    again = await orchestrator(provider, store).resume("done")
    assert again.to_dict() == first.to_dict() and provider.call_count == 0


async def test_resume_of_an_unknown_run_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no run 'ghost'"):
        await orchestrator(ScriptedProvider(), MemoryStore()).resume("ghost")


async def test_replay_makes_zero_provider_calls_and_reproduces_the_run() -> None:
    store = MemoryStore()
    original = await orchestrator(ScriptedProvider(), store).execute_workflow("task", run_id="orig")
    silent = ScriptedProvider(failures=lambda n, r: AssertionError("the provider must not be called"))
    replayed = await orchestrator(silent, store).replay("orig")
    assert silent.call_count == 0
    assert replayed.run_id != "orig"
    assert comparable(replayed) == comparable(original)
    assert replayed.metadata["served_from_recording"] == original.usage.calls


async def test_replay_detects_a_changed_prompt() -> None:
    store = MemoryStore()
    await orchestrator(ScriptedProvider(), store).execute_workflow("task", run_id="orig")
    changed = orchestrator(ScriptedProvider(), store)
    changed.subtasks = [
        SubTask(id=s.id, description=s.description + "!", dependencies=s.dependencies) for s in PLAN
    ]
    recorder = Recorder()
    result = await changed.replay("orig", stream_callback=recorder)
    assert result.status is TaskStatus.FAILED
    assert ReplayMismatchError.__name__ in (result.agent_results[0].error or "")
    assert "not in the recording of run orig" in (result.agent_results[0].error or "")


async def test_fork_with_a_changed_input_replays_what_is_unchanged_and_calls_live_for_the_rest() -> None:
    store = MemoryStore()
    await orchestrator(ScriptedProvider(), store).execute_workflow("task", run_id="orig")
    live = ScriptedProvider()
    orch = orchestrator(live, store)
    orch.subtasks = [*PLAN[:3], SubTask(id="d", description="find something else")]
    forked = await orch.replay("orig", live=True)
    assert forked.status is TaskStatus.COMPLETED
    # only the changed subtask and the synthesis that depends on everything go live
    assert live.call_count == 2
    assert forked.metadata["live_calls"] == 2


async def test_long_runs_are_snapshotted_and_load_from_snapshot_plus_tail(tmp_path: object) -> None:
    from pathlib import Path

    from orchestration.stores import SQLiteStore

    from .helpers import fan

    store = SQLiteStore(Path(str(tmp_path)) / "runs.db")
    orch = GraphOrchestrator(
        OrchestratorConfig(max_concurrent_agents=20), ScriptedProvider(), subtasks=fan(600), store=store
    )
    result = await orch.execute_workflow("task", run_id="long")
    snapshot = await store.load_snapshot("long")
    assert snapshot is not None
    seq, _ = snapshot
    events = await store.events("long")
    assert 1000 <= seq < len(events)
    loaded = await orch.load_state("long")
    assert loaded.to_result().to_dict() == result.to_dict()
    await store.close()


async def test_two_processes_resuming_one_run_one_wins_the_other_gets_a_clear_error(tmp_path: object) -> None:
    import asyncio
    from pathlib import Path

    from orchestration.base import RunLeasedError
    from orchestration.stores import SQLiteStore

    path = Path(str(tmp_path)) / "runs.db"
    full = MemoryStore()
    await orchestrator(ScriptedProvider(), full).execute_workflow("task", run_id="shared")
    seed = SQLiteStore(path)
    await seed.append("shared", (await full.events("shared"))[:4])
    await seed.close()
    first = orchestrator(ScriptedProvider(latency=0.05), SQLiteStore(path))
    second = orchestrator(ScriptedProvider(latency=0.05), SQLiteStore(path))
    outcomes = await asyncio.gather(first.resume("shared"), second.resume("shared"), return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], RunLeasedError)
    assert "being driven by another orchestrator in this process; let it finish" in str(errors[0])
    winner = next(o for o in outcomes if not isinstance(o, BaseException))
    assert winner.status is TaskStatus.COMPLETED


async def test_resume_withdraws_an_earlier_cancellation_request() -> None:
    full_store = MemoryStore()
    await orchestrator(ScriptedProvider(), full_store).execute_workflow("task", run_id="c1")
    store = await crashed_copy(full_store, "c1", 5)
    await store.request_cancel("c1")
    resumed = await orchestrator(ScriptedProvider(), store).resume("c1")
    assert resumed.status is TaskStatus.COMPLETED
    assert not await store.cancel_requested("c1")
