"""A process the cross-process cancellation tests stop through the store.

``python -m tests.engine.cancel_worker STORE KIND RUN_ID`` (KIND: ``graph`` or
``workflow``; STORE: a SQLite path or a ``postgresql://`` URL) starts a run whose second
step waits for an hour, prints ``started`` once it waits, and prints the run's status as
JSON on the last line when the run ends.
"""

from __future__ import annotations

import asyncio
import json
import sys

from orchestration.graph import Edge, Graph, Node, NodeContext
from orchestration.stores import open_store
from orchestration.workflow import Flow, Workflow, step


async def first(ctx: NodeContext) -> str:
    return "done"


async def hang(ctx: NodeContext) -> None:
    print("started", flush=True)
    await asyncio.sleep(3600)


class Hangs(Workflow):
    @step
    async def first(self, topic: str) -> str:
        return topic

    @step
    async def hang(self, topic: str) -> None:
        print("started", flush=True)
        await asyncio.sleep(3600)

    def build(self, flow: Flow) -> None:
        flow.start(self.first).then(self.hang)


async def main(where: str, kind: str, run_id: str) -> None:
    store = open_store(where)
    try:
        if kind == "graph":
            graph = Graph(
                nodes=[Node(id="first"), Node(id="hang")], edges=[Edge(source="first", target="hang")]
            )
            result = await graph.start({"first": first, "hang": hang}, store=store, run_id=run_id).run()
            outcome = {
                "status": result.status,
                "first": str(result.states["first"]),
                "hang": str(result.states["hang"]),
            }
        else:
            done = await Hangs().run("tides", store=store, run_id=run_id)
            outcome = {"status": done.status, "first": str(done.outputs.get("first"))}
    finally:
        await store.close()
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
