"""The planner driven by a vendor over real HTTP: the fake vendor server (tests/providers)
answers in OpenAI's (and Anthropic's) tool-call JSON, malformed arguments included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from orchestration import EventType, MemoryStore, PlannerConfig, PlannerOrchestrator, TaskStatus
from providers.anthropic import AnthropicProvider
from providers.openai import OpenAIProvider
from tests.providers.fakevendor import FakeVendor, Reply
from tests.providers.provider_helpers import ANTHROPIC_SECRET, SECRET

TOOL_NAMES = [
    "add_node",
    "split_node",
    "rework",
    "refine_node",
    "edit_node",
    "remove_node",
    "list_nodes",
    "check_task",
    "history",
    "finish",
]


@pytest.fixture(scope="module")
def vendor() -> Iterator[FakeVendor]:
    with FakeVendor() as server:
        yield server


def script() -> list[Reply]:
    """The vendor's answers in request order (one node runs at a time)."""
    return [
        Reply.tools(
            {
                "id": "call_a",
                "name": "add_node",
                "arguments": {"node_id": "facts", "description": "Collect tide facts"},
            },
            {"id": "call_bad", "name": "add_node", "arguments": '{"node_id": "broken",'},
            {
                "id": "call_b",
                "name": "add_node",
                "arguments": {
                    "node_id": "report",
                    "description": "Write the report",
                    "dependencies": ["facts"],
                },
            },
            prompt_tokens=1500,
            completion_tokens=60,
        ),
        Reply.ok("Tides follow the moon."),
        Reply.ok("A long report about tides."),
        Reply.tools(
            {
                "id": "call_fix",
                "name": "rework",
                "arguments": {
                    "source": "report",
                    "node_id": "report.short",
                    "description": "Make it one line",
                },
            },
            prompt_tokens=1900,
            completion_tokens=30,
        ),
        Reply.ok("Tides: the moon pulls the sea."),
        Reply.tools({"id": "call_end", "name": "finish", "arguments": {"reason": "short enough"}}),
        Reply.ok("FINAL: the moon pulls the sea twice a day."),
    ]


def provider(vendor: FakeVendor, which: str) -> tuple[Any, str]:
    if which == "openai":
        return OpenAIProvider(api_key=SECRET, base_url=f"{vendor.url}/v1"), "gpt-4o-mini"
    return AnthropicProvider(api_key=ANTHROPIC_SECRET, base_url=vendor.url), "claude-haiku-4-5"


@pytest.mark.parametrize("which", ["openai", "anthropic"])
async def test_a_vendor_plans_through_tool_call_json_over_http(vendor: FakeVendor, which: str) -> None:
    vendor.reset()
    vendor.script(*script())
    llm, model = provider(vendor, which)
    store = MemoryStore()
    async with llm:
        planner = PlannerOrchestrator(
            PlannerConfig(primary_model=model, max_concurrent_agents=1), llm, store=store
        )
        result = await planner.execute_workflow("Explain tides", run_id="tides")

    assert result.status is TaskStatus.COMPLETED, result.error
    assert result.final_synthesis == "FINAL: the moon pulls the sea twice a day."
    assert result.metadata["planner"]["nodes"]["report.short"]["dependencies"] == ["report"]
    bodies = [r.body for r in vendor.requests]
    assert len(bodies) == 7
    planner_bodies = [bodies[0], bodies[3], bodies[5]]
    for body in planner_bodies:  # the tools, as the vendor's format declares them
        names = [t["function"]["name"] if which == "openai" else t["name"] for t in body["tools"]]
        assert names == TOOL_NAMES
    assert "tools" not in bodies[1] and "tools" not in bodies[6]  # workers and the synthesis get none
    second = json.dumps(bodies[3]["messages"])
    # The malformed call came back as an error result the model can correct; the others as done.
    assert "add_node: the arguments are not valid JSON" in second
    assert "Tides follow the moon." in second and "A long report about tides." in second
    if which == "openai":
        results = [m for m in bodies[3]["messages"] if m["role"] == "tool"]
        assert [m["tool_call_id"] for m in results] == ["call_a", "call_bad", "call_b"]
        [assistant] = [m for m in bodies[3]["messages"] if m["role"] == "assistant"]
        assert [c["function"]["arguments"] for c in assistant["tool_calls"]][1] == '{"node_id": "broken",'
    else:
        blocks = [b for m in bodies[3]["messages"] if isinstance(m["content"], list) for b in m["content"]]
        results = [b for b in blocks if b["type"] == "tool_result"]
        assert [(b["tool_use_id"], b.get("is_error", False)) for b in results] == [
            ("call_a", False),
            ("call_bad", True),
            ("call_b", False),
        ]
    bills = [e for e in await store.events("tides") if e.event_type is EventType.COST_UPDATE]
    assert [b.agent_id for b in bills] == [
        "planner",
        "facts",
        "report",
        "planner",
        "report.short",
        "planner",
        "synthesizer",
    ]
    assert bills[0].data["usage"]["input_tokens"] == 1500  # the vendor's count, not an estimate
    assert bills[0].data["tool_calls"][1]["arguments"] == '{"node_id": "broken",'
