"""Who drives a run: lease owner ids that say which process holds them, and whether it lives.

An owner id is ``host:pid:start:nonce:boot:pidns:kind``: ``start`` is the process's start
time in clock ticks since boot (from ``/proc/<pid>/stat``), ``boot`` the kernel's boot id
(``/proc/sys/kernel/random/boot_id``) and ``pidns`` its pid namespace (the inode of
``/proc/self/ns/pid``), each ``-`` where the platform has none; ``kind`` says what drives
the run (``orchestrator`` or ``graph``).  Ids written before boot and namespace were
recorded (``host:pid:start:nonce``) still parse.

A lease whose owner is a process *here* (same host name, same boot, same pid namespace)
that no longer exists (or whose pid now belongs to a younger process) can be taken over
at once instead of waiting for it to expire: a ``kill -9`` followed by ``orchestrate
resume`` just works.  Owners anywhere else, including containers that share a host name
and a SQLite volume but not a pid namespace, are never judged dead here; their leases
expire by the clock.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from ..errors import RunLeasedError

if TYPE_CHECKING:
    from ..stores.base import RunStore

__all__ = ["acquire", "describe_owner", "is_dead_here", "leased_message", "new_owner"]

_KINDS = {"orchestrator": "another orchestrator", "graph": "a graph or workflow run"}


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


@cache
def _boot_id() -> str:
    """This machine's boot (a new one each time the kernel starts), or '-'."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip().replace("-", "")
    except OSError:
        return "-"
    return boot if boot.isalnum() else "-"


@cache
def _pid_namespace() -> str:
    """This process's pid namespace (containers have their own), or '-'."""
    try:
        link = os.readlink("/proc/self/ns/pid")  # pid:[4026531836]
    except OSError:
        return "-"
    inode = link.rpartition("[")[2].rstrip("]")
    return inode if inode.isdigit() else "-"


def new_owner(kind: str = "orchestrator") -> str:
    """A fresh owner id for this process; ``kind`` is what drives the run (``orchestrator``, ``graph``)."""
    pid = os.getpid()
    return (
        f"{_host()}:{pid}:{_start_ticks(pid)}:{uuid.uuid4().hex[:8]}:{_boot_id()}:{_pid_namespace()}:{kind}"
    )


@dataclass(frozen=True, slots=True)
class _Owner:
    host: str
    pid: int
    start: str
    boot: str | None  # None: an id from before boot ids were recorded
    namespace: str | None
    kind: str | None

    @property
    def here(self) -> bool:
        """Same host name, same boot, same pid namespace: its pid means a process we can see."""
        return (
            self.host == _host()
            and self.boot in (None, _boot_id())
            and self.namespace in (None, _pid_namespace())
        )


def _parse(owner: str | None) -> _Owner | None:
    parts = (owner or "").split(":")
    if len(parts) < 3 or not parts[1].isdigit():
        return None
    extra = [*parts[4:7], None, None, None]
    return _Owner(parts[0], int(parts[1]), parts[2], extra[0], extra[1], extra[2])


def describe_owner(owner: str | None) -> str:
    """Who ``owner`` is, for a person: ``process 4242 on this machine`` (or ``on host 'web-2'``,
    ``in another container named 'web-2'``, ``a graph or workflow run in this process``...)."""
    found = _parse(owner)
    if found is None:
        return "another process"
    pid, host = found.pid, found.host
    if host != _host():
        return f"process {pid} on host {host!r}"
    if found.boot not in (None, _boot_id()):
        return f"process {pid} on another machine named {host!r}"
    if not found.here:
        return f"process {pid} in another container named {host!r}"
    if pid == os.getpid():
        return f"{_KINDS.get(found.kind or 'orchestrator', 'another run')} in this process"
    return f"process {pid} on this machine"


def leased_message(
    run_id: str, holder: str | None, lease_seconds: float, *, waited: bool, wait_hint: str
) -> str:
    """Why ``run_id`` cannot be resumed while ``holder`` drives it, and what to do.

    ``wait_hint`` is how this interface asks to wait for the lease (``add --wait`` on the
    command line, ``pass wait=True`` in Python).  A holder that is a process on this host
    is alive (a dead one's lease is taken over), so the message says so.
    """
    who = describe_owner(holder)
    found = _parse(holder)
    here = found is not None and found.here
    if here and found is not None and found.pid == os.getpid():
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
    """True when ``owner`` names a process here (this host, boot and pid namespace) that is gone.

    Unparsable ids, other hosts, other containers and live processes are never dead.  A
    pid that was reused is caught by its start time, where the platform records one.
    """
    found = _parse(owner)
    if found is None or not found.here:
        return False
    pid = found.pid
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
    recorded = found.start
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
