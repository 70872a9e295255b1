"""A deterministic, offline provider for tests, examples and the demo.

``ScriptedProvider`` answers from a script: a list of replies (used in order), a mapping
from a substring of the prompt to a reply, a callable ``(request) -> reply``, or by
default an echo that summarises the prompt.  A reply is text, a
:class:`~orchestration.toolcalls.ToolCall` (the model calls a tool), a list of them
(parallel calls), or a whole :class:`~orchestration.llm.Completion` (text and calls
together), so a tool-calling loop or a planner runs offline.  Usage is realistic (tokens
counted with the offline tokenizer, and marked estimated unless the model is OpenAI's,
whose tokenizer that is) and priced like a small hosted model, so cost arithmetic is
visible.  It can wait (``latency``) and fail on chosen calls (``failures``) to exercise
retries, fallbacks and timeouts.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from .completions import output_text
from .errors import ConfigError
from .llm import Completion, CompletionChunk, CompletionRequest, Provider
from .tokens import count_message_tokens_async, count_tokens_async
from .toolcalls import ToolCall
from .usage import Usage

__all__ = ["ScriptedProvider", "demo_provider", "demo_responder"]

#: What one scripted answer is: text, one tool call, parallel tool calls, or a whole answer.
Answer = str | ToolCall | Sequence[ToolCall] | Completion
Reply = Answer | Callable[[CompletionRequest], Answer]


class ScriptedProvider(Provider):
    """An offline provider whose answers and failures are scripted.

    Args:
        replies: a sequence of replies used in call order (``IndexError``-free: when it
            runs out the echo reply is used), a mapping ``{substring: reply}`` matched
            against the last user message (first match wins), or a callable.  Each reply
            is a string, a ``ToolCall``, a list of ``ToolCall`` (parallel calls), a
            ``Completion`` (its usage is counted when it has none), or a callable of
            the request returning one of those.  Calls without an id get
            ``call_<call number>_<index>``.
        model: the model id reported when the request names none.
        latency: seconds each call waits (``asyncio.sleep``), or a callable of the request.
        failures: per call, in order, an exception to raise or None to answer normally;
            or a callable ``(call_number, request) -> BaseException | None``.
        count_tokens: count usage with the tokenizer (True) or by words (False, faster).
    """

    name = "scripted"

    def __init__(
        self,
        replies: Sequence[Reply] | Mapping[str, Reply] | Reply | None = None,
        *,
        model: str = "scripted",
        latency: float | Callable[[CompletionRequest], float] = 0.0,
        failures: Iterable[BaseException | None]
        | Callable[[int, CompletionRequest], BaseException | None]
        | None = None,
        count_tokens: bool = True,
    ) -> None:
        self._replies = replies
        self.model = model
        self._latency = latency
        self._failures: Callable[[int, CompletionRequest], BaseException | None] | None
        if failures is None or callable(failures):
            self._failures = failures
        else:
            queue = list(failures)
            self._failures = lambda n, _r: queue[n - 1] if n <= len(queue) else None
        self._count_tokens = count_tokens
        #: Every request, with its messages as they were when it was made.
        self.calls: list[CompletionRequest] = []

    @property
    def call_count(self) -> int:
        """How many calls were made (including failed ones)."""
        return len(self.calls)

    def _reply(self, request: CompletionRequest, number: int) -> Answer:
        replies = self._replies
        if replies is None:
            return _echo(request)
        if isinstance(replies, (str, ToolCall, Completion)):
            return replies
        if callable(replies):
            return replies(request)
        if isinstance(replies, Mapping):
            prompt = request.prompt_text
            for needle, reply in replies.items():
                if needle in prompt:
                    return reply(request) if callable(reply) else reply
            return _echo(request)
        if number <= len(replies):
            reply = replies[number - 1]
            return reply(request) if callable(reply) else reply
        return _echo(request)

    async def _usage(self, request: CompletionRequest, content: str) -> Usage:
        """Offline counts: exact only for a model the tokenizer is exact for (OpenAI's).

        Counted off the event loop when that is slow (the tokenizer's first use in the
        process takes a quarter of a second), as a real provider's network wait would be."""
        messages = request.counted_messages
        if self._count_tokens:
            prompt = await count_message_tokens_async(messages, request.model)
            output = await count_tokens_async(content, request.model)
            exact = prompt.exact and output.exact
            return Usage(
                input_tokens=prompt.tokens, output_tokens=output.tokens, calls=1, estimated=not exact
            )
        prompt_words = sum(len(str(m.get("content", "")).split()) + 4 for m in messages)
        return Usage(input_tokens=prompt_words, output_tokens=len(content.split()), calls=1, estimated=True)

    async def complete(self, request: CompletionRequest) -> Completion:
        """Answer from the script (after the configured latency and failures)."""
        # A snapshot: a tool loop appends to the list it passed, after the call.
        self.calls.append(
            request
            if isinstance(request.messages, tuple)
            else replace(request, messages=tuple(request.messages))
        )
        number = len(self.calls)
        latency = self._latency(request) if callable(self._latency) else self._latency
        if latency:
            await asyncio.sleep(latency)
        if self._failures is not None:
            failure = self._failures(number, request)
            if failure is not None:
                raise failure
        answer = self._reply(request, number)
        if isinstance(answer, Completion):
            return await self._scripted_completion(request, number, answer)
        content, calls = _split(answer)
        if request.max_tokens is not None:
            content = _truncate_words(content, request.max_tokens)
        calls = _with_ids(calls, number)
        return Completion(
            content=content,
            usage=await self._usage(request, output_text(content, calls)),
            model=request.model or self.model,
            finish_reason="tool_calls" if calls else "stop",
            provider=self.name,
            tool_calls=calls,
        )

    async def _scripted_completion(
        self, request: CompletionRequest, number: int, answer: Completion
    ) -> Completion:
        calls = _with_ids(answer.tool_calls, number)
        usage = answer.usage
        if usage.calls == 0 and usage.total_tokens == 0:
            usage = await self._usage(request, output_text(answer.content, calls))
        return Completion(
            content=answer.content,
            usage=usage,
            model=answer.model or request.model or self.model,
            finish_reason=answer.finish_reason or ("tool_calls" if calls else "stop"),
            request_id=answer.request_id,
            provider=answer.provider or self.name,
            rejected_usage=answer.rejected_usage,
            tool_calls=calls,
            parsed=answer.parsed,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        """Stream the scripted answer word by word; the last chunk carries usage (and the
        tool calls)."""
        completion = await self.complete(request)
        words = re.split(r"(\s+)", completion.content)
        for word in words:
            if word:
                yield CompletionChunk(delta=word, model=completion.model)
        yield CompletionChunk(
            usage=completion.usage,
            finish_reason=completion.finish_reason,
            model=completion.model,
            tool_calls=completion.tool_calls,
        )


def _split(answer: Answer) -> tuple[str, tuple[ToolCall, ...]]:
    """A scripted answer's text and tool calls."""
    if isinstance(answer, str):
        return answer, ()
    if isinstance(answer, ToolCall):
        return "", (answer,)
    if isinstance(answer, Sequence) and all(isinstance(call, ToolCall) for call in answer):
        return "", tuple(answer)  # type: ignore[arg-type]
    raise ConfigError(
        f"a scripted reply must be a str, a ToolCall, a list of ToolCall or a Completion, "
        f"not {type(answer).__name__}"
    )


def _with_ids(calls: Sequence[ToolCall], number: int) -> tuple[ToolCall, ...]:
    """``calls`` with an id each (deterministic: the call number and the position)."""
    return tuple(
        call if call.id else call.with_id(f"call_{number}_{index}") for index, call in enumerate(calls)
    )


def _truncate_words(text: str, limit: int) -> str:
    words = text.split(" ")
    return text if len(words) <= limit else " ".join(words[:limit])


def _echo(request: CompletionRequest) -> str:
    prompt = " ".join(request.prompt_text.split())
    if len(prompt) > 160:
        prompt = prompt[:157] + "..."
    return f"Response to: {prompt}"


def demo_responder(request: CompletionRequest) -> Answer:
    """Plausible offline answers for the demo: JSON plans for decomposition prompts,
    short findings for research prompts, a summary for synthesis prompts, and for a
    planner offered graph tools, a first turn that adds three nodes, then ``finish``."""
    if any(tool.name == "add_node" for tool in request.tools):
        return _demo_plan(request)
    prompt = request.prompt_text
    lowered = prompt.lower()
    if "json" in lowered and ("subtask" in lowered or "decompose" in lowered):
        match = re.search(r"(\d+)\s+subtasks", lowered)
        count = int(match.group(1)) if match else 3
        topic = _topic(prompt)
        angles = [
            "background and definitions",
            "current state of the art",
            "open problems",
            "practical applications",
            "risks and limitations",
            "future directions",
        ]
        plan = [
            {"id": f"subtask_{i + 1}", "description": f"Investigate {angles[i % len(angles)]} of {topic}"}
            for i in range(count)
        ]
        return json.dumps({"subtasks": plan})
    if "score" in lowered and "0" in lowered and "1" in lowered and "rate" in lowered:
        return '{"score": 0.95, "feedback": "Clear and complete."}'
    if "synthes" in lowered or "combine" in lowered or "summar" in lowered:
        return (
            "## Summary\n\nThe findings agree on the main points: the topic is well defined, "
            "it has working applications today, and its main open problems are cost and scale."
        )
    return (
        f"Findings on {_topic(prompt)}: three key points were identified, with sources and "
        "caveats noted for each."
    )


def _demo_plan(request: CompletionRequest) -> Answer:
    """A planner's turn: two parallel nodes and a review of both, then ``finish``."""
    if any(m.get("role") == "assistant" for m in request.messages):
        return ToolCall("finish", {"reason": "the review covers the task"})
    topic = next((_topic(str(m.get("content", ""))) for m in request.messages if m.get("role") == "user"), "")
    return [
        ToolCall(
            "add_node", {"node_id": "background", "description": f"Background and definitions of {topic}"}
        ),
        ToolCall(
            "add_node", {"node_id": "applications", "description": f"Practical applications of {topic}"}
        ),
        ToolCall(
            "add_node",
            {
                "node_id": "review",
                "description": f"Review the findings on {topic}: what holds, what is missing",
                "dependencies": ["background", "applications"],
            },
        ),
    ]


def _topic(prompt: str) -> str:
    for line in prompt.splitlines():
        if line.lower().startswith(("task:", "subtask:")):
            return line.split(":", 1)[1].strip()[:120]
    text = " ".join(prompt.split())
    return text[:120] if text else "the task"


def demo_provider(model: str | None = None) -> ScriptedProvider:
    """The offline provider the demo and ``--provider scripted`` use."""
    return ScriptedProvider(demo_responder, model=model or "scripted")
