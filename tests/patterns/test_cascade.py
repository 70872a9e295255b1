"""Dream Cascade: tiers, grouping, models, thresholds, failures, cancellation, cost."""

from __future__ import annotations

import asyncio

import pytest

from orchestration import (
    CompletionRequest,
    ConfigError,
    EventType,
    OrchestratorConfig,
    TaskStatus,
)
from patterns import DreamCascadeConfig, DreamCascadeOrchestrator

from .helpers import BillingProvider, Recorder, cancel_once_seen, check_bill, fail_when

TASK = "Research quantum computing applications"


def cascade(provider: BillingProvider, **fields: object) -> DreamCascadeOrchestrator:
    config = DreamCascadeConfig(**{"max_retries": 0, **fields})  # type: ignore[arg-type]
    return DreamCascadeOrchestrator(config, provider)


async def test_three_tiers_grouping_and_cost() -> None:
    provider = BillingProvider()
    recorder = Recorder()
    result = await cascade(provider, belter_count=5, drummer_count=3).execute_workflow(
        TASK, stream_callback=recorder
    )
    assert result.status is TaskStatus.COMPLETED, result.error
    assert [r.agent_id for r in result.agent_results] == [f"agent_belter_{i}" for i in range(1, 6)]
    assert all(r.agent_type == "belter" for r in result.agent_results)
    by_agent = {s.agent_id: s for s in result.synthesis_results}
    assert [s.agent_id for s in result.synthesis_results] == [
        "drummer_1",
        "drummer_2",
        "drummer_3",
        "camina_1",
    ]
    assert by_agent["drummer_1"].source_ids == ("agent_belter_1", "agent_belter_2")
    assert by_agent["drummer_2"].source_ids == ("agent_belter_3", "agent_belter_4")
    assert by_agent["drummer_3"].source_ids == ("agent_belter_5",)
    assert {by_agent[f"drummer_{i}"].level for i in (1, 2, 3)} == {1}
    assert by_agent["camina_1"].level == 2
    assert by_agent["camina_1"].source_ids == ("drummer_1", "drummer_2", "drummer_3")
    assert result.final_synthesis == by_agent["camina_1"].content
    # 1 decomposition + 5 belters + 3 drummers + 1 camina, every one billed
    assert provider.call_count == 10
    check_bill(result, recorder, provider)
    for tier_agent in ("planner", "drummer_1", "drummer_2", "drummer_3", "camina_1"):
        assert result.cost_by_agent[tier_agent].cost_usd > 0
    for synthesis in result.synthesis_results:
        assert synthesis.cost == pytest.approx(result.cost_by_agent[synthesis.agent_id].cost_usd)
    assert result.metadata["cascade"]["groups"]["drummer_2"] == ["agent_belter_3", "agent_belter_4"]


async def test_tier_models() -> None:
    provider = BillingProvider()
    config = dict(
        belter_count=2,
        drummer_count=1,
        primary_model="gpt-4o-mini",
        belter_model="gpt-4.1-nano",
        drummer_model="gpt-4.1-mini",
        camina_model="gpt-4o",
    )
    result = await cascade(provider, **config).execute_workflow(TASK)
    assert result.status is TaskStatus.COMPLETED
    models = [request.model for request in provider.calls]
    assert models == ["gpt-4o-mini", "gpt-4.1-nano", "gpt-4.1-nano", "gpt-4.1-mini", "gpt-4o"]
    assert set(result.cost_by_model) == {"gpt-4o-mini", "gpt-4.1-nano", "gpt-4.1-mini", "gpt-4o"}


async def test_more_drummers_than_results() -> None:
    provider = BillingProvider()
    result = await cascade(provider, belter_count=2, drummer_count=5).execute_workflow(TASK)
    drummers = [s for s in result.synthesis_results if s.agent_id.startswith("drummer")]
    assert [d.source_ids for d in drummers] == [("agent_belter_1",), ("agent_belter_2",)]


async def test_drummer_tier_disabled() -> None:
    provider = BillingProvider()
    result = await cascade(provider, belter_count=3, enable_drummer=False).execute_workflow(TASK)
    assert result.status is TaskStatus.COMPLETED
    assert provider.call_count == 1 + 3 + 1
    [camina] = result.synthesis_results
    assert camina.agent_id == "camina_1" and camina.level == 2
    assert camina.source_ids == ("agent_belter_1", "agent_belter_2", "agent_belter_3")


