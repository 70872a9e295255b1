"""The seed README's code for the built-in patterns runs as written.

Each snippet below is copied verbatim from the README's sections; the test supplies only
what the README leaves to the reader (``your_llm_provider``/``provider``, ``config``,
``deep_analysis``/``quick_analysis``), using a provider of the README's shape: a sync
``complete(messages, **kwargs)`` returning an object with ``.content`` and ``.usage``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestration import EventType, OrchestratorConfig, StreamEvent, TaskStatus

from .helpers import ReadmeProvider

QUICK_START = """
import asyncio
from orchestration import DreamCascadeOrchestrator, DreamCascadeConfig

# Configure the orchestrator
config = DreamCascadeConfig(
    belter_count=3,      # Tier 1: Quick searches
    drummer_count=2,     # Tier 2: Analysis
    camina_count=1,      # Tier 3: Synthesis
    primary_model='gpt-4'
)

# Create with your LLM provider
orchestrator = DreamCascadeOrchestrator(config, provider=your_llm_provider)

# Execute workflow
result = asyncio.run(orchestrator.execute_workflow(
    task="Research quantum computing applications"
))

print(result.final_synthesis)
print(f"Cost: ${result.total_cost:.4f}")
"""

CASCADE = """
from orchestration import DreamCascadeOrchestrator, DreamCascadeConfig

config = DreamCascadeConfig(
    belter_count=5,      # Tier 1: Quick parallel searches
    drummer_count=3,     # Tier 2: Deep analysis
    camina_count=1       # Tier 3: Final synthesis
)

orchestrator = DreamCascadeOrchestrator(config, provider)
"""

SWARM = """
from orchestration import DreamSwarmOrchestrator, DreamSwarmConfig

config = DreamSwarmConfig(
    num_agents=5,
    domains=['arxiv', 'github', 'news', 'wikipedia'],
    max_parallel=3
)

orchestrator = DreamSwarmOrchestrator(config, provider)
"""

SEQUENTIAL = """
from orchestration import SequentialOrchestrator, OrchestratorConfig

config = OrchestratorConfig(num_agents=3, parallel_execution=False)
orchestrator = SequentialOrchestrator(config, provider)
"""

CONDITIONAL = """
from orchestration import ConditionalOrchestrator

def should_deep_analyze(context):
    return context.get('complexity') > 0.7

orchestrator = ConditionalOrchestrator(
    config, provider,
    condition=should_deep_analyze,
    true_branch=deep_analysis,
    false_branch=quick_analysis
)
"""

ITERATIVE = """
from orchestration import IterativeOrchestrator

orchestrator = IterativeOrchestrator(
    config, provider,
    max_iterations=5,
    convergence_fn=lambda r: r.score > 0.9
)
"""


def run(namespace: dict[str, Any], **kwargs: Any) -> Any:
    return asyncio.run(
        namespace["orchestrator"].execute_workflow("Research quantum computing applications", **kwargs)
    )


def test_quick_start(capsys: pytest.CaptureFixture[str]) -> None:
    provider = ReadmeProvider()
    namespace: dict[str, Any] = {"your_llm_provider": provider}
    exec(QUICK_START, namespace)
    result = namespace["result"]
    assert result.status is TaskStatus.COMPLETED, result.error
    assert provider.calls == 1 + 3 + 2 + 1
    assert result.total_cost > 0
    assert set(result.cost_by_model) == {"gpt-4"}
    out = capsys.readouterr().out
    assert "## Summary" in out and f"Cost: ${result.total_cost:.4f}" in out


@pytest.mark.parametrize(
    ("snippet", "calls", "agents"),
    [(CASCADE, 1 + 5 + 3 + 1, 5), (SWARM, 1 + 5 + 1, 5), (SEQUENTIAL, 1 + 3, 3)],
)
def test_pattern_sections(snippet: str, calls: int, agents: int) -> None:
    provider = ReadmeProvider()
    namespace: dict[str, Any] = {"provider": provider}
    exec(snippet, namespace)
    result = run(namespace)
    assert result.status is TaskStatus.COMPLETED, result.error
    assert provider.calls == calls
    assert len(result.agent_results) == agents
    assert result.final_synthesis


def conditional_namespace() -> dict[str, Any]:
    from orchestration import DreamCascadeConfig, DreamCascadeOrchestrator, SequentialOrchestrator

    provider = ReadmeProvider()
    config = OrchestratorConfig(num_agents=3)
    return {
        "provider": provider,
        "config": config,
        "deep_analysis": DreamCascadeOrchestrator(DreamCascadeConfig(belter_count=3), provider),
        "quick_analysis": SequentialOrchestrator(config, provider, steps=["Answer briefly"]),
    }


@pytest.mark.parametrize(("complexity", "branch", "agents"), [(0.9, "true", 3), (0.2, "false", 1)])
def test_conditional_section(complexity: float, branch: str, agents: int) -> None:
    namespace = conditional_namespace()
    exec(CONDITIONAL, namespace)
    events: list[StreamEvent] = []
    result = run(namespace, context={"complexity": complexity}, stream_callback=events.append)
    assert result.status is TaskStatus.COMPLETED, result.error
    assert result.metadata["branch"] == branch
    assert [e.data["branch"] for e in events if e.event_type is EventType.BRANCH_SELECTED] == [branch]
    assert len(result.agent_results) == agents


def test_conditional_section_without_complexity_fails_truthfully() -> None:
    namespace = conditional_namespace()
    exec(CONDITIONAL, namespace)
    result = run(namespace)
    assert result.status is TaskStatus.FAILED
    assert "should_deep_analyze raised TypeError" in (result.error or "")


def test_iterative_section() -> None:
    provider = ReadmeProvider()
    namespace: dict[str, Any] = {"provider": provider, "config": OrchestratorConfig()}
    exec(ITERATIVE, namespace)
    result = run(namespace)
    assert result.status is TaskStatus.COMPLETED, result.error
    assert result.metadata["converged"] is True
    assert provider.calls == 2  # one answer, one judgement (the demo judge gives 0.95)
