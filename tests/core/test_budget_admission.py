"""A budget that admits work: calls that do not fit wait for calls in flight, and the run
stops only when a call could not fit even alone, saying what would make it fit."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from orchestration import (
    CompletionRequest,
    ConfigError,
    EventType,
    MemoryStore,
    ModelPrice,
    OrchestratorConfig,
    PriceTable,
    ScriptedProvider,
    SubTask,
    TaskStatus,
)
from orchestration.guardrails import Guardrails
from orchestration.llm import Completion

from .helpers import GraphOrchestrator, Recorder, fan
from .test_cli import orchestrate


def config(**kwargs: Any) -> OrchestratorConfig:
    return OrchestratorConfig(**{"retry_base_delay": 0.0, "retry_max_delay": 0.0, **kwargs})


class InFlight(ScriptedProvider):
    """Counts how many calls are being answered at once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.now = 0
        self.most = 0

    async def complete(self, request: CompletionRequest) -> Completion:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await super().complete(request)
        finally:
            self.now -= 1


async def test_a_call_that_does_not_fit_waits_for_calls_in_flight_instead_of_ending_the_run() -> None:
    # gpt-4o with max_tokens=200: each call may cost ~$0.002 but really costs ~$0.0001, so
    # a $0.005 cap admits two at a time and the whole run (~$0.003) fits.
    provider = InFlight(latency=0.005)
    orch = GraphOrchestrator(
        config(primary_model="gpt-4o", max_total_cost=0.005, max_concurrent_agents=20, max_tokens=200),
        provider,
        subtasks=fan(20),
    )
    recorder = Recorder()
    result = await orch.execute_workflow("task", stream_callback=recorder)
    assert result.status is TaskStatus.COMPLETED, result.error
    assert len([r for r in result.agent_results if r.succeeded]) == 20
    assert provider.call_count == 21 and provider.most <= 2
    assert result.total_cost <= 0.005
    assert not recorder.of(EventType.BUDGET_EXCEEDED)


async def test_a_call_that_cannot_fit_alone_stops_the_run_saying_what_would_fit() -> None:
    provider = ScriptedProvider()
    orch = GraphOrchestrator(
        config(primary_model="gpt-4o", max_total_cost=0.001, max_tokens=4096), provider, subtasks=fan(2)
    )
    result = await orch.execute_workflow("task")
    assert result.status is TaskStatus.BUDGET_EXCEEDED
    assert provider.call_count == 0
    error = result.error or ""
    assert "\n" not in error and "cannot fit this call even with nothing else in flight" in error
    found = re.search(r"a max_tokens of at most (\d+) or a budget of at least \$([0-9.]+)", error)
    assert found, error
    fitting, budget = int(found.group(1)), float(found.group(2))
    assert 0 < fitting < 4096 and budget > 0.001

    # what the message says works: that max_tokens fits the cap, that budget fits max_tokens
    for changes in ({"max_tokens": fitting}, {"max_total_cost": budget}):
        options = {"primary_model": "gpt-4o", "max_total_cost": 0.001, "max_tokens": 4096, **changes}
        again = ScriptedProvider()
        orch = GraphOrchestrator(config(**options), again, subtasks=fan(2))
        await orch.execute_workflow("task")
        assert again.call_count >= 1, changes


async def test_a_spend_guardrail_admits_calls_the_same_way() -> None:
    # No budget: a policy on spend.  A call breaching it only because of the calls in
    # flight waits for them; every subtask fits, so the run completes under the policy.
    policy = "policies:\n  - name: spend\n    when: sum(cost_usd) > 0.005\n    action: abort_run\n"
    provider = InFlight(latency=0.005)
    orch = GraphOrchestrator(
        config(primary_model="gpt-4o", max_concurrent_agents=20, max_tokens=200),
        provider,
        subtasks=fan(20),
        guardrails=Guardrails.load(policy),
    )
    recorder = Recorder()
    result = await orch.execute_workflow("task", stream_callback=recorder)
    assert result.status is TaskStatus.COMPLETED, result.error
    assert provider.call_count == 21 and provider.most <= 2
    assert result.total_cost <= 0.005 and not recorder.of(EventType.GUARDRAIL)


async def test_with_a_cap_a_configured_model_without_a_price_is_refused_before_the_run_starts() -> None:
    provider = ScriptedProvider()
    store = MemoryStore()
    orch = GraphOrchestrator(
        config(primary_model="house-model", max_total_cost=1.0), provider, subtasks=fan(1), store=store
    )
    with pytest.raises(ConfigError, match=r"'house-model' has no price.*PriceTable") as caught:
        await orch.execute_workflow("task")
    assert "\n" not in str(caught.value) and provider.call_count == 0
    assert await store.list_runs() == []  # nothing started

    priced = GraphOrchestrator(
        config(primary_model="house-model", max_total_cost=1.0),
        provider,
        subtasks=fan(1),
        prices=PriceTable({"house-model": ModelPrice(1.0, 2.0)}),
    )
    result = await priced.execute_workflow("task")
    assert result.status is TaskStatus.COMPLETED and result.total_cost > 0


