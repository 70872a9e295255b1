"""Dream Swarm: domain assignment, parallelism cap, deduplication, failures, cost."""

from __future__ import annotations

import asyncio
import json

import pytest

from orchestration import (
    CompletionRequest,
    ConfigError,
    EventType,
    TaskStatus,
)
from patterns import DreamSwarmConfig, DreamSwarmOrchestrator, classify_domain

from .helpers import BillingProvider, Recorder, cancel_once_seen, check_bill, fail_when

TASK = "Survey quantum error correction"
DOMAINS = ["arxiv", "github", "news", "wikipedia"]


def plan(*items: dict[str, str]) -> str:
    return json.dumps({"subtasks": list(items)})


async def test_domains_explicit_classified_and_balanced() -> None:
    answer = plan(
        {"description": "Find recent papers on surface codes", "domain": "arxiv"},
        {"description": "Find open source implementation libraries", "domain": "GitHub"},
        {"description": "Latest industry announcements", "domain": "twitter"},  # unknown -> keywords
        {"description": "History and definition of the field"},  # keywords -> wikipedia
        {"description": "Something unrelated entirely"},  # no keywords -> least used domain
    )
    provider = BillingProvider(
        lambda r: answer if "JSON" in r.prompt_text else "- a finding about " + r.prompt_text[:40]
    )
    recorder = Recorder()
    orchestrator = DreamSwarmOrchestrator(
        DreamSwarmConfig(num_agents=5, domains=DOMAINS, max_parallel=3), provider
    )
    result = await orchestrator.execute_workflow(TASK, stream_callback=recorder)
    assert result.status is TaskStatus.COMPLETED, result.error
    assigned = [(s.metadata["domain"], s.metadata["domain_source"]) for s in result.subtasks]
    assert assigned == [
        ("arxiv", "explicit"),
        ("github", "explicit"),
        ("news", "keywords"),
        ("wikipedia", "keywords"),
        ("arxiv", "balanced"),
    ]
    assert [r.metadata["domain"] for r in result.agent_results] == [d for d, _ in assigned]
    search_prompts = [p for p in provider.prompts() if "specialist" in p]
    assert "You are the github specialist" in search_prompts[1]
    synthesis_prompt = provider.prompts()[-1]
    for domain in DOMAINS:
        assert f"## {domain} (from " in synthesis_prompt
    assert result.metadata["swarm"]["domains"]["arxiv"] == ["agent_search_1", "agent_search_5"]
    assert provider.call_count == 1 + 5 + 1
    check_bill(result, recorder, provider)


async def test_max_parallel_caps_concurrency() -> None:
    running = 0
    peak = 0

    provider = BillingProvider()
    original = provider.complete

    async def counting(request: CompletionRequest):  # type: ignore[no-untyped-def]
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.01)
            return await original(request)
        finally:
            running -= 1

    provider.complete = counting  # type: ignore[method-assign]
    config = DreamSwarmConfig(num_agents=6, domains=DOMAINS, max_parallel=2, max_concurrent_agents=10)
    assert config.concurrency == 2
    result = await DreamSwarmOrchestrator(config, provider).execute_workflow(TASK)
    assert result.status is TaskStatus.COMPLETED
    assert peak == 2
    assert DreamSwarmConfig(max_parallel=4, parallel_execution=False).concurrency == 1


async def test_findings_are_deduplicated_across_domains() -> None:
    answer = plan({"description": "papers", "domain": "arxiv"}, {"description": "repos", "domain": "github"})
    replies = {
        "JSON": answer,
        "arxiv specialist": "- Surface codes need many physical qubits.\n- Decoders must run in real time.",
        "github specialist": "- surface codes need many physical qubits!\n- Stim simulates stabilizer circuits.",
    }
    provider = BillingProvider(replies)
    config = DreamSwarmConfig(num_agents=2, domains=DOMAINS, dedupe_threshold=1.0)
    result = await DreamSwarmOrchestrator(config, provider).execute_workflow(TASK)
    synthesis_prompt = provider.prompts()[-1]
    assert synthesis_prompt.lower().count("surface codes need many physical qubits") == 1
    assert "Stim simulates stabilizer circuits." in synthesis_prompt
    final = result.synthesis_results[-1]
    assert final.metadata["duplicates_removed"] == 1 and final.metadata["findings"] == 3
    assert final.metadata["domains_without_results"] == ["news", "wikipedia"]


