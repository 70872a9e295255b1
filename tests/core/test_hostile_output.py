"""Hostile model output through whole runs (issue 9 item 8).

- An answer with a lone surrogate (``"\\ud800"``, from a vendor's JSON escape or a user's
  provider) completes the run: synthesis, Markdown and PDF reports, ``--json`` output.
- Usage numbers that cannot be right (negative, NaN, infinite) are estimated offline,
  reported in a warning event and the log, and never make a cost negative.
- A stream that fails after content arrived is billed (an estimate of) what arrived.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestration import (
    AgentResult,
    BaseOrchestrator,
    Completion,
    CompletionChunk,
    CompletionRequest,
    DreamCascadeOrchestrator,
    EventType,
    OrchestratorConfig,
    Provider,
    SubTask,
    TaskStatus,
    Usage,
)
from orchestration.pricing import DEFAULT_PRICES
from orchestration.tokens import count_message_tokens, count_tokens
from providers.openai import OpenAIProvider
from tests.core.cli_fixture import TwoStep
from tests.providers.fakevendor import FakeVendor, Reply

from .helpers import Recorder

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "The finding \ud800 holds."
REPAIRED = "The finding \ufffd holds."
MODEL = "gpt-4o-mini"


@pytest.fixture
def vendor() -> Iterator[FakeVendor]:
    with FakeVendor() as server:
        yield server


def _writable(value: Any) -> None:
    """What the CLI, the reports, the stores and the SSE stream do with a run's data."""
    json.dumps(value, ensure_ascii=False).encode("utf-8")


class SurrogateAnswers:
    """A user's provider (the seed README's sync shape) whose answers hold a lone surrogate."""

    def complete(self, messages: list[dict[str, Any]], **kwargs: Any) -> str:
        return HOSTILE


async def test_a_run_whose_answers_hold_lone_surrogates_completes_with_its_reports(tmp_path: Path) -> None:
    config = OrchestratorConfig(
        primary_model=MODEL,
        generate_documents=True,
        document_formats=["markdown", "pdf"],
        output_directory=str(tmp_path),
    )
    result = await DreamCascadeOrchestrator(config, SurrogateAnswers()).execute_workflow("Research tides")
    assert result.status is TaskStatus.COMPLETED, result.error
    assert result.final_synthesis is not None and "\ufffd" in result.final_synthesis
    assert all(r.content == REPAIRED for r in result.agent_results if r.content)
    _writable(result.to_dict())
    formats = {document.format: Path(document.path) for document in result.generated_documents}
    assert set(formats) == {"markdown", "pdf"}
    assert REPAIRED in formats["markdown"].read_text(encoding="utf-8")
    assert formats["pdf"].stat().st_size > 0


class DirectCalls(BaseOrchestrator):
    """The seed README's custom orchestrator: calls ``self.provider.complete`` itself."""

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [SubTask(id="only", description=task)]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        answer: str = self.provider.complete([{"role": "user", "content": subtask.description}])
        return answer

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return " ".join(r.content for r in agent_results)


async def test_a_direct_provider_call_gets_its_string_answer_repaired() -> None:
    result = await DirectCalls(OrchestratorConfig(primary_model=MODEL), SurrogateAnswers()).execute_workflow(
        "t"
    )
    assert result.status is TaskStatus.COMPLETED, result.error
    assert result.final_synthesis == REPAIRED
    _writable(result.to_dict())


def test_the_cli_prints_valid_json_for_a_vendor_answering_lone_surrogates(
    vendor: FakeVendor, tmp_path: Path
) -> None:
    vendor.default = Reply.ok(HOSTILE)
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    environment.update(
        PYTHONPATH=str(ROOT), OPENAI_BASE_URL=f"{vendor.url}/v1", ORCHESTRATION_DATABASE_URL="memory:"
    )
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "run", "cascade", "Research tides", "--provider",
         f"openai:{MODEL}", "--json", "-q", "--report", "md,pdf", "--output-dir", str(tmp_path)],
        cwd=ROOT, env=environment, capture_output=True, timeout=120,
    )  # fmt: skip
    stderr = done.stderr.decode("utf-8")
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr
    result = json.loads(done.stdout.decode("utf-8"))  # bytes that are UTF-8, and JSON
    assert result["status"] == "completed"
    assert REPAIRED in json.dumps(result, ensure_ascii=False)
    assert {Path(d["path"]).suffix for d in result["generated_documents"]} == {".md", ".pdf"}


IMPOSSIBLE = [
    pytest.param(-1_000_000, 40, id="negative"),
    pytest.param(math.nan, 40, id="nan"),
    pytest.param(30, math.inf, id="infinite"),
]


