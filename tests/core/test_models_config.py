"""Models construct as the seed README writes them and round-trip; config validation names fields."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from orchestration import (
    AgentResult,
    AgentType,
    ConfigError,
    DreamCascadeConfig,
    EventType,
    OrchestratorConfig,
    OrchestratorResult,
    StreamEvent,
    SubTask,
    SynthesisResult,
    TaskStatus,
    Usage,
)
from orchestration.ratelimit import RateLimit


def test_seed_readme_models_construct_as_written() -> None:
    subtask = SubTask(
        id="task-1",
        description="Analyze data",
        agent_type=AgentType.ANALYST,
        priority=1,
        dependencies=["task-0"],
    )
    result = AgentResult(
        agent_id="agent-1",
        agent_type=AgentType.ANALYST,
        subtask_id="task-1",
        content="Analysis results...",
        status=TaskStatus.COMPLETED,
        execution_time=5.2,
        cost=0.003,
    )
    orchestrator_result = OrchestratorResult(
        task_id="workflow-1",
        title="Research Task",
        status=TaskStatus.COMPLETED,
        agent_results=[result],
        final_synthesis="Summary...",
        execution_time=45.2,
        total_cost=0.05,
    )
    assert subtask.dependencies == ("task-0",)
    assert AgentType.RESEARCHER == "researcher"
    assert orchestrator_result.run_id == "workflow-1"
    assert orchestrator_result.succeeded


def test_every_model_round_trips_through_json() -> None:
    usage = Usage(input_tokens=10, output_tokens=5, cached_input_tokens=2, cost_usd=0.001, calls=1)
    agent = AgentResult(
        agent_id="a",
        agent_type=AgentType.RESEARCHER,
        subtask_id="s",
        content="ünïcode",
        usage=usage,
        model="gpt-4o",
        metadata={"k": [1, 2]},
    )
    synthesis = SynthesisResult(content="sum", level=2, source_ids=["a"], usage=usage)
    subtask = SubTask(id="s", description="d", dependencies=["x"], metadata={"m": 1})
    result = OrchestratorResult(
        task_id="r",
        title="t",
        status=TaskStatus.PARTIAL,
        agent_results=[agent],
        synthesis_results=[synthesis],
        subtasks=[subtask],
        usage=usage,
        cost_by_agent={"a": usage},
        cost_by_model={"gpt-4o": usage},
        error="one failed",
    )
    for model in (usage, agent, synthesis, subtask, result):
        again = type(model).from_dict(json.loads(json.dumps(model.to_dict())))
        assert again == model
    event = StreamEvent(EventType.AGENT_COMPLETE, "r", 7, 1.5, {"result": agent.to_dict()}, "a", 42.0)
    assert StreamEvent.from_dict(json.loads(event.to_json())) == event
    assert event.task_id == "r"


def test_usage_adds_and_answers_dict_style_lookups() -> None:
    total = Usage(input_tokens=3, output_tokens=4, calls=1) + Usage(
        input_tokens=1, output_tokens=1, calls=1, estimated=True
    )
    assert total.total_tokens == 9 and total.calls == 2 and total.estimated
    assert total.get("total_tokens") == 9 and total.get("prompt_tokens") == 4 and total.get("nope", 0) == 0


def test_event_types_cover_the_lifecycle() -> None:
    names = {e.name for e in EventType}
    for required in (
        "WORKFLOW_START",
        "WORKFLOW_COMPLETE",
        "WORKFLOW_ERROR",
        "WORKFLOW_CANCELLED",
        "DECOMPOSITION_START",
        "DECOMPOSITION_COMPLETE",
        "AGENT_START",
        "AGENT_PROGRESS",
        "AGENT_COMPLETE",
        "AGENT_ERROR",
        "SYNTHESIS_START",
        "SYNTHESIS_COMPLETE",
        "ITERATION_START",
        "ITERATION_COMPLETE",
        "DOCUMENT_GENERATION_START",
        "DOCUMENT_GENERATION_COMPLETE",
        "MODEL_RETRY",
        "COST_UPDATE",
    ):
        assert required in names


def test_seed_readme_config_is_valid() -> None:
    config = OrchestratorConfig(
        num_agents=5,
        primary_model="gpt-4",
        fallback_model="gpt-3.5-turbo",
        max_retries=3,
        timeout_seconds=300,
        parallel_execution=True,
        max_concurrent_agents=3,
        enable_cost_tracking=True,
        generate_documents=False,
        document_formats=["markdown", "pdf"],
    )
    assert config.validate() == []
    assert config.fallback_models == ("gpt-3.5-turbo",)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_agents": 0}, "num_agents"),
        ({"max_retries": -1}, "max_retries"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"max_concurrent_agents": 0}, "max_concurrent_agents"),
        ({"max_total_cost": -5}, "max_total_cost"),
        ({"document_formats": ["docx"]}, "document_formats"),
        ({"primary_model": ""}, "primary_model"),
        ({"parallel_execution": "yes"}, "parallel_execution"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_total_cost": 1.0, "enable_cost_tracking": False}, "max_total_cost"),
    ],
)
def test_invalid_config_raises_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        OrchestratorConfig(**kwargs)  # type: ignore[arg-type]


FLOAT_FIELDS = [f.name for f in dataclasses.fields(OrchestratorConfig) if "float" in str(f.type)]


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_every_float_field_must_be_finite(name: str, value: float) -> None:
    assert {"temperature", "max_total_cost", "timeout_seconds"} <= set(FLOAT_FIELDS)
    with pytest.raises(ConfigError) as caught:
        OrchestratorConfig(**{name: value})  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(f"{name} must be a finite number") and "\n" not in message


def test_pattern_configs_and_rate_limits_refuse_infinity_too() -> None:
    with pytest.raises(ConfigError, match="belter_timeout must be a number of seconds > 0"):
        DreamCascadeConfig(belter_timeout=math.inf)
    with pytest.raises(ValueError, match="requests must be at least 1"):
        RateLimit(requests=math.nan)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="period must be positive and finite"):
        RateLimit(period=math.inf)


def test_validate_reports_every_problem_after_changes_in_place() -> None:
    config = OrchestratorConfig()
    config.num_agents = 0
    config.max_retries = -2
    errors = config.validate()
    assert len(errors) == 2
    assert any("num_agents" in e for e in errors) and any("max_retries" in e for e in errors)


def test_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(ConfigError, match="unknown config field"):
        OrchestratorConfig.from_dict({"num_agent": 3})
    assert OrchestratorConfig.from_dict({"num_agents": 4}).num_agents == 4
