"""A graph run is driven by one process at a time: leases, takeover, fenced writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orchestration import Graph, Node
from orchestration.errors import LeaseLostError, RunLeasedError
from orchestration.graph import NodeContext
from orchestration.stores.sqlite import SQLiteStore


async def test_a_second_driver_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(ctx: NodeContext) -> str:
        entered.set()
        await release.wait()
        return "done"

    graph = Graph(nodes=[Node(id="slow")], entry="slow")
    first = graph.start({"slow": slow}, store=SQLiteStore(tmp_path / "g.db"), run_id="g1")
    task = asyncio.create_task(first.run())
    await entered.wait()
    with pytest.raises(RunLeasedError, match="is being driven by a graph or workflow run in this process"):
        await graph.run({"slow": slow}, store=SQLiteStore(tmp_path / "g.db"), run_id="g1")
    release.set()
    assert (await task).status == "completed"
    # the lease was given back: the finished run can be read again by anyone
    again = await graph.run({"slow": slow}, store=SQLiteStore(tmp_path / "g.db"), run_id="g1")
    assert again.output("slow") == "done"


async def test_a_driver_whose_run_was_taken_over_cannot_write(tmp_path: Path) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(ctx: NodeContext) -> str:
        entered.set()
        await release.wait()
        return "late"

    store = SQLiteStore(tmp_path / "g.db")
    graph = Graph(nodes=[Node(id="slow")], entry="slow")
    run = graph.start({"slow": slow}, store=store, run_id="g2")
    task = asyncio.create_task(run.run())
    await entered.wait()
    await run.flushed()
    before = len(await store.events("g2"))
    assert await store.take_over_lease("g2", run._owner, "another-driver", 300)  # it stalled; taken over
    release.set()
    with pytest.raises(LeaseLostError):
        await task
    assert len(await store.events("g2")) == before  # nothing of the old driver's was written