async def test_camina_tier_disabled() -> None:
    provider = BillingProvider()
    result = await cascade(provider, belter_count=4, drummer_count=2, enable_camina=False).execute_workflow(
        TASK
    )
    assert result.status is TaskStatus.COMPLETED
    assert provider.call_count == 1 + 4 + 2
    final = result.synthesis_results[-1]
    assert final.level == 1 and final.source_ids == ("drummer_1", "drummer_2")
    drummer_texts = [s.content for s in result.synthesis_results[:2]]
    assert all(text in (result.final_synthesis or "") for text in drummer_texts)


async def test_both_upper_tiers_disabled() -> None:
    provider = BillingProvider()
    result = await cascade(
        provider, belter_count=2, enable_drummer=False, enable_camina=False
    ).execute_workflow(TASK)
    assert result.status is TaskStatus.COMPLETED
    assert provider.call_count == 3
    assert all(r.content in (result.final_synthesis or "") for r in result.agent_results)


async def test_drummer_threshold_skips_tier_two() -> None:
    provider = BillingProvider()
    recorder = Recorder()
    result = await cascade(provider, belter_count=3, drummer_threshold=4).execute_workflow(
        TASK, stream_callback=recorder
    )
    assert result.status is TaskStatus.COMPLETED
    assert [s.agent_id for s in result.synthesis_results] == ["camina_1"]
    assert any("drummer_threshold=4" in e.data["message"] for e in recorder.of(EventType.WARNING))


async def test_several_caminas() -> None:
    provider = BillingProvider()
    recorder = Recorder()
    result = await cascade(
        provider,
        belter_count=2,
        drummer_count=1,
        camina_count=2,
        camina_perspectives=["an overview", "the risks"],
    ).execute_workflow(TASK, stream_callback=recorder)
    assert result.status is TaskStatus.COMPLETED
    caminas = [s for s in result.synthesis_results if s.agent_id.startswith("camina_")]
    assert [c.metadata["perspective"] for c in caminas] == ["an overview", "the risks"]
    assert all(c.level == 2 for c in caminas)
    final = result.synthesis_results[-1]
    assert final.agent_id == "camina" and final.level == 2
    assert "## an overview" in (result.final_synthesis or "") and "## the risks" in (
        result.final_synthesis or ""
    )
    assert any("an overview" in p for p in provider.prompts()) and any(
        "the risks" in p for p in provider.prompts()
    )
    check_bill(result, recorder, provider)


@pytest.mark.parametrize("answer", ["I would rather not plan this.", '{"subtasks": []}', ""])
async def test_unparseable_decomposition_falls_back(answer: str) -> None:
    def replies(request: CompletionRequest) -> str:
        if "JSON" in request.prompt_text:
            return answer
        return "finding"

    provider = BillingProvider(replies)
    recorder = Recorder()
    result = await cascade(provider, belter_count=4, drummer_count=2).execute_workflow(
        TASK, stream_callback=recorder
    )
    assert result.status is TaskStatus.COMPLETED
    assert len(result.agent_results) == 4
    assert result.subtasks[0].description.startswith("Background and key concepts of: " + TASK)
    warnings = [e.data["message"] for e in recorder.of(EventType.WARNING)]
    assert any("could not be parsed" in w and "research angle" in w for w in warnings)


async def test_longer_plan_is_cut_with_a_warning() -> None:
    plan = '{"subtasks": [' + ",".join(f'{{"description": "part {i}"}}' for i in range(7)) + "]}"
    provider = BillingProvider(lambda r: plan if "JSON" in r.prompt_text else "finding")
    recorder = Recorder()
    result = await cascade(provider, belter_count=3).execute_workflow(TASK, stream_callback=recorder)
    assert len(result.agent_results) == 3
    assert any("using the first 3" in e.data["message"] for e in recorder.of(EventType.WARNING))