@pytest.mark.parametrize(("prompt", "output"), IMPOSSIBLE)
async def test_impossible_usage_from_a_vendor_is_estimated_and_reported(
    vendor: FakeVendor, prompt: float, output: float, caplog: pytest.LogCaptureFixture
) -> None:
    vendor.default = Reply.ok("A short and ordinary answer.", prompt_tokens=prompt, completion_tokens=output)
    events = Recorder()
    provider = OpenAIProvider(MODEL, base_url=f"{vendor.url}/v1")
    with caplog.at_level(logging.WARNING, logger="orchestration"):
        async with provider:
            result = await TwoStep(OrchestratorConfig(primary_model=MODEL), provider).execute_workflow(
                "a task", stream_callback=events
            )
    assert result.status is TaskStatus.COMPLETED, result.error
    assert result.total_cost > 0 and all(u.cost_usd > 0 for u in result.cost_by_agent.values())
    assert result.usage.estimated and result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    warnings = [
        e.data["message"] for e in events.of(EventType.WARNING) if "cannot be right" in e.data["message"]
    ]
    assert len(warnings) == 1  # once per run, not once per call
    assert f"openai reported usage for {MODEL}" in warnings[0]
    assert any("cannot be right" in record.getMessage() for record in caplog.records)


class HandMadeUsage(Provider):
    """A native provider that builds its own (impossible) :class:`Usage`."""

    name = "handmade"

    async def complete(self, request: CompletionRequest) -> Completion:
        usage = Usage(input_tokens=-500, output_tokens=7, cost_usd=-0.665, calls=1)
        return Completion("an answer", usage=usage, model=request.model)


async def test_a_providers_own_impossible_usage_is_repaired_where_it_is_billed() -> None:
    events = Recorder()
    result = await TwoStep(OrchestratorConfig(primary_model=MODEL), HandMadeUsage()).execute_workflow(
        "a task", stream_callback=events
    )
    assert result.status is TaskStatus.COMPLETED, result.error
    assert result.total_cost > 0
    for event in events.of(EventType.COST_UPDATE):
        usage = event.data["usage"]
        assert usage["input_tokens"] > 0 and usage["output_tokens"] == 7 and usage["estimated"]
    [warning] = [e for e in events.of(EventType.WARNING) if "cannot be right" in e.data["message"]]
    assert "input_tokens=-500" in warning.data["message"] and "cost_usd=-0.665" in warning.data["message"]


class StreamingOne(BaseOrchestrator):
    """One subtask that streams its answer; the synthesis makes no call."""

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [SubTask(id="only", description=task)]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> str:
        return (await self.call_llm(subtask.description, stream=True)).content

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return "done"


CUT = [
    pytest.param(Reply.drop(after=3), id="connection-dropped"),
    pytest.param(Reply.stream_error(after=3), id="error-event"),
]


@pytest.mark.parametrize("reply", CUT)
async def test_a_stream_that_fails_after_content_bills_the_partial_output(
    vendor: FakeVendor, reply: Reply
) -> None:
    vendor.script(replace(reply, content="one two three four five six"))
    events = Recorder()
    config = OrchestratorConfig(primary_model=MODEL, max_retries=0, max_total_cost=1.0, max_tokens=100)
    async with OpenAIProvider(MODEL, base_url=f"{vendor.url}/v1") as provider:
        result = await StreamingOne(config, provider).execute_workflow("task", stream_callback=events)
    assert result.status is not TaskStatus.COMPLETED  # the subtask failed
    [cost] = events.of(EventType.COST_UPDATE)
    received = "one two three "
    messages = [{"role": "user", "content": "task"}]
    expected = Usage(
        input_tokens=count_message_tokens(messages, MODEL).tokens,
        output_tokens=count_tokens(received, MODEL).tokens,
    )
    usage = cost.data["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (expected.input_tokens, expected.output_tokens)
    assert (
        usage["estimated"]
        and cost.data["finish_reason"] == "interrupted"
        and cost.data["response"] == received
    )
    assert cost.data["reservation"] == events.of(EventType.CALL_RESERVED)[0].seq  # settled, not released
    assert events.of(EventType.CALL_RELEASED) == []
    assert result.total_cost == pytest.approx(DEFAULT_PRICES[MODEL].cost(expected)) and result.total_cost > 0
    assert len(vendor.requests) == 1  # delivered content is never retried


class HangsAfterTwoChunks(Provider):
    """A native streaming provider that sends two chunks, then never another."""

    name = "hangs"

    async def complete(self, request: CompletionRequest) -> Completion:
        raise AssertionError("the run streams")

    async def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        yield CompletionChunk(delta="partial ")
        yield CompletionChunk(delta="answer")
        await asyncio.Event().wait()  # until the subtask's timeout cancels it


async def test_a_stream_cut_by_a_timeout_after_content_bills_the_partial_output() -> None:
    events = Recorder()
    config = OrchestratorConfig(primary_model=MODEL, max_retries=0, timeout_seconds=0.5, max_total_cost=1.0)
    result = await StreamingOne(config, HangsAfterTwoChunks()).execute_workflow(
        "task", stream_callback=events
    )
    assert result.status is not TaskStatus.COMPLETED
    [cost] = events.of(EventType.COST_UPDATE)
    assert cost.data["response"] == "partial answer" and cost.data["usage"]["estimated"]
    assert cost.data["usage"]["output_tokens"] == count_tokens("partial answer", MODEL).tokens
    assert result.total_cost > 0 and events.of(EventType.CALL_RELEASED) == []
