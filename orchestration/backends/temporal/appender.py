"""Appending to a run's log from many processes at once: the workflow and every node.

A local run has one writer, which numbers its events.  A Temporal run has several: the
workflow (through its append activity) writes the graph events, and each node's
activity writes its own model-call events while it runs, on whichever worker it landed.
The store refuses an append whose ``seq`` is not the next one, so each writer numbers
its batch after the last event it knows of and, when another writer got there first,
reads the log's new tail and renumbers: the log stays one gapless, ordered history.

The workflow's batches are appended exactly once: a try that stored its batch but died
before saying so is tried again, and finds the batch in the log (the workflow's events,
its graph events and its terminal one, are counted; nodes write neither).

Every append is fenced by the run's lease owner (the workflow's), so nothing can write
into a run another driver took over.  A lease that lapsed with nobody else taking it
(its renewing activity was between workers) is taken again before the write.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from ...engine.core import is_graph_event
from ...errors import SequenceConflictError, StoreError
from ...events import EventType, StreamEvent
from ...stores.base import RunStore

__all__ = ["Appender"]

_ATTEMPTS = 200


def _workflow_events(events: Sequence[StreamEvent]) -> int:
    return sum(1 for event in events if is_graph_event(event) or event.is_terminal)


class Appender:
    """Numbers and appends batches for the runs one worker process writes to."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        #: Per run, what this process knows of the log: its last seq, and how many of the
        #: workflow's events it holds up to there.
        self._known: dict[str, tuple[int, int]] = {}
        self._fenced = "fence" in inspect.signature(store.append).parameters

    async def _catch_up(self, run_id: str) -> tuple[int, int]:
        """Read the log past what is known (all of it the first time)."""
        known = self._known.get(run_id)
        stored = await self.store.events(run_id, after_seq=known[0] if known else 0)
        last, written = known or (0, 0)
        if stored:
            last, written = stored[-1].seq, written + _workflow_events(stored)
        self._known[run_id] = (last, written)
        return last, written

    async def append(
        self,
        run_id: str,
        events: Sequence[StreamEvent],
        *,
        owner: str,
        first: int | None = None,
    ) -> int:
        """Append ``events`` (their seqs are replaced) after the run's last event; the last seq.

        ``first``: for the workflow's batches, the index of the batch's first event among
        all the workflow's events; a batch the log holds already is not appended again.
        """
        if not events:
            return self._known.get(run_id, (0, 0))[0]
        costs = any(e.event_type is EventType.COST_UPDATE for e in events)
        fresh = False  # read the log's tail during this call (what this process knew may be old)
        for _ in range(_ATTEMPTS):
            known = self._known.get(run_id)
            last, written = known if known is not None else await self._catch_up(run_id)
            if first is not None:
                if written >= first + len(events):
                    return last  # an earlier try stored it
                if written > first:
                    # An earlier try stored a shorter batch (its workflow task failed, and the
                    # task that replayed it had more to add): the same events, in the same
                    # order, so only the rest is new.
                    events, first = events[written - first :], written
                if written < first and not fresh:
                    # Another worker appended this workflow's batches since this process last
                    # wrote here (the workflow moved, then came back): read what it wrote.
                    await self._catch_up(run_id)
                    fresh = True
                    continue
                if written != first:
                    raise StoreError(
                        f"run {run_id}: the log holds {written} of the workflow's events but this "
                        f"batch starts at {first}; another writer wrote into the run"
                    )
            total: float | None = None
            if costs:
                summary = await self.store.get_run(run_id)
                if summary is not None and summary.last_seq != last:
                    await self._catch_up(run_id)  # someone appended: number after them
                    continue
                total = summary.total_cost if summary is not None else 0.0
            batch = self._numbered(events, last, total)
            try:
                if self._fenced:
                    await self.store.append(run_id, batch, fence=owner)
                else:
                    await self.store.append(run_id, batch)
            except SequenceConflictError:
                await self._catch_up(run_id)  # another writer appended: read the new tail
                fresh = True
                continue
            self._known[run_id] = (batch[-1].seq, written + _workflow_events(batch))
            return batch[-1].seq
        raise StoreError(f"run {run_id}: could not append after {_ATTEMPTS} tries (too many writers)")

    def forget(self, run_id: str) -> None:
        """Drop what this process knows of ``run_id`` (it finished)."""
        self._known.pop(run_id, None)

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