async def test_tier_one_failure_is_partial_and_grouping_uses_survivors() -> None:
    provider = BillingProvider(failures=fail_when("tier-1", "open problems"))
    recorder = Recorder()
    result = await cascade(provider, belter_count=4, drummer_count=2).execute_workflow(
        TASK, stream_callback=recorder
    )
    assert result.status is TaskStatus.PARTIAL
    assert "belter_3" in (result.error or "")
    failed = [r for r in result.agent_results if r.status is TaskStatus.FAILED]
    assert [r.agent_id for r in failed] == ["agent_belter_3"]
    drummers = [s for s in result.synthesis_results if s.agent_id.startswith("drummer")]
    assert [d.source_ids for d in drummers] == [("agent_belter_1", "agent_belter_2"), ("agent_belter_4",)]
    assert result.final_synthesis
    camina_prompt = next(p for p in provider.prompts() if "final report" in p)
    assert "agent_belter_3" in camina_prompt  # the gap is named to the final synthesis
    check_bill(result, recorder, provider)


async def test_tier_two_failure_is_partial_and_passes_raw_results_up() -> None:
    provider = BillingProvider(failures=fail_when("tier-2 analyst", "agent_belter_3"))
    recorder = Recorder()
    result = await cascade(provider, belter_count=4, drummer_count=2).execute_workflow(
        TASK, stream_callback=recorder
    )
    assert result.status is TaskStatus.PARTIAL
    assert "drummer_2 failed" in (result.error or "")
    assert [s.agent_id for s in result.synthesis_results] == ["drummer_1", "camina_1"]
    assert result.synthesis_results[-1].source_ids == ("drummer_1", "agent_belter_3", "agent_belter_4")
    camina_prompt = next(p for p in provider.prompts() if "final report" in p)
    assert result.agent_results[3].content in camina_prompt
    check_bill(result, recorder, provider)


async def test_tier_three_failure_keeps_tier_two_reports() -> None:
    provider = BillingProvider(failures=fail_when("You write the final report"))
    recorder = Recorder()
    result = await cascade(provider, belter_count=2, drummer_count=2).execute_workflow(
        TASK, stream_callback=recorder
    )
    assert result.status is TaskStatus.PARTIAL
    assert "camina_1 failed" in (result.error or "")
    drummers = result.synthesis_results[:2]
    assert all(d.content in (result.final_synthesis or "") for d in drummers)
    check_bill(result, recorder, provider)


async def test_tier_two_timeout() -> None:
    provider = BillingProvider(latency=lambda r: 5.0 if "tier-2 analyst" in r.prompt_text else 0.0)
    result = await cascade(provider, belter_count=2, drummer_count=1, drummer_timeout=0.01).execute_workflow(
        TASK
    )
    assert result.status is TaskStatus.PARTIAL
    assert "drummer_1 failed: timed out after 0.01s" in (result.error or "")
    assert result.final_synthesis


async def test_all_belters_fail() -> None:
    provider = BillingProvider(failures=fail_when("tier-1"))
    result = await cascade(provider, belter_count=3).execute_workflow(TASK)
    assert result.status is TaskStatus.FAILED
    assert result.final_synthesis is None
    assert provider.call_count == 1 + 3  # no tier 2 or 3 calls for nothing


