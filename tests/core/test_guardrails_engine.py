"""Guardrail policies enforced by the engine before and after every model call."""

from __future__ import annotations

import random

import pytest

from orchestration import EventType, MemoryStore, OrchestratorConfig, ScriptedProvider, TaskStatus
from orchestration.guardrails import Guardrails

from .helpers import GraphOrchestrator, Recorder, fan


def guarded(
    text: str, provider: ScriptedProvider, n: int, store: MemoryStore | None = None, **config: object
):
    options = {"retry_base_delay": 0.0, "primary_model": "gpt-4o", **config}
    return GraphOrchestrator(
        OrchestratorConfig(**options),  # type: ignore[arg-type]
        provider,
        subtasks=fan(n),
        guardrails=Guardrails.load(text),
        store=store or MemoryStore(),
    )


async def test_an_execution_policy_rejects_a_call_before_it_is_made() -> None:
    policy = "policies:\n  - name: big call\n    when: tokens_used > 4000\n    scope: execution\n    action: reject_execution\n"
    provider = ScriptedProvider()
    recorder = Recorder()
    result = await guarded(policy, provider, 2, max_tokens=8000).execute_workflow(
        "t", stream_callback=recorder
    )
    assert provider.call_count == 0
    assert result.status is TaskStatus.FAILED
    assert all("guardrail 'big call'" in (r.error or "") for r in result.agent_results)
    decisions = recorder.of(EventType.GUARDRAIL)
    assert len(decisions) == 2 and decisions[0].data["action"] == "reject_execution"
    assert decisions[0].data["stage"] == "before_call"


@pytest.mark.parametrize("trial", range(20))
async def test_a_cost_cap_holds_over_500_concurrent_calls(trial: int) -> None:
    rng = random.Random(trial)
    cap = rng.uniform(0.005, 0.05)
    policy = f"policies:\n  - name: cap\n    when: sum(cost_usd) > {cap}\n    action: abort_run\n"
    provider = ScriptedProvider(latency=lambda request: rng.uniform(0.0, 0.01), count_tokens=False)
    orch = guarded(policy, provider, 500, max_concurrent_agents=500, max_tokens=rng.randint(50, 400))
    recorder = Recorder()
    result = await orch.execute_workflow("t", stream_callback=recorder)
    assert result.total_cost <= cap
    completed = [r for r in result.agent_results if r.succeeded]
    # Calls that do not fit wait for calls in flight instead of being refused, so every
    # subtask may get its turn (and with a loose cap the whole run fits); the policy acts
    # only when a call cannot fit even with nothing in flight.
    if result.status is TaskStatus.COMPLETED:
        assert len(completed) == 500 and not recorder.of(EventType.GUARDRAIL)
        return
    assert result.status is TaskStatus.FAILED and (result.error or "").startswith("aborted: guardrail 'cap'")
    assert 0 < len(completed) <= 500
    assert recorder.of(EventType.GUARDRAIL)


async def test_pause_then_resume_continues_where_it_stopped() -> None:
    store = MemoryStore()
    policy = "policies:\n  - name: three calls\n    when: calls >= 3\n    action: pause_run\n"
    first = guarded(policy, ScriptedProvider(), 5, store=store, parallel_execution=False)
    paused = await first.execute_workflow("t", run_id="p1")
    assert paused.status is TaskStatus.PAUSED
    assert "guardrail 'three calls'" in (paused.error or "")
    done_before = {r.subtask_id for r in paused.agent_results if r.succeeded}
    assert len(done_before) == 2
    provider = ScriptedProvider()
    orch = GraphOrchestrator(
        OrchestratorConfig(parallel_execution=False), provider, subtasks=fan(5), store=store
    )
    resumed = await orch.resume("p1")
    assert resumed.status is TaskStatus.COMPLETED
    assert not done_before & set(orch.started)
    assert len([r for r in resumed.agent_results if r.succeeded]) == 5


async def test_a_guardrail_decision_is_not_a_model_failure_so_no_fallback_is_tried() -> None:
    policy = "policies:\n  - name: big call\n    when: tokens_used > 4000\n    scope: execution\n    action: reject_execution\n"
    provider = ScriptedProvider()
    orch = guarded(policy, provider, 1, max_tokens=8000, fallback_model="gpt-4o-mini")
    recorder = Recorder()
    result = await orch.execute_workflow("t", stream_callback=recorder)
    assert provider.call_count == 0
    assert recorder.of(EventType.MODEL_FALLBACK) == []
    assert "guardrail 'big call'" in (result.agent_results[0].error or "")


def test_policies_from_the_command_line(tmp_path: object) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    policies = Path(str(tmp_path)) / "policies.yaml"
    policies.write_text("policies:\n  - name: one call\n    when: calls >= 2\n    action: pause_run\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestration.cli",
            "run",
            "tests.core.cli_fixture:TwoStep",
            "t",
            "--provider",
            "scripted",
            "--policies",
            str(policies),
            "--json",
            "-q",
            "-o",
            "parallel_execution=false",
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "paused" and "guardrail 'one call'" in result["error"]
