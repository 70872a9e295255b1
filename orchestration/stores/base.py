"""The ``RunStore`` protocol every store implements, and the run summary projection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any, Protocol, runtime_checkable

from ..errors import LeaseLostError, SequenceConflictError
from ..events import TERMINAL_EVENTS, EventType, StreamEvent, status_after
from ..models import TaskStatus

__all__ = ["INBOX_SUFFIX", "RunStore", "RunSummary", "check_batch", "check_fence"]

#: The run id suffix of a graph run's answer inbox (``<run_id>~answers``, engine/answers.py):
#: a side log in the same store, which run listings leave out.
INBOX_SUFFIX = "~answers"

_SEQ = attrgetter("seq")
_RUN_ID = attrgetter("run_id")


def check_batch(run_id: str, last_seq: int, events: Sequence[StreamEvent]) -> None:
    """Raise unless ``events`` continue ``run_id``'s log (last stored seq ``last_seq``) gaplessly."""
    seqs = list(map(_SEQ, events))
    if seqs == list(range(last_seq + 1, last_seq + 1 + len(seqs))) and all(
        map(run_id.__eq__, map(_RUN_ID, events))
    ):
        return  # checked in C; the loop below says what is wrong
    expected = last_seq + 1
    for event in events:
        if event.run_id != run_id or event.seq != expected:
            raise SequenceConflictError(
                f"run {run_id}: expected event seq {expected}, got {event.seq} "
                "(another writer is appending to this run)"
            )
        expected += 1


def check_fence(run_id: str, holder: str | None, fence: str) -> None:
    """Raise LeaseLostError unless ``fence`` (a write's lease owner) is the lease's holder."""
    if holder != fence:
        raise LeaseLostError(
            f"run {run_id}: this process no longer holds the run's lease "
            f"({'another process took it over' if holder else 'it was released'}); the write was refused"
        )


#: Event kinds :meth:`RunSummary.apply` changes nothing for but ``updated_at`` and
#: ``last_seq``: not a start, cost or terminal event, and no status change (keep in step
#: with ``apply``).
_STAMP_ONLY = frozenset(
    kind
    for kind in EventType
    if kind not in (EventType.WORKFLOW_START, EventType.COST_UPDATE)
    and kind not in TERMINAL_EVENTS
    and status_after(kind, {}) is None
)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One row of a run listing, derived from the run's events (never written separately)."""

    run_id: str
    status: TaskStatus = TaskStatus.PENDING
    title: str = ""
    task: str = ""
    orchestrator: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    total_cost: float = 0.0
    last_seq: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, event: StreamEvent) -> RunSummary:
        """The summary after ``event``.  Its status follows :func:`~orchestration.events.status_after`,
        the rule the engine's run state follows too, so a listing says what the run says
        (``in_progress`` again once a paused or crashed run is resumed)."""
        kind = event.event_type
        data = event.data
        changes: dict[str, Any] = {"updated_at": event.timestamp, "last_seq": event.seq}
        if kind is EventType.WORKFLOW_START:
            changes.update(
                title=str(data.get("title", "")),
                task=str(data.get("task", "")),
                orchestrator=str(data.get("orchestrator", "")),
                created_at=event.timestamp,
            )
            replay_of = data.get("replay_of")
            if isinstance(replay_of, Mapping) and replay_of.get("run_id"):
                changes["metadata"] = {**self.metadata, "replay_of": str(replay_of["run_id"])}
        elif kind is EventType.COST_UPDATE:
            changes["total_cost"] = float(data.get("total_cost", self.total_cost))
            if data.get("provider") == "recording":  # served from a recording: counted, not spent
                recorded = float(self.metadata.get("recorded_cost", 0.0)) + float(data.get("cost", 0.0))
                changes["metadata"] = {**self.metadata, "recorded_cost": recorded}
        elif event.is_terminal and "total_cost" in data:
            changes["total_cost"] = float(data["total_cost"])
        status = status_after(kind, data)
        if status is not None:
            changes["status"] = TaskStatus(status)
        return replace(self, **changes)

    def fold(self, events: Sequence[StreamEvent]) -> RunSummary:
        """The summary after ``events``: :meth:`apply` for each, in order.

        Most events (a node started, a graph node completed...) only move ``updated_at``
        and ``last_seq``; those are skipped and the last event's stamp is applied once, so
        a store's append does not build a summary per event.
        """
        summary = self
        for event in events:
            if event.event_type not in _STAMP_ONLY:
                summary = summary.apply(event)
        if events and events[-1].event_type in _STAMP_ONLY:
            last = events[-1]
            summary = replace(summary, updated_at=last.timestamp, last_seq=last.seq)
        return summary

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "status": str(self.status),
            "title": self.title,
            "task": self.task,
            "orchestrator": self.orchestrator,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "total_cost": self.total_cost,
            "last_seq": self.last_seq,
        }


