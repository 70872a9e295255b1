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

__all__ = ["acquire", "describe_owner", "is_dead_here", "leased_message", "new_owner"]


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


def _pid_and_host(owner: str | None) -> tuple[int, str] | None:
    parts = (owner or "").split(":")
    if len(parts) < 3 or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[0]


def describe_owner(owner: str | None) -> str:
    """Who ``owner`` is, for a person: ``process 4242 on this machine`` (or ``on host 'web-2'``)."""
    found = _pid_and_host(owner)
    if found is None:
        return "another process"
    pid, host = found
    if host != _host():
        return f"process {pid} on host {host!r}"
    return "another orchestrator in this process" if pid == os.getpid() else f"process {pid} on this machine"


def leased_message(
    run_id: str, holder: str | None, lease_seconds: float, *, waited: bool, wait_hint: str
) -> str:
    """Why ``run_id`` cannot be resumed while ``holder`` drives it, and what to do.

    ``wait_hint`` is how this interface asks to wait for the lease (``add --wait`` on the
    command line, ``pass wait=True`` in Python).  A holder that is a process on this host
    is alive (a dead one's lease is taken over), so the message says so.
    """
    who = describe_owner(holder)
    found = _pid_and_host(holder)
    here = found is not None and found[1] == _host()
    if here and found is not None and found[0] == os.getpid():
        return f"run {run_id!r} is being driven by {who}; let it finish (its result is in the store)"
    if waited:
        return (
            f"run {run_id!r} is still being driven by {who}: it renewed the run's lease while this "
            f"waited {lease_seconds + 1:g}s, so it is alive; let it finish, or stop it and resume again"
        )
    if here:
        return (
            f"run {run_id!r} is being driven by {who}, which is still running; let it finish, or stop "
            f"it and resume again (if it is stuck, {wait_hint} to take over when its "
            f"{lease_seconds:g}s lease runs out)"
        )
    return (
        f"run {run_id!r} is being driven by {who} (it holds the run's lease); if that process died, "
        f"the lease expires within {lease_seconds:g}s: retry then, or {wait_hint} to wait for it"
    )


def is_dead_here(owner: str) -> bool:
    """True when ``owner`` names a process on this host that is gone.

    Unparsable ids, other hosts and live processes are never dead.  A pid that was
    reused is caught by its start time, where the platform records one.
    """
    found = _pid_and_host(owner)
    if found is None or found[1] != _host():
        return False
    pid = found[0]
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
    parts = owner.split(":")
    recorded = parts[2] if len(parts) >= 4 else "-"
    now = fields[19] if len(fields) > 19 else "-"
    return recorded != "-" and now not in ("-", recorded)


async def acquire(
    store: RunStore, run_id: str, owner: str, lease_seconds: float, *, wait: bool = False
) -> None:
    """Take ``run_id``'s lease for ``owner``: at once if free or its holder is dead here,
    else (``wait``) once it expires; raises :class:`RunLeasedError` if a live process keeps it
    (its message says ``pass wait=True``; the CLI rewords it with :func:`leased_message`)."""
    deadline = time.monotonic() + (lease_seconds + 1 if wait else 0)
    while not await store.acquire_lease(run_id, owner, lease_seconds):
        holder = await store.lease_holder(run_id)
        if holder is not None and is_dead_here(holder):
            # The process that held it is gone (e.g. kill -9): take over now.
            if await store.take_over_lease(run_id, holder, owner, lease_seconds):
                return
            continue  # someone else took it over first: ask again
        if time.monotonic() >= deadline:
            message = leased_message(run_id, holder, lease_seconds, waited=wait, wait_hint="pass wait=True")
            raise RunLeasedError(
                message, run_id=run_id, holder=holder, lease_seconds=lease_seconds, waited=wait
            )
        await asyncio.sleep(min(0.2, lease_seconds / 5))
