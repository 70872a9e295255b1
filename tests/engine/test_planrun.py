"""An orchestrator's plan run on the graph core (orchestration/engine/planrun.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from orchestration.engine.graph import Plan, build_plan
from orchestration.engine.planrun import PlanRun, plan_graph
from orchestration.graph import NodeState
from orchestration.models import SubTask


def _plan(*subtasks: SubTask) -> Plan:
    return build_plan(subtasks)


async def _run(
    plan: Plan,
    *,
    fail: Iterable[str] = (),
    concurrency: int = 10,
    completed: Iterable[str] = (),
    stop_after: int | None = None,
) -> tuple[PlanRun, list[str], list[tuple[str, str]], int]:
    """Run ``plan`` with subtasks that yield once; what started, what was ruled out and
    the most that ran at once."""
    failing = set(fail)
    started: list[str] = []
    ruled_out: list[tuple[str, str]] = []
    running = 0
    most = 0

    async def execute(subtask: SubTask) -> bool:
        nonlocal running, most
        started.append(subtask.id)
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        running -= 1
        return subtask.id not in failing

    def should_stop() -> bool:
        return stop_after is not None and len(started) >= stop_after

    def on_ruled_out(ids: list[str], reason: str) -> None:
        ruled_out.extend((i, reason) for i in ids)

    run = PlanRun(
        plan,
        execute,
        concurrency=concurrency,
        should_stop=should_stop,
        on_ruled_out=on_ruled_out,
        completed=completed,
    )
    await run.run()
    return run, started, ruled_out, most


async def test_critical_path_first_then_priority_then_plan_order() -> None:
    plan = _plan(
        SubTask(id="low", description="x"),
        SubTask(id="high", description="x", priority=5),
        SubTask(id="head", description="x"),
        SubTask(id="tail", description="x", dependencies=["head"]),
    )
    run, started, ruled_out, _ = await _run(plan, concurrency=1)
    assert started == ["head", "high", "low", "tail"]  # head leads the longest chain
    assert ruled_out == []
    assert set(run.state.states().values()) == {NodeState.COMPLETED}


async def test_a_failure_rules_out_every_dependent_naming_the_failed_subtask() -> None:
    plan = _plan(
        SubTask(id="a", description="x"),
        SubTask(id="b", description="x", dependencies=["a"]),
        SubTask(id="c", description="x", dependencies=["b"]),
        SubTask(id="d", description="x"),
    )
    _, started, ruled_out, _ = await _run(plan, fail={"a"})
    assert sorted(started) == ["a", "d"]
    assert sorted(ruled_out) == [
        ("b", "dependency 'a' did not complete"),
        ("c", "dependency 'a' did not complete"),
    ]


async def test_never_more_than_the_cap_at_once() -> None:
    plan = _plan(*(SubTask(id=f"s{i}", description="x") for i in range(20)))
    _, started, _, most = await _run(plan, concurrency=3)
    assert len(started) == 20
    assert most == 3


async def test_completed_subtasks_of_a_resumed_run_do_not_run_again() -> None:
    plan = _plan(
        SubTask(id="a", description="x"),
        SubTask(id="b", description="x", dependencies=["a"]),
    )
    assert plan_graph(plan, completed=["a"]).state_of("a") is NodeState.COMPLETED
    _, started, _, _ = await _run(plan, completed=["a"])
    assert started == ["b"]


async def test_stopping_rules_out_what_has_not_started() -> None:
    plan = _plan(*(SubTask(id=f"s{i}", description="x") for i in range(5)))
    _, started, ruled_out, _ = await _run(plan, concurrency=1, stop_after=2)
    assert started == ["s0", "s1"]
    assert [i for i, _ in ruled_out] == ["s2", "s3", "s4"]
    assert {reason for _, reason in ruled_out} == {"the run stopped before it started"}
