"""Runs a plan: a fixed pool of workers pulls ready subtasks from the scheduler.

The scheduler decides (pure), the runner acts: it owns the workers, inside one
``asyncio.TaskGroup``, and nothing else.  ``execute`` runs one subtask and returns True
on success; ``on_ruled_out`` is told about subtasks that will never run (a dependency
failed, or the run is stopping).  Workers stop taking new subtasks as soon as
``should_stop()`` is true; subtasks already running finish (or are cancelled with the
run).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..models import SubTask
from .graph import Plan, Scheduler

__all__ = ["run_plan"]


async def run_plan(
    plan: Plan,
    scheduler: Scheduler,
    execute: Callable[[SubTask], Awaitable[bool]],
    *,
    concurrency: int,
    should_stop: Callable[[], bool],
    on_ruled_out: Callable[[list[str], str], None],
) -> None:
    """Execute ``plan`` with at most ``concurrency`` subtasks at once."""
    changed = asyncio.Event()

    def notify() -> None:
        nonlocal changed
        old, changed = changed, asyncio.Event()
        old.set()

    async def worker() -> None:
        while True:
            if should_stop():
                notify()
                return
            subtask = scheduler.next_ready()
            if subtask is None:
                if scheduler.finished:
                    notify()
                    return
                await changed.wait()
                continue
            if await execute(subtask):
                if scheduler.complete(subtask.id) > 1 or scheduler.finished:
                    notify()
            else:
                ruled_out = scheduler.fail(subtask.id)
                if ruled_out:
                    on_ruled_out(ruled_out, f"dependency {subtask.id!r} did not complete")
                notify()

    workers = max(1, min(concurrency, len(plan)))
    reason = "the run stopped before it started"
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
    except asyncio.CancelledError:
        reason = "not started: the run was cancelled"
        raise
    finally:  # every subtask is accounted for, however the run ended
        remaining = scheduler.drain()
        if remaining:
            on_ruled_out(remaining, reason)
