"""A store that dies after its ``at``-th event: a process crash at an exact event, in-process.

The first ``at`` events of the run reach the real store below; the append that would go
past them writes its share and raises :class:`Crash`, and every later write raises too
(the process is dead).  A new :class:`~orchestration.graph.GraphRun` on the real store
then resumes from exactly what a crash at that event would have left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from orchestration.events import StreamEvent
from orchestration.stores import RunStore


class Crash(BaseException):
    """The simulated process death (a BaseException: no ``except Exception`` survives it)."""


class CrashingStore:
    """``inner``, until its run has ``at`` events."""

    durable = True  # every event goes out as it happens, so every event is a crash point

    def __init__(self, inner: RunStore, at: int) -> None:
        self.inner = inner
        self.at = at
        self.crashed = False

    def as_store(self) -> RunStore:
        """This wrapper where a RunStore is expected."""
        return cast(RunStore, self)

    async def append(self, run_id: str, events: Sequence[StreamEvent]) -> None:
        if self.crashed:
            raise Crash("the process is dead")
        room = self.at - (events[0].seq - 1) if events else 0
        if room < len(events):
            if room > 0:
                await self.inner.append(run_id, events[:room])
            self.crashed = True
            raise Crash(f"crashed after event {self.at}")
        await self.inner.append(run_id, events)

    async def events(self, run_id: str, after_seq: int = 0) -> list[StreamEvent]:
        return await self.inner.events(run_id, after_seq)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