async def test_explicit_subtasks_skip_planning() -> None:
    provider = BillingProvider()
    orchestrator = DreamSwarmOrchestrator(
        DreamSwarmConfig(domains=["text", "video"]),
        provider,
        subtasks=[
            ("video", "conference talks"),
            "articles and blog posts",
            {"description": "x", "domain": "text"},
        ],
    )
    result = await orchestrator.execute_workflow(TASK)
    assert provider.call_count == 3 + 1
    assert [s.metadata["domain"] for s in result.subtasks] == ["video", "text", "text"]
    with pytest.raises(ConfigError, match="subtasks"):
        DreamSwarmOrchestrator(DreamSwarmConfig(), provider, subtasks=[])
    with pytest.raises(ConfigError, match="swarm subtask"):
        DreamSwarmOrchestrator(DreamSwarmConfig(), provider, subtasks=[42])


async def test_unparseable_plan_falls_back_to_one_subtask_per_domain() -> None:
    provider = BillingProvider(lambda r: "no idea" if "JSON" in r.prompt_text else "- finding")
    recorder = Recorder()
    config = DreamSwarmConfig(num_agents=5, domains=DOMAINS)
    result = await DreamSwarmOrchestrator(config, provider).execute_workflow(TASK, stream_callback=recorder)
    assert result.status is TaskStatus.COMPLETED
    assert [s.metadata["domain"] for s in result.subtasks] == [*DOMAINS, "arxiv"]
    assert any("split by domain" in e.data["message"] for e in recorder.of(EventType.WARNING))


async def test_failed_searcher_is_partial_and_named_in_synthesis() -> None:
    answer = plan({"description": "a", "domain": "arxiv"}, {"description": "b", "domain": "news"})
    provider = BillingProvider(
        lambda r: answer if "JSON" in r.prompt_text else "- finding", failures=fail_when("news specialist")
    )
    recorder = Recorder()
    config = DreamSwarmConfig(num_agents=2, domains=DOMAINS, max_retries=0)
    result = await DreamSwarmOrchestrator(config, provider).execute_workflow(TASK, stream_callback=recorder)
    assert result.status is TaskStatus.PARTIAL
    assert [r.status for r in result.agent_results] == [TaskStatus.COMPLETED, TaskStatus.FAILED]
    assert "Searches that failed: agent_search_2" in provider.prompts()[-1]
    assert result.final_synthesis
    check_bill(result, recorder, provider)


async def test_cancel_mid_swarm() -> None:
    answer = plan(*({"description": f"s{i}", "domain": "arxiv"} for i in range(4)))
    provider = BillingProvider(
        lambda r: answer if "JSON" in r.prompt_text else "- finding",
        latency=lambda r: 30.0 if "Subtask: s3" in r.prompt_text else 0.0,
    )
    recorder = Recorder(lambda e: e.event_type is EventType.AGENT_COMPLETE)
    orchestrator = DreamSwarmOrchestrator(DreamSwarmConfig(num_agents=4, max_parallel=4), provider)
    result = await cancel_once_seen(orchestrator, TASK, recorder)
    assert result.status is TaskStatus.CANCELLED
    assert any(r.status is TaskStatus.COMPLETED for r in result.agent_results)
    assert result.final_synthesis is None


def test_classify_domain() -> None:
    assert classify_domain("GitHub repositories with code", DOMAINS) == ("github", "keywords")
    assert classify_domain("a preprint on theory", DOMAINS) == ("arxiv", "keywords")
    assert classify_domain("zzz", DOMAINS, load={"arxiv": 1}) == ("github", "balanced")
    assert classify_domain("cats", ["pets", "cars"], keywords={"pets": ["cats"]}) == ("pets", "keywords")


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"domains": []}, "domains"),
        ({"domains": "arxiv"}, "domains"),
        ({"domains": ["a", "A"]}, "domains"),
        ({"max_parallel": 0}, "max_parallel"),
        ({"num_agents": -2}, "num_agents"),
        ({"dedupe_threshold": 0}, "dedupe_threshold"),
    ],
)
def test_bad_config(fields: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        DreamSwarmConfig(**fields)  # type: ignore[arg-type]
