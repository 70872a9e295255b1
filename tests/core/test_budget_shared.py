"""Budgets shared by every process of a store: a tenant's cap and a run's budget hold however
many processes spend against them, and calls of a process that died count at their worst
case without blocking the others."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestration import EventType, MemoryStore, OrchestratorConfig, ScriptedProvider, TaskStatus
from orchestration.guardrails import Guardrails
from orchestration.stores import SQLiteStore, open_store
from orchestration.stores.ledger import AccountTotals, label_account, ledger_of, run_account
from tests.stores.conftest import postgres_dsn  # noqa: F401  (a fixture)

from .budget_shared_worker import CAP
from .helpers import GraphOrchestrator, Recorder, fan

ROOT = Path(__file__).resolve().parents[2]
TENANT = label_account("tenant", "acme")


def worker(where: str, ledger: Path, run_id: str, tmp_path: Path, **settings: Any) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        **{f"SHARED_WORKER_{k.upper()}": str(v) for k, v in settings.items()},
    )
    errors = open(tmp_path / f"{run_id}.stderr", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.core.budget_shared_worker", where, str(ledger), run_id],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    errors.close()
    return process


def receipts(process: subprocess.Popen[str], count: int) -> None:
    """Wait until the worker's vendor has received ``count`` calls."""
    assert process.stdout is not None
    seen = 0
    while seen < count:
        line = process.stdout.readline()
        assert line, "the worker ended before its calls reached the vendor"
        seen += line.startswith("received")


def finish(process: subprocess.Popen[str], tmp_path: Path, run_id: str) -> dict[str, Any]:
    assert process.stdout is not None
    out = process.stdout.read()
    process.wait(timeout=120)
    errors = (tmp_path / f"{run_id}.stderr").read_text()
    assert process.returncode == 0, errors[-3000:]
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def billed(ledger: Path) -> float:
    return sum(float(line) for line in ledger.read_text().split())


def totals(where: str, account: str) -> AccountTotals:
    async def read() -> AccountTotals:
        store = open_store(where)
        try:
            found = ledger_of(store)
            assert found is not None
            return await found.totals(account)
        finally:
            await store.close()

    return asyncio.run(read())


def refused(result: dict[str, Any]) -> int:
    return sum("tenant budget" in (agent.get("error") or "") for agent in result["agent_results"])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    return str(request.getfixturevalue("postgres_dsn"))


def test_three_processes_never_spend_more_than_the_tenant_cap_together(where: str, tmp_path: Path) -> None:
    ledger = tmp_path / "vendor.ledger"
    processes = {f"run{n}": worker(where, ledger, f"run{n}", tmp_path) for n in range(3)}
    results = [finish(process, tmp_path, run_id) for run_id, process in processes.items()]

    spent = billed(ledger)
    assert spent <= CAP + 1e-9, f"the vendor billed ${spent:.4f} against the tenant's ${CAP} cap"
    assert sum(refused(result) for result in results) > 0  # 60 calls want about $0.8
    assert spent > CAP - 0.03  # refused only once the cap could not fit one more call
    account = totals(where, TENANT)
    assert account.cost_usd == pytest.approx(spent) and account.calls == len(ledger.read_text().split())
    assert account.holds == 0


def test_calls_of_a_killed_process_count_at_worst_case_and_stop_blocking_the_others(
    where: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "vendor.ledger"
    # 8 calls that never answer hold about 60% of the cap; the run's lease outlives the test,
    # so only seeing that the process is gone can free its holds for the other process.
    stuck = worker(where, ledger, "stuck", tmp_path, latency=3600, subtasks=8, lease=3600)
    receipts(stuck, 8)
    live = worker(where, ledger, "live", tmp_path, latency=0.05, subtasks=20)
    receipts(live, 1)  # it fits a few calls next to the stuck ones, then waits for them
    stuck.send_signal(signal.SIGKILL)
    stuck.wait(timeout=60)
    if stuck.stdout is not None:
        stuck.stdout.close()
    result = finish(live, tmp_path, "live")

    assert result["status"] in ("completed", "partial"), result["error"]
    account = totals(where, TENANT)
    assert billed(ledger) <= account.cost_usd <= CAP + 1e-9  # the stuck calls count at their worst case
    assert account.holds == 0 and refused(result) > 0


async def test_runs_in_one_process_share_their_stores_tenant_totals() -> None:
    """Two orchestrators with their own Guardrails objects, one store: one tenant cap."""
    store = MemoryStore()
    policy = "policies:\n  - {name: tenant calls, when: count() > 5, scope: tenant, action: reject_execution}"

    def orchestrator() -> GraphOrchestrator:
        return GraphOrchestrator(
            OrchestratorConfig(primary_model="gpt-4o-mini", max_concurrent_agents=4),
            ScriptedProvider(latency=0.01),
            subtasks=fan(4),
            store=store,
            guardrails=Guardrails.load(policy),
            labels={"tenant": "acme"},
        )

    first, second = await asyncio.gather(
        orchestrator().execute_workflow("a"), orchestrator().execute_workflow("b")
    )
    calls = first.usage.calls + second.usage.calls
    assert calls == 5  # 10 wanted (4 subtasks and a synthesis each)
    assert (await store.ledger.totals(TENANT)).calls == 5


async def test_a_capped_runs_account_matches_its_bill(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    recorder = Recorder()
    try:
        orch = GraphOrchestrator(
            OrchestratorConfig(
                primary_model="gpt-4o", max_total_cost=0.01, max_tokens=200, max_concurrent_agents=8
            ),
            ScriptedProvider(latency=0.005),
            subtasks=fan(12),
            store=store,
        )
        result = await orch.execute_workflow("task", stream_callback=recorder)
        assert result.status is TaskStatus.COMPLETED, result.error
        account = await store.ledger.totals(run_account(result.task_id))
        assert account.cost_usd == pytest.approx(result.total_cost) and account.calls == 13
        assert account.holds == 0
        holds = {e.data["hold"] for e in recorder.of(EventType.CALL_RESERVED)}
        settled = {e.data["hold"]["id"] for e in recorder.of(EventType.COST_UPDATE)}
        assert len(holds) == 13 and holds == settled  # each call's events name its hold
    finally:
        await store.close()


async def test_a_graph_runs_calls_are_held_on_its_account(tmp_path: Path) -> None:
    from orchestration.graph import Graph, Node, NodeContext

    store = SQLiteStore(tmp_path / "runs.db")

    async def ask(ctx: NodeContext) -> str:
        return (await ctx.call_llm("hello")).content

    try:
        graph = Graph(nodes=[Node(id="a"), Node(id="b")])
        config = OrchestratorConfig(primary_model="gpt-4o", max_total_cost=0.5, max_tokens=100)
        run = graph.start({"a": ask, "b": ask}, store=store, provider=ScriptedProvider(), config=config)
        result = await run.run()
        assert result.status == "completed"
        account = await store.ledger.totals(run_account(run.run_id))
        assert account.calls == 2 and account.holds == 0 and account.cost_usd > 0
    finally:
        await store.close()
