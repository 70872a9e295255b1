"""An in-process store: fast, and gone when the process exits."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..events import StreamEvent
from ..models import TaskStatus
from .base import INBOX_SUFFIX, RunSummary, check_batch, check_fence
from .ledger import MemoryLedger

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps every run's events in lists.  Implements :class:`~orchestration.stores.RunStore`."""

    #: Nothing survives the process, so the engine skips durability waits and leases.
    durable = False

    def __init__(self, *, clock: Any = time.time) -> None:
        self._events: dict[str, list[StreamEvent]] = {}
        self._summaries: dict[str, RunSummary] = {}
        self._snapshots: dict[str, tuple[int, dict[str, Any]]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._cancelled: set[str] = set()
        self._clock = clock
        #: Run and tenant budgets shared by every run using this store (:mod:`.ledger`).
        self.ledger = MemoryLedger(self._leases, clock)

    async def append(self, run_id: str, events: Sequence[StreamEvent], *, fence: str | None = None) -> None:
        """Append events, checking that ``seq`` continues the run's log without gaps (and,
        with ``fence``, that its owner holds the run's lease)."""
        if not events:
            return
        if fence is not None:
            holder = self._leases.get(run_id)
            check_fence(run_id, holder[0] if holder is not None else None, fence)
        log = self._events.get(run_id, [])
        check_batch(run_id, log[-1].seq if log else 0, events)
        self._events.setdefault(run_id, log).extend(events)
        self.ledger.apply(events)  # calls that ended settle with the events saying so

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
        # not the answer inboxes of graph runs (``<run_id>~answers``, engine/answers.py)
        summaries = [self._summary(run_id) for run_id in self._events if not run_id.endswith(INBOX_SUFFIX)]
        runs = sorted((s for s in summaries if s is not None), key=lambda s: s.created_at, reverse=True)
        if status is not None:
            runs = [r for r in runs if r.status is status]
        return runs[:limit]

    async def delete_run(self, run_id: str) -> bool:
        """Forget a run."""
        self._summaries.pop(run_id, None)
        self._snapshots.pop(run_id, None)
        self._leases.pop(run_id, None)
        self._cancelled.discard(run_id)
        return self._events.pop(run_id, None) is not None

    async def save_snapshot(self, run_id: str, seq: int, state: Mapping[str, Any]) -> None:
        """Keep the latest snapshot."""
        self._snapshots[run_id] = (seq, dict(state))

    async def load_snapshot(self, run_id: str) -> tuple[int, dict[str, Any]] | None:
        """The latest snapshot, if any."""
        return self._snapshots.get(run_id)

    async def acquire_lease(self, run_id: str, owner: str, ttl_seconds: float) -> bool:
        """Take or renew the lease unless another owner holds an unexpired one."""
        now = self._clock()
        holder = self._leases.get(run_id)
        if holder is not None and holder[0] != owner and holder[1] > now:
            return False
        self._leases[run_id] = (owner, now + ttl_seconds)
        return True

    async def renew_lease(self, run_id: str, owner: str, ttl_seconds: float) -> bool:
        """Move ``owner``'s lease on, only if ``owner`` still holds it."""
        holder = self._leases.get(run_id)
        if holder is None or holder[0] != owner:
            return False
        self._leases[run_id] = (owner, self._clock() + ttl_seconds)
        return True

    async def release_lease(self, run_id: str, owner: str) -> None:
        """Drop the lease if ``owner`` holds it."""
        holder = self._leases.get(run_id)
        if holder is not None and holder[0] == owner:
            del self._leases[run_id]

    async def lease_holder(self, run_id: str) -> str | None:
        """Who holds an unexpired lease on ``run_id``."""
        holder = self._leases.get(run_id)
        return holder[0] if holder is not None and holder[1] > self._clock() else None

    async def take_over_lease(self, run_id: str, holder: str, owner: str, ttl_seconds: float) -> bool:
        """Give ``holder``'s lease to ``owner`` if ``holder`` still has it."""
        current = self._leases.get(run_id)
        if current is None or current[0] != holder:
            return False
        self._leases[run_id] = (owner, self._clock() + ttl_seconds)
        return True

    async def request_cancel(self, run_id: str) -> bool:
        """Flag the run for cancellation."""
        if run_id not in self._events:
            return False
        self._cancelled.add(run_id)
        return True

    async def cancel_requested(self, run_id: str) -> bool:
        """True once cancellation was requested."""
        return run_id in self._cancelled

    async def clear_cancel(self, run_id: str) -> None:
        """Withdraw a cancellation request."""
        self._cancelled.discard(run_id)

    async def prune(self, *, older_than_days: float | None = None, keep_last: int | None = None) -> int:
        """Delete finished runs by age and/or beyond the newest ``keep_last``."""
        finished = [s for s in await self.list_runs(limit=10**9) if s.status.is_terminal]
        doomed: set[str] = set()
        if older_than_days is not None:
            cutoff = self._clock() - older_than_days * 86400
            doomed.update(s.run_id for s in finished if s.updated_at < cutoff)
        if keep_last is not None:
            doomed.update(s.run_id for s in finished[keep_last:])
        for run_id in doomed:
            await self.delete_run(run_id)
        return len(doomed)

    async def vacuum(self) -> None:
        """Nothing to reclaim."""

    async def close(self) -> None:
        """Nothing to release."""
