"""Appending to a run's log from many processes at once: the workflow and every node.

A local run has one writer, which numbers its events.  A Temporal run has several: the
workflow (through the append activity) writes the graph events, and each node's
activity writes its own model-call events while it runs, on whichever worker it landed.
The store refuses an append whose ``seq`` is not the next one, so each writer numbers
its batch after the last stored event and, when another writer got there first, reads
again and renumbers: the log stays one gapless, ordered history.

Every append is fenced by the run's lease owner (the workflow's), so nothing can write
into a run another driver took over.  A lease that lapsed with nobody else taking it
(its renewing activity was between workers) is taken again before the write.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from ...errors import LeaseLostError, SequenceConflictError, StoreError
from ...events import EventType, StreamEvent
from ...stores.base import RunStore

__all__ = ["Appender"]

_ATTEMPTS = 200


class Appender:
    """Numbers and appends batches for the runs one worker process writes to."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._last: dict[str, int] = {}  # the last seq this process stored or saw, per run
        self._fenced = "fence" in inspect.signature(store.append).parameters

    async def append(
        self, run_id: str, events: Sequence[StreamEvent], *, owner: str, lease_seconds: float
    ) -> int:
        """Append ``events`` (their seqs are replaced) after the run's last event; the last seq."""
        if not events:
            return self._last.get(run_id, 0)
        costs = any(e.event_type is EventType.COST_UPDATE for e in events)
        for _ in range(_ATTEMPTS):
            last = self._last.get(run_id)
            total = 0.0
            if last is None or costs:
                summary = await self.store.get_run(run_id)
                last = summary.last_seq if summary is not None else 0
                total = summary.total_cost if summary is not None else 0.0
            batch = self._numbered(events, last, total if costs else None)
            try:
                if self._fenced:
                    await self.store.append(run_id, batch, fence=owner)
                else:
                    await self.store.append(run_id, batch)
            except SequenceConflictError:
                self._last.pop(run_id, None)  # another writer appended: read where the log ends
                continue
            except LeaseLostError:
                holder = await self.store.lease_holder(run_id)
                if holder is None and await self.store.acquire_lease(run_id, owner, lease_seconds):
                    continue  # it lapsed and nobody took it: the run is still this workflow's
                raise
            self._last[run_id] = batch[-1].seq
            return batch[-1].seq
        raise StoreError(f"run {run_id}: could not append after {_ATTEMPTS} tries (too many writers)")

    def forget(self, run_id: str) -> None:
        """Drop what this process remembers of ``run_id`` (it finished)."""
        self._last.pop(run_id, None)

    @staticmethod
    def _numbered(events: Sequence[StreamEvent], last: int, total: float | None) -> list[StreamEvent]:
        batch: list[StreamEvent] = []
        for offset, event in enumerate(events, 1):
            if total is not None and event.event_type is EventType.COST_UPDATE:
                # Nodes on several workers spend at once: each cost event carries the run's
                # running total as stored, not the total its own process has seen.
                total += float(event.data.get("cost", 0.0) or 0.0)
                event = event._replace(data={**event.data, "total_cost": total})
            batch.append(event._replace(seq=last + offset))
        return batch
