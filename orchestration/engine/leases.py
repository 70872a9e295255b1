"""Who drives a run: lease owner ids that say which process holds them, and whether it lives.

An owner id is ``host:pid:start:nonce`` (``start`` is the process's start time in clock
ticks since boot, from ``/proc/<pid>/stat``, or ``-`` where there is none).  A lease
whose owner is a process on this host that no longer exists (or whose pid now belongs to
a younger process) can be taken over at once instead of waiting for it to expire: a
``kill -9`` followed by ``orchestrate resume`` just works.  Owners on other hosts are
never judged dead here; their leases expire by the clock.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from functools import cache
from typing import TYPE_CHECKING

from ..errors import RunLeasedError

if TYPE_CHECKING:
    from ..stores.base import RunStore

__all__ = ["acquire", "is_dead_here", "new_owner"]


def _stat(pid: int) -> list[str]:
    """Fields 3 onwards of /proc/PID/stat (state first), or [] where there is none."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return []
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return stat.rsplit(")", 1)[-1].split()


def _start_ticks(pid: int) -> str:
    """The process's start time (field 22 of /proc/PID/stat), or '-' if unknown."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else "-"


@cache
def _host() -> str:
    return socket.gethostname().replace(":", "_")


def new_owner() -> str:
    """A fresh owner id for this process."""
    pid = os.getpid()
    return f"{_host()}:{pid}:{_start_ticks(pid)}:{uuid.uuid4().hex[:8]}"


def is_dead_here(owner: str) -> bool:
    """True when ``owner`` names a process on this host that is gone.

    Unparsable ids, other hosts and live processes are never dead.  A pid that was
    reused is caught by its start time, where the platform records one.
    """
    parts = owner.split(":")
    if len(parts) < 3 or parts[0] != _host():
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    fields = _stat(pid)
    if fields and fields[0] == "Z":
        return True  # killed, not yet reaped by its parent
    recorded = parts[2] if len(parts) >= 4 else "-"
    now = fields[19] if len(fields) > 19 else "-"
    return recorded != "-" and now not in ("-", recorded)


async def acquire(
    store: RunStore, run_id: str, owner: str, lease_seconds: float, *, wait: bool = False
) -> None:
    """Take ``run_id``'s lease for ``owner``: at once if free or its holder is dead here,
    else (``wait``) once it expires; raises :class:`RunLeasedError` if a live process keeps it."""
    deadline = time.monotonic() + (lease_seconds + 1 if wait else 0)
    while not await store.acquire_lease(run_id, owner, lease_seconds):
        holder = await store.lease_holder(run_id)
        if holder is not None and is_dead_here(holder):
            # The process that held it is gone (e.g. kill -9): take over now.
            if await store.take_over_lease(run_id, holder, owner, lease_seconds):
                return
            continue  # someone else took it over first: ask again
        if time.monotonic() >= deadline:
            raise RunLeasedError(
                f"run {run_id!r} is being driven by another process (it holds the run's lease); "
                f"if that process died on another machine, the lease expires within {lease_seconds:g}s: "
                "retry then, or wait for it with wait=True",
                lease_seconds=lease_seconds,
            )
        await asyncio.sleep(min(0.2, lease_seconds / 5))
