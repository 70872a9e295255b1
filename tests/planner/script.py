"""A scripted planner for the tests: planner turns by number, workers and synthesis by prompt."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from orchestration import CompletionRequest, ScriptedProvider, ToolCall

Turn = Sequence[ToolCall] | ToolCall | str | Callable[[CompletionRequest], Any]
_PART = re.compile(r"Your part \(([^)]+)\)")


def turn_of(request: CompletionRequest) -> int:
    """Which planner turn a request is (1 for the first)."""
    return 1 + sum(1 for m in request.messages if m.get("role") == "assistant")


def node_of(request: CompletionRequest) -> str | None:
    """The node a worker request is for (None for other requests)."""
    found = _PART.search(request.prompt_text)
    return found.group(1) if found else None


def tool_results(request: CompletionRequest) -> list[dict[str, Any]]:
    """The tool results the planner was sent, decoded, in order."""
    return [json.loads(m["content"]) for m in request.messages if m.get("role") == "tool"]


class PlannerScript:
    """Answers the planner with ``turns`` (then ``finish``), each worker with
    ``result of <node>`` (or ``workers[node]``), and the synthesis with ``ANSWER: ...``
    listing the node results it was given."""

    def __init__(self, turns: Sequence[Turn], workers: dict[str, Any] | None = None) -> None:
        self.turns = list(turns)
        self.workers = dict(workers or {})
        self.provider = ScriptedProvider(self.reply)

    def reply(self, request: CompletionRequest) -> Any:
        if request.tools:
            number = turn_of(request)
            if number > len(self.turns):
                return ToolCall("finish", {"reason": "script ended"})
            turn = self.turns[number - 1]
            return turn(request) if callable(turn) else turn
        node = node_of(request)
        if node is not None:
            answer = self.workers.get(node, f"result of {node}")
            return answer(request) if callable(answer) else answer
        if "Combine the team's results" in request.prompt_text:
            found = re.findall(r"^## ([^\s:]+)", request.prompt_text, re.M)
            return "ANSWER from " + ", ".join(found)
        return "unexpected request"

    @property
    def planner_requests(self) -> list[CompletionRequest]:
        return [c for c in self.provider.calls if c.tools]

    def worker_requests(self, node: str) -> list[CompletionRequest]:
        return [c for c in self.provider.calls if not c.tools and node_of(c) == node]
