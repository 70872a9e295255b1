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


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # gone (reaped); not reused this soon


def test_ids_carry_the_boot_and_pid_namespace_and_what_drives_the_run() -> None:
    host, pid, start, nonce, boot, namespace, kind = new_owner("graph").split(":")
    assert (host, pid, kind) == (new_owner().split(":")[0], str(os.getpid()), "graph")
    assert boot == Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")
    assert namespace == os.readlink("/proc/self/ns/pid").split("[")[1].rstrip("]")
    assert start.isdigit() and len(nonce) == 8


def test_a_process_in_another_container_or_boot_is_never_judged_dead_here() -> None:
    """Containers can share a host name and a SQLite volume: only a pid in our own pid
    namespace, on our own boot, is a process whose absence we can see."""
    _, _, _, _, boot, namespace, _ = new_owner().split(":")
    host, pid = new_owner().split(":")[0], _dead_pid()
    assert is_dead_here(f"{host}:{pid}:-:abcd1234:{boot}:{namespace}:orchestrator")
    assert is_dead_here(f"{host}:{pid}:-:abcd1234")  # an id from before: judged by host and pid
    assert not is_dead_here(f"{host}:{pid}:-:abcd1234:{boot}:1:orchestrator")  # another container
    assert not is_dead_here(f"{host}:{pid}:-:abcd1234:0123abcd:{namespace}:orchestrator")  # another boot
    assert describe_owner(f"{host}:{pid}:-:abcd1234:{boot}:1:orchestrator") == (
        f"process {pid} in another container named {host!r}"
    )
    assert describe_owner(f"{host}:{pid}:-:abcd1234:0123abcd:{namespace}:graph") == (
        f"process {pid} on another machine named {host!r}"
    )
    elsewhere = leased_message(
        "r", f"{host}:{pid}:-:abcd1234:{boot}:1:graph", 30, waited=False, wait_hint="x"
    )
    assert "if that process died, the lease expires within 30s" in elsewhere


def test_a_refusal_says_what_in_this_process_holds_the_run() -> None:
    assert describe_owner(new_owner("graph")) == "a graph or workflow run in this process"
    assert describe_owner(new_owner("orchestrator")) == "another orchestrator in this process"
    message = leased_message("r", new_owner("graph"), 30, waited=False, wait_hint="pass wait=True")
    assert (
        message
        == "run 'r' is being driven by a graph or workflow run in this process; let it finish (its result is in the store)"
    )


async def test_a_graph_run_already_driven_here_is_named_as_such() -> None:
    import asyncio

    import pytest

    from orchestration.errors import RunLeasedError
    from orchestration.graph import Graph, Node, NodeContext
    from orchestration.stores import MemoryStore

    store, started, release = MemoryStore(), asyncio.Event(), asyncio.Event()

    async def wait(ctx: NodeContext) -> None:
        started.set()
        await release.wait()

    graph = Graph(nodes=[Node(id="a")])
    first = graph.start({"a": wait}, store=store, run_id="g1")
    async with asyncio.TaskGroup() as group:
        running = group.create_task(first.run())
        await started.wait()
        with pytest.raises(RunLeasedError, match="a graph or workflow run in this process"):
            await graph.start({"a": wait}, store=store, run_id="g1").run()
        release.set()
    assert running.result().status == "completed"
