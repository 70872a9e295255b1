"""Handlers call models through the framework: budget, retries, fallbacks, the bill per node."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orchestration import (
    Edge,
    EventType,
    Graph,
    MemoryStore,
    Node,
    NodeKind,
    OrchestratorConfig,
    ScriptedProvider,
    ServiceUnavailableError,
)
from orchestration.errors import ConfigError
from orchestration.graph import NodeContext
from orchestration.stores.sqlite import SQLiteStore


def research_graph() -> Graph:
    return Graph(
        nodes=[Node(id="facts"), Node(id="angles"), Node(id="write", kind=NodeKind.TERMINAL)],
        edges=[Edge(source="facts", target="write"), Edge(source="angles", target="write")],
        entry="facts",
    )


async def ask(ctx: NodeContext) -> str:
    return (await ctx.call_llm(f"{ctx.node_id} about tides", max_tokens=64)).content


async def write(ctx: NodeContext) -> str:
    parts = ctx.inputs()
    return (
        await ctx.call_llm("Write up: " + " | ".join(parts[k] for k in sorted(parts)), max_tokens=64)
    ).content


async def test_each_nodes_calls_are_billed_to_it_and_the_totals_add_up() -> None:
    store = MemoryStore()
    provider = ScriptedProvider({"facts": "high and low water", "angles": "moon and sun", "Write up": "done"})
    result = await research_graph().run(
        {"facts": ask, "angles": ask, "write": write}, store=store, run_id="bill", provider=provider
    )
    assert result.status == "completed"
    assert result.output("write") == "done"
    costs = [e for e in await store.events("bill") if e.event_type is EventType.COST_UPDATE]
    assert sorted(e.agent_id for e in costs) == ["angles", "facts", "write"]  # attributed to the node
    assert result.usage.calls == 3
    assert result.usage.input_tokens == sum(e.data["usage"]["input_tokens"] for e in costs)
    assert result.total_cost == pytest.approx(sum(e.data["usage"]["cost_usd"] for e in costs))
    assert result.total_cost > 0


async def test_retries_and_the_fallback_model_apply_to_node_calls() -> None:
    store = MemoryStore()
    provider = ScriptedProvider(
        "answer",
        failures=lambda n, request: (
            ServiceUnavailableError("down", status_code=503) if request.model == "primary-model" else None
        ),
    )
    config = OrchestratorConfig(
        primary_model="primary-model", fallback_model="backup-model", max_retries=1, retry_base_delay=0.0
    )
    graph = Graph(nodes=[Node(id="only")], entry="only")
    result = await graph.run({"only": ask}, store=store, run_id="fb", provider=provider, config=config)
    assert result.output("only") == "answer"
    kinds = [e.event_type for e in await store.events("fb")]
    assert EventType.MODEL_FALLBACK in kinds
    [cost] = [e for e in await store.events("fb") if e.event_type is EventType.COST_UPDATE]
    assert cost.data["model"] == "backup-model"


async def test_a_budget_that_cannot_fit_a_call_refuses_it_before_it_is_sent() -> None:
    sent: list[str] = []
    provider = ScriptedProvider(lambda request: sent.append("x") or "answer")
    config = OrchestratorConfig(max_total_cost=1e-9, max_tokens=4096)
    graph = Graph(nodes=[Node(id="only")], entry="only")
    result = await graph.run({"only": ask}, store=MemoryStore(), provider=provider, config=config)
    assert result.status == "failed"
    assert "budget" in result.errors["only"]
    assert sent == []  # nothing was paid for


async def test_calling_a_model_without_a_provider_is_one_clear_error() -> None:
    graph = Graph(nodes=[Node(id="only")], entry="only")
    result = await graph.run({"only": ask}, store=MemoryStore())
    assert result.errors["only"] == (
        "ConfigError: node 'only' called a model, but the run has no provider: "
        "pass provider= (and config=) to graph.run(...)"
    )
    assert ConfigError.__name__ in result.errors["only"]


async def test_a_resumed_run_counts_what_it_spent_and_pays_nothing_twice(tmp_path: Path) -> None:
    reached = asyncio.Event()
    gate = asyncio.Event()

    async def angles_then_hang(ctx: NodeContext) -> str:
        text = await ask(ctx)
        reached.set()
        await gate.wait()  # the process "dies" here, after paying for the call
        return text

    provider = ScriptedProvider("words")
    graph = research_graph()
    first = graph.start(
        {"facts": ask, "angles": angles_then_hang, "write": write},
        store=SQLiteStore(tmp_path / "r.db"),
        run_id="resumed",
        provider=provider,
    )
    task = asyncio.create_task(first.run())
    await reached.wait()
    await first.flushed()  # the paid calls are stored
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    spent_before = first.models.usage.cost_usd if first.models else 0.0
    assert spent_before > 0

    again = await graph.run(
        {"facts": ask, "angles": ask, "write": write},
        store=SQLiteStore(tmp_path / "r.db"),
        run_id="resumed",
        provider=provider,
    )
    assert again.status == "completed"
    # facts' and angles' calls were paid before the crash: angles, run again, is answered
    # from the recording (not paid twice); only write's call is new
    assert provider.call_count == 3
    assert again.usage.calls == 3
    assert again.total_cost > spent_before
