"""An in-process store: fast, and gone when the process exits."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import OrchestrationError
from ..events import StreamEvent
from ..models import TaskStatus
from .base import RunSummary

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps every run's events in lists.  Implements :class:`~orchestration.stores.RunStore`."""

    def __init__(self) -> None:
        self._events: dict[str, list[StreamEvent]] = {}
        self._summaries: dict[str, RunSummary] = {}

    async def append(self, run_id: str, events: Sequence[StreamEvent]) -> None:
        """Append events, checking that ``seq`` continues the run's log without gaps."""
        log = self._events.setdefault(run_id, [])
        expected = log[-1].seq + 1 if log else 1
        for event in events:
            if event.run_id != run_id or event.seq != expected:
                raise OrchestrationError(
                    f"run {run_id}: expected event seq {expected}, got {event.seq} "
                    "(another writer is appending to this run)"
                )
            expected += 1
        log.extend(events)

    async def events(self, run_id: str, after_seq: int = 0) -> list[StreamEvent]:
        """Events after ``after_seq`` (seq n sits at index n-1)."""
        return list(self._events.get(run_id, ())[max(0, after_seq) :])

    def _summary(self, run_id: str) -> RunSummary | None:
        """The run's summary, folded forward from where it was last computed."""
        log = self._events.get(run_id)
        if log is None:
            return None
        summary = self._summaries.get(run_id) or RunSummary(run_id=run_id)
        for event in log[summary.last_seq :]:
            summary = summary.apply(event)
        self._summaries[run_id] = summary
        return summary

    async def get_run(self, run_id: str) -> RunSummary | None:
        """The run's summary."""
        return self._summary(run_id)

    async def list_runs(self, *, status: TaskStatus | None = None, limit: int = 100) -> list[RunSummary]:
        """Newest first."""
        summaries = [self._summary(run_id) for run_id in self._events]
        runs = sorted((s for s in summaries if s is not None), key=lambda s: s.created_at, reverse=True)
        if status is not None:
            runs = [r for r in runs if r.status is status]
        return runs[:limit]

    async def delete_run(self, run_id: str) -> bool:
        """Forget a run."""
        self._summaries.pop(run_id, None)
        return self._events.pop(run_id, None) is not None
