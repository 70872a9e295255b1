"""Token counting never blocks the event loop: building the tokenizer and counting a huge
prompt run in a thread while other tasks keep being scheduled; the tokenizer is built
once per process however many threads need it at the same time."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from orchestration import OrchestratorConfig, ScriptedProvider, SubTask, TaskStatus, tokens

from .helpers import GraphOrchestrator

HUGE = 200_000  # characters: counting it takes a while


class HeldOpen:
    """Holds the tokenizer's slow part (building, or encoding a huge text) open until a
    heartbeat task on the event loop has ticked; records whether it did while held."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.release = threading.Event()
        self.released_while_held: list[bool] = []

    def hold(self) -> None:
        self.inside.set()
        self.released_while_held.append(self.release.wait(5))  # bounded: a blocked loop fails, not hangs


class SlowEncoding:
    """A real encoding whose ``encode`` of a huge text is held open."""

    def __init__(self, real: Any, held: HeldOpen) -> None:
        self.real = real
        self.held = held

    def encode(self, text: str, **kwargs: Any) -> list[int]:
        if len(text) >= HUGE and not self.held.inside.is_set():
            self.held.hold()
        return self.real.encode(text, **kwargs)  # type: ignore[no-any-return]


async def heartbeat(held: HeldOpen) -> int:
    """Ticks on the loop while the tokenizer works in its thread, then lets it go on."""
    ticks = 0
    while not held.inside.is_set():  # not yet inside: let the run get there
        await asyncio.to_thread(held.inside.wait, 0.5)
        ticks += 1
    ticks += 1  # scheduled again while the tokenizer is held open
    held.release.set()
    return ticks


@pytest.mark.parametrize("slow_part", ["building the tokenizer", "counting a huge prompt"])
async def test_a_run_with_a_budget_keeps_the_event_loop_free_while_counting(
    slow_part: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldOpen()
    real = tokens._encoding
    if slow_part == "building the tokenizer":
        monkeypatch.setattr(tokens, "_ENCODINGS", {}, raising=False)  # as in a fresh process

        def slow_build(name: str) -> Any:
            if not held.inside.is_set():
                held.hold()
            return real(name)

        monkeypatch.setattr(tokens, "_encoding", slow_build)
        prompt = "Research tides"
    else:
        real("o200k_base")  # built already: only the count is slow
        monkeypatch.setattr(tokens, "_encoding", lambda name: SlowEncoding(real(name), held))
        prompt = "tide " * (HUGE // 5)

    async def ask(orch: Any, subtask: SubTask, context: Any) -> str:
        return (await orch.call_llm(prompt, max_tokens=50)).content

    orch = GraphOrchestrator(
        OrchestratorConfig(max_total_cost=1.0),
        ScriptedProvider(count_tokens=False),
        subtasks=[SubTask(id="s0", description="ask")],
        behaviour={"s0": ask},
        synthesis=lambda *a: "done",
    )
    beats = asyncio.create_task(heartbeat(held))
    result = await asyncio.wait_for(orch.execute_workflow("t"), 60)
    assert await beats >= 1
    assert held.released_while_held == [True], f"{slow_part} blocked the event loop"
    assert result.status is TaskStatus.COMPLETED, result.error


async def test_the_tokenizer_is_built_once_however_many_threads_need_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens, "_ENCODINGS", {})
    real = tokens._load_encoding
    built: list[str] = []

    def counting(name: str) -> Any:
        built.append(name)
        return real(name)

    monkeypatch.setattr(tokens, "_load_encoding", counting)
    messages = [{"role": "user", "content": "tide " * 5000}]
    counts = await asyncio.gather(*(tokens.count_message_tokens_async(messages, "gpt-4o") for _ in range(8)))
    assert built == ["o200k_base"]
    assert len({c.tokens for c in counts}) == 1 and counts[0].exact
