"""A process that runs a workflow with a human approval gate, for the interrupt tests.

``python -m tests.graph.interrupt_worker STORE RUN_ID`` runs (or continues) the run and
prints one JSON line: its status, open questions and output.  The process then exits,
so a paused run must survive in the store alone.
"""

from __future__ import annotations

import asyncio
import json
import sys

from orchestration import Flow, Workflow, step
from orchestration.graph import NodeContext
from orchestration.stores import open_store


class Publish(Workflow):
    @step
    async def draft(self, topic: str) -> str:
        return f"a note on {topic}"

    @step
    async def title(self, draft: str, ctx: NodeContext) -> str:
        return str(await ctx.interrupt("What title should the note have?"))

    @step(approve_before="Publish the note?")
    async def publish(self, title: str) -> str:
        return f"published {title!r}"

    def build(self, flow: Flow) -> None:
        flow.start(self.draft).then(self.title).then(self.publish)


async def main(store_url: str, run_id: str) -> None:
    from tests.graph.interrupt_worker import Publish as Importable  # recorded by its import path

    store = open_store(store_url)
    try:
        result = await Importable().run("tides", store=store, run_id=run_id)
    finally:
        await store.close()
    print(json.dumps({"status": result.status, "questions": dict(result.questions), "output": result.output}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
