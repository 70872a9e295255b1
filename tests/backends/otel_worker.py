"""A process that runs (or continues) the interrupt tests' workflow with a tracer.

``python -m tests.backends.otel_worker STORE RUN_ID`` prints the spans this process
exported as one JSON list of ``{"name", "id", "parent"}``, then exits: each process sees
only its own part of the run.
"""

from __future__ import annotations

import asyncio
import json
import sys

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestration.backends.otel import RunTracer
from orchestration.stores import open_store
from tests.graph.interrupt_worker import Publish


async def main(store_url: str, run_id: str) -> None:
    exporter = InMemorySpanExporter()
    store = open_store(store_url)
    try:
        await Publish().run(
            "tides", store=store, run_id=run_id, stream_callback=RunTracer(SimpleSpanProcessor(exporter))
        )
    finally:
        await store.close()
    spans = [
        {"name": s.name, "id": s.context.span_id, "parent": s.parent.span_id if s.parent else None}
        for s in exporter.get_finished_spans()
    ]
    print(json.dumps(spans))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