@runtime_checkable
class RunStore(Protocol):
    """Append-only event storage for runs, plus the little coordination durable runs need.

    ``append`` must reject a ``seq`` that is not exactly one more than the run's last (so
    two writers can never interleave one run's history) and must be durable when it
    returns.  Leases make sure only one process drives a run at a time; the cancel flag
    lets any process stop a run another process is driving.
    """

    async def append(self, run_id: str, events: Sequence[StreamEvent], *, fence: str | None = None) -> None:
        """Append ``events`` (in seq order) to ``run_id``'s log.

        ``fence``: the lease owner the write belongs to.  Checked in the same transaction
        as the write: unless that owner still holds the run's lease, nothing is written and
        :class:`~orchestration.errors.LeaseLostError` is raised (a driver that stalled past
        its lease and was taken over can never write into the run again).
        """
        ...

    async def events(self, run_id: str, after_seq: int = 0) -> list[StreamEvent]:
        """The run's events with ``seq > after_seq``, in order."""
        ...

    async def get_run(self, run_id: str) -> RunSummary | None:
        """The run's summary, or None if there is no such run."""
        ...

    async def list_runs(self, *, status: TaskStatus | None = None, limit: int = 100) -> list[RunSummary]:
        """Runs, newest first, optionally only those with ``status``."""
        ...

    async def delete_run(self, run_id: str) -> bool:
        """Delete a run and its events; True if it existed."""
        ...

    async def save_snapshot(self, run_id: str, seq: int, state: Mapping[str, Any]) -> None:
        """Store a JSON-ready snapshot of the run's folded state as of ``seq``."""
        ...

    async def load_snapshot(self, run_id: str) -> tuple[int, dict[str, Any]] | None:
        """The latest snapshot ``(seq, state)``, or None."""
        ...

    async def acquire_lease(self, run_id: str, owner: str, ttl_seconds: float) -> bool:
        """Take (or renew, if ``owner`` already holds it) the right to drive ``run_id``.

        False when another owner holds an unexpired lease.
        """
        ...

    async def renew_lease(self, run_id: str, owner: str, ttl_seconds: float) -> bool:
        """Move on the expiry of the lease ``owner`` holds on ``run_id``; never takes one.

        False when the lease was released or went to another owner (a driver watching its
        lease stops then, instead of taking the run back from whoever moved it on).
        """
        ...

    async def release_lease(self, run_id: str, owner: str) -> None:
        """Give the lease up (no-op if ``owner`` does not hold it)."""
        ...

    async def lease_holder(self, run_id: str) -> str | None:
        """Who holds an unexpired lease on ``run_id`` (None: nobody)."""
        ...

    async def take_over_lease(self, run_id: str, holder: str, owner: str, ttl_seconds: float) -> bool:
        """Give ``holder``'s lease to ``owner``, atomically, only if ``holder`` still has it
        (used when ``holder`` is known to be dead); True on success."""
        ...

    async def request_cancel(self, run_id: str) -> bool:
        """Flag the run for cancellation; True if the run exists."""
        ...

    async def cancel_requested(self, run_id: str) -> bool:
        """True once :meth:`request_cancel` was called for the run."""
        ...

    async def clear_cancel(self, run_id: str) -> None:
        """Withdraw a cancellation request (``resume`` does, as an explicit user decision)."""
        ...

    async def prune(self, *, older_than_days: float | None = None, keep_last: int | None = None) -> int:
        """Delete finished runs older than N days and/or beyond the newest N; returns how many."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