async def test_cancel_during_tier_two_keeps_results() -> None:
    def latency(request: CompletionRequest) -> float:
        slow = "tier-2 analyst" in request.prompt_text and "agent_belter_1" not in request.prompt_text
        return 30.0 if slow else 0.0

    provider = BillingProvider(latency=latency)
    recorder = Recorder(lambda e: e.event_type is EventType.SYNTHESIS_COMPLETE and e.agent_id == "drummer_1")
    orchestrator = cascade(provider, belter_count=4, drummer_count=2)
    result = await cancel_once_seen(orchestrator, TASK, recorder)
    assert result.status is TaskStatus.CANCELLED
    assert len([r for r in result.agent_results if r.status is TaskStatus.COMPLETED]) == 4
    assert [s.agent_id for s in result.synthesis_results] == ["drummer_1"]
    assert result.total_cost == pytest.approx(provider.expected_cost())


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"belter_count": 0}, "belter_count"),
        ({"drummer_count": -1}, "drummer_count"),
        ({"camina_count": 0}, "camina_count"),
        ({"drummer_threshold": 0}, "drummer_threshold"),
        ({"belter_count": 2.5}, "belter_count"),
        ({"drummer_timeout": 0}, "drummer_timeout"),
        ({"camina_model": ""}, "camina_model"),
        ({"camina_perspectives": []}, "camina_perspectives"),
        ({"enable_camina": "no"}, "enable_camina"),
        ({"num_agents": 0}, "num_agents"),
    ],
)
def test_bad_config(fields: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        DreamCascadeConfig(**fields)  # type: ignore[arg-type]


def test_plain_config_is_lifted_and_belters_default_to_num_agents() -> None:
    orchestrator = DreamCascadeOrchestrator(OrchestratorConfig(num_agents=4), BillingProvider())
    assert isinstance(orchestrator.config, DreamCascadeConfig)
    assert orchestrator.config.belters == 4
    assert DreamCascadeConfig(belter_count=2, num_agents=7).belters == 2


async def test_empty_task() -> None:
    with pytest.raises(ConfigError, match="task"):
        await cascade(BillingProvider()).execute_workflow("   ")


async def test_prompt_overrides() -> None:
    provider = BillingProvider()
    orchestrator = DreamCascadeOrchestrator(
        DreamCascadeConfig(belter_count=1, prompts={"camina": "FINAL $task\n$results"}),
        provider,
        prompts={"belter": "CUSTOM $subtask"},
    )
    result = await orchestrator.execute_workflow(TASK)
    assert result.status is TaskStatus.COMPLETED
    assert any(p.startswith("CUSTOM ") for p in provider.prompts())
    assert any(p.startswith("FINAL " + TASK) for p in provider.prompts())
    with pytest.raises(ConfigError, match="unknown prompt"):
        DreamCascadeOrchestrator(DreamCascadeConfig(), provider, prompts={"nope": "x"})
    with pytest.raises(ConfigError, match="placeholder"):
        DreamCascadeOrchestrator(DreamCascadeConfig(), provider, prompts={"belter": "$unknown"})


async def test_no_state_leaks_between_concurrent_runs() -> None:
    provider = BillingProvider()
    orchestrator = cascade(provider, belter_count=3, drummer_count=2)
    first, second = await asyncio.gather(
        orchestrator.execute_workflow("Research topic one"),
        orchestrator.execute_workflow("Research topic two"),
    )
    for result, topic in ((first, "topic one"), (second, "topic two")):
        assert result.status is TaskStatus.COMPLETED
        assert len(result.agent_results) == 3
        assert all(topic in r.content for r in result.agent_results)
        assert [s.agent_id for s in result.synthesis_results] == ["drummer_1", "drummer_2", "camina_1"]
    assert first.total_cost + second.total_cost == pytest.approx(provider.expected_cost())


def test_wrong_config_class_is_a_clear_error() -> None:
    from patterns import DreamSwarmConfig, DreamSwarmOrchestrator

    with pytest.raises(ConfigError, match="needs a DreamCascadeConfig"):
        DreamCascadeOrchestrator(DreamSwarmConfig(), BillingProvider())
    with pytest.raises(ConfigError, match="needs a DreamSwarmConfig"):
        DreamSwarmOrchestrator(DreamCascadeConfig(), BillingProvider())


async def test_budget_stop_in_tier_two_is_reported_as_such() -> None:
    from orchestration import BudgetExceededError

    provider = BillingProvider(
        failures=fail_when("tier-2 analyst", error=BudgetExceededError("cap reached", cap=0.01, spent=0.01))
    )
    result = await cascade(provider, belter_count=4, drummer_count=2).execute_workflow(TASK)
    assert result.status is TaskStatus.BUDGET_EXCEEDED
    assert "cap reached" in (result.error or "")
    assert len(result.agent_results) == 4


async def test_real_budget_cap_holds() -> None:
    provider = BillingProvider()
    result = await cascade(provider, belter_count=5, max_total_cost=0.00012, max_tokens=20).execute_workflow(
        TASK
    )
    assert result.status is TaskStatus.BUDGET_EXCEEDED
    assert result.total_cost <= 0.00012
    assert result.total_cost == pytest.approx(provider.expected_cost())
