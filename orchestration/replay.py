"""Recorded model calls: serve a run's calls again from its event log.

Every model call's ``cost_update`` event carries a hash of the request (the
:meth:`~orchestration.llm.CompletionRequest.fingerprint`) and the response.  A
:class:`Recording` built from a run's events answers the same requests again with
zero provider calls: resume uses it so calls that were paid for before a crash are not
paid twice; :class:`RecordedProvider` uses it to replay or fork a run.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable

from .errors import OrchestrationError
from .events import EventType, StreamEvent
from .llm import Completion, CompletionRequest, Provider, ToolCall
from .usage import Usage

__all__ = ["RecordedProvider", "Recording", "ReplayMismatchError"]


class ReplayMismatchError(OrchestrationError):
    """A request was made that the recording does not contain (the run diverged)."""


class Recording:
    """The responses a run received, by request fingerprint, each usable once, in order."""

    def __init__(self, events: Iterable[StreamEvent] = ()) -> None:
        self._calls: dict[str, deque[Completion]] = defaultdict(deque)
        self.size = 0
        for event in events:
            if event.event_type is not EventType.COST_UPDATE:
                continue
            fingerprint = event.data.get("request_hash")
            response = event.data.get("response")
            if not fingerprint or not isinstance(response, str):
                continue
            self._calls[fingerprint].append(
                Completion(
                    content=response,
                    usage=Usage.from_dict(event.data.get("usage") or {}),
                    model=event.data.get("model"),
                    finish_reason=event.data.get("finish_reason"),
                    provider="recording",
                    tool_calls=tuple(ToolCall.from_dict(c) for c in event.data.get("tool_calls") or ()),
                )
            )
            self.size += 1

    def take(self, fingerprint: str) -> Completion | None:
        """The next unused response to this request, or None."""
        queue = self._calls.get(fingerprint)
        if not queue:
            return None
        return queue.popleft()

    def __len__(self) -> int:
        return sum(len(q) for q in self._calls.values())


class RecordedProvider(Provider):
    """Answers from a :class:`Recording`; unknown requests go to ``live`` or raise.

    ``served`` and ``live_calls`` count where answers came from.
    """

    name = "recording"

    def __init__(self, recording: Recording, *, live: Provider | None = None, run_id: str = "") -> None:
        self.recording = recording
        self.live = live
        self.run_id = run_id
        self.served = 0
        self.live_calls = 0

    async def complete(self, request: CompletionRequest) -> Completion:
        """The recorded answer to ``request``; a diverging request is a clear error."""
        recorded = self.recording.take(request.fingerprint())
        if recorded is not None:
            self.served += 1
            return recorded
        if self.live is not None:
            self.live_calls += 1
            return await self.live.complete(request)
        prompt = " ".join(request.prompt_text.split())[:100]
        raise ReplayMismatchError(
            f"request for model {request.model!r} with prompt {prompt!r} is not in the recording of run "
            f"{self.run_id or '?'} (the run diverged: a prompt, model or option changed); "
            "replay with live=True to send such requests to the provider"
        )