async def test_with_a_cap_a_model_without_a_price_named_at_call_time_is_refused_at_that_call() -> None:
    async def unpriced(orch: Any, subtask: SubTask, context: Any) -> str:
        return (await orch.call_llm("hello", model="mystery-model")).content

    provider = ScriptedProvider()
    orch = GraphOrchestrator(
        config(max_total_cost=1.0), provider, subtasks=fan(1), behaviour={"s0": unpriced}
    )
    result = await orch.execute_workflow("task")
    assert result.status is TaskStatus.BUDGET_EXCEEDED
    assert "'mystery-model' has no price" in (result.error or "") and "PriceTable" in (result.error or "")
    assert provider.call_count == 0


def test_the_cli_says_what_would_make_a_tight_budget_fit_and_the_hint_works() -> None:
    tight = (
        "run",
        "cascade",
        "Research tides",
        "--provider",
        "scripted",
        "--budget",
        "0.0004",
        "--store",
        "memory:",
    )
    done = orchestrate(*tight, "-q", "--json")
    assert done.returncode == 1
    refused = json.loads(done.stdout)
    assert refused["status"] == "budget_exceeded" and refused["usage"]["calls"] == 0
    error = refused["error"]
    found = re.search(r"a max_tokens of at most (\d+)", error)
    assert error.startswith("budget of $0.00040 cannot fit this call") and found, error
    done = orchestrate(*tight, "-q", "--json", "-o", f"max_tokens={found.group(1)}")
    result = json.loads(done.stdout)
    assert result["usage"]["calls"] >= 1 and result["total_cost"] <= 0.0004


async def test_reservations_are_events_only_with_a_cap() -> None:
    uncapped, capped = Recorder(), Recorder()
    await GraphOrchestrator(config(), ScriptedProvider(), subtasks=fan(3)).execute_workflow(
        "task", stream_callback=uncapped
    )
    assert not uncapped.of(EventType.CALL_RESERVED)  # nothing extra is written without a cap

    await GraphOrchestrator(config(max_total_cost=1.0), ScriptedProvider(), subtasks=fan(3)).execute_workflow(
        "task", stream_callback=capped
    )
    reserved = {e.seq: e for e in capped.of(EventType.CALL_RESERVED)}
    costs = capped.of(EventType.COST_UPDATE)
    assert len(reserved) == len(costs) == 4
    for cost in costs:  # each call was held before it was made, at no less than it cost
        held = reserved[cost.data["reservation"]]
        assert held.seq < cost.seq and held.agent_id == cost.agent_id
        assert held.data["amount"] >= cost.data["cost"]


async def test_waiting_calls_are_admitted_in_arrival_order_as_calls_settle() -> None:
    import asyncio

    from orchestration import BudgetExceededError
    from orchestration.budget import Budget

    budget = Budget(cap=1.0)
    first = budget.try_reserve(0.6)
    assert first is not None
    order: list[str] = []

    async def admit(name: str, amount: float) -> None:
        await budget.admit(amount)
        order.append(name)

    big = asyncio.create_task(admit("big", 0.6))
    small = asyncio.create_task(admit("small", 0.1))  # would fit now, but waits its turn
    leaving = asyncio.create_task(admit("leaves", 0.05))
    await asyncio.sleep(0)  # one scheduling step: each task runs up to its wait in the queue
    assert order == [] and budget.in_flight == 1
    leaving.cancel()  # a waiter that gives up leaves the queue
    budget.settle(first, 0.1)
    await asyncio.wait_for(asyncio.gather(big, small), 5)
    assert order == ["big", "small"] and budget.reserved == pytest.approx(0.7)
    assert leaving.cancelled()

    with pytest.raises(BudgetExceededError, match="even with nothing else in flight"):
        await budget.admit(0.95)  # 0.1 spent + 0.95 > 1.0: settling can never make it fit


def test_one_usd_formatter_for_every_cost_users_see() -> None:
    from orchestration import budget, progress, utils

    assert budget.format_usd is utils.format_usd is progress.format_usd_cell
    cells = {
        0: "$0",
        0.0123: "$0.0123",
        1.5: "$1.5000",
        1234.5: "$1,234.50",
        99.99999: "$100.00",
        0.0099996: "$0.0100",
        9.96e-6: "$0.000010",
        3.1e-6: "$0.0000031",
        4e-10: "$0.00000000040",
        -0.003: "-$0.0030",
        float("inf"): "$inf",
    }
    assert {value: utils.format_usd(value) for value in cells} == cells
    # rounded up, the amount shown is enough ("a budget of at least ...")
    for amount in (0.0012345, 0.123456, 123.451, 4.2e-7, 99.99999):
        shown = utils.format_usd(amount, up=True)
        assert float(shown.lstrip("$").replace(",", "")) >= amount, (amount, shown)
    assert utils.format_usd(0.0012301, up=True) == "$0.0013"
