"""Lease owner ids say which process holds a lease, and whether that process still lives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from orchestration.engine.leases import describe_owner, is_dead_here, leased_message, new_owner


def _owner_of(pid: int, start: str) -> str:
    host = new_owner().split(":")[0]
    return f"{host}:{pid}:{start}:abcd1234"


def test_this_process_is_alive_and_its_ids_are_unique() -> None:
    first, second = new_owner(), new_owner()
    assert first != second
    assert first.split(":")[1] == str(os.getpid())
    assert not is_dead_here(first)


def test_a_killed_process_is_dead_whether_or_not_it_was_reaped() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; print(__import__('orchestration.engine.leases', fromlist=['x']).new_owner()); sys.stdout.flush(); input()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    owner = child.stdout.readline().strip()
    assert not is_dead_here(owner)  # alive
    os.kill(child.pid, signal.SIGKILL)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not yet reaped: a zombie
    assert is_dead_here(owner)
    child.wait()  # reaped: the pid is gone
    assert is_dead_here(owner)


def test_a_reused_pid_is_caught_by_its_start_time() -> None:
    parent = os.getppid()  # a live process that is not this one
    stat = Path(f"/proc/{parent}/stat").read_text(encoding="ascii", errors="replace")
    real_start = stat.rsplit(")", 1)[-1].split()[19]
    assert not is_dead_here(_owner_of(parent, real_start))
    assert not is_dead_here(_owner_of(parent, "-"))  # no start time recorded: trusted as alive
    assert is_dead_here(_owner_of(parent, str(int(real_start) + 1)))  # same pid, another process


def test_other_hosts_and_odd_ids_are_never_judged_dead() -> None:
    assert not is_dead_here("some-other-host:1:-:abcd")
    assert not is_dead_here("not an owner id")
    assert not is_dead_here(_owner_of(0, "-"))


def test_a_refusal_names_the_holder_and_the_way_to_wait_of_each_interface() -> None:
    host = new_owner().split(":")[0]
    here = f"{host}:{os.getppid()}:-:abcd1234"  # a live process on this machine
    assert describe_owner(here) == f"process {os.getppid()} on this machine"
    assert describe_owner(new_owner()) == "another orchestrator in this process"
    assert describe_owner("web-2:4242:-:abcd1234") == "process 4242 on host 'web-2'"
    assert describe_owner(None) == describe_owner("garbage") == "another process"

    alive = leased_message("r", here, 30, waited=False, wait_hint="add --wait")
    assert (
        "which is still running" in alive and "add --wait to take over when its 30s lease runs out" in alive
    )
    remote = leased_message("r", "web-2:4242:-:abcd1234", 30, waited=False, wait_hint="pass wait=True")
    assert "if that process died, the lease expires within 30s" in remote and "pass wait=True" in remote
    waited = leased_message("r", here, 30, waited=True, wait_hint="add --wait")
    assert "waited 31s, so it is alive" in waited and "--wait" not in waited
