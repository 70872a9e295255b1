"""Write graph runs into a SQLite file and print its SQL dump: the fixture of the
"runs stored by an earlier version still load" tests (tests/stores/test_contract.py).

``graph_runs_0_1_0.sql`` was made by running this with version 0.1.0 (commit 1e12e4e):

    python -m tests.stores.data.make_graph_runs > tests/stores/data/graph_runs_0_1_0.sql

It holds five runs: ``finished`` and ``crashed`` (the resume scenario of
tests/graph/scenario.py, whole and cut after its 30th event), ``asked`` (a question
answered, attributed-context channels, a contract), ``failed`` (a failure, a skip and a
2-of-3 join) and ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

from orchestration.graph import Contract, Edge, Graph, Node, NodeContext, NodeKind, NodeOutput, answer
from orchestration.stores import SQLiteStore
from tests.graph import scenario
from tests.graph.crashing import Crash, CrashingStore

PAYLOAD = {"topic": "tides"}


async def ask(ctx: NodeContext) -> Any:
    colour = await ctx.interrupt("Which colour?", str)
    return NodeOutput(
        {"colour": colour}, summary="asked", critical={"colour": colour}, artifacts={"long": "x" * 50}
    )


async def write(store: SQLiteStore) -> None:
    handlers = scenario.handlers(lambda node, visit: None)
    await scenario.graph().run(handlers, payload=PAYLOAD, store=store, run_id="finished")
    with contextlib.suppress(Crash):
        await scenario.graph().run(
            handlers, payload=PAYLOAD, store=CrashingStore(store, 30).as_store(), run_id="crashed"
        )

    asked = Graph(
        nodes=[Node(id="ask"), Node(id="use", kind=NodeKind.TERMINAL)],
        edges=[
            Edge(source="ask", target="use", contract=Contract(expectation="a colour", promise="one word"))
        ],
    )
    paused = await asked.run({"ask": ask}, payload="q", store=store, run_id="asked")
    assert paused.status == "paused", paused
    await answer(store, "asked", "ask", "blue", by="tester")
    assert (await asked.run({"ask": ask}, store=store, run_id="asked")).status == "completed"

    def boom(ctx: NodeContext) -> None:
        raise ValueError("no such tide")

    failed = Graph(
        nodes=[Node(id=f"p{i}") for i in range(3)]
        + [Node(id="join", kind=NodeKind.AGGREGATE, quorum=2), Node(id="after")],
        edges=[Edge(source=f"p{i}", target="join") for i in range(3)] + [Edge(source="p1", target="after")],
    )
    result = await failed.run(
        {"p0": lambda c: 0, "p1": boom, "p2": lambda c: 2, "after": lambda c: None},
        store=store,
        run_id="failed",
    )
    assert result.status == "failed", result

    waiting = asyncio.Event()

    async def forever(ctx: NodeContext) -> None:
        waiting.set()
        await asyncio.Event().wait()

    run = Graph(nodes=[Node(id="wait"), Node(id="next")], edges=[Edge(source="wait", target="next")]).start(
        {"wait": forever, "next": lambda c: None}, store=store, run_id="cancelled"
    )
    task = asyncio.create_task(run.run())
    await waiting.wait()
    run.cancel("stopped by the fixture")
    assert (await task).status == "cancelled"


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "runs.db"
        store = SQLiteStore(path)

        async def go() -> None:
            try:
                await write(store)
            finally:
                await store.close()

        asyncio.run(go())
        with sqlite3.connect(path) as conn:
            sys.stdout.write("\n".join(conn.iterdump()) + "\n")


if __name__ == "__main__":
    main()
