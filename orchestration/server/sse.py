"""SSE for your own Starlette or FastAPI app: a ready ``EventSourceResponse`` for a run.

::

    from orchestration.server.sse import workflow_event_response

    @app.get("/research")
    async def research(topic: str):
        return workflow_event_response(orchestrator, f"Research {topic}")

Frames come from :func:`orchestration.streaming.format_sse` (``id`` = event seq), with
keep-alive pings; when the client disconnects the run is cancelled.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from ..events import StreamEvent
from ..streaming import format_sse, stream_workflow

__all__ = ["event_source_response", "workflow_event_response"]


def event_source_response(
    events: AsyncIterable[StreamEvent], *, ping_interval: float = 15.0, retry_ms: int | None = 1000
) -> Any:
    """An ``sse_starlette.EventSourceResponse`` streaming ``events`` (any async iterable)."""
    from . import _require_server

    _require_server()
    from sse_starlette.sse import EventSourceResponse

    async def frames() -> AsyncIterator[bytes]:
        first = True
        async for event in events:
            yield format_sse(event, retry_ms=retry_ms if first else None).encode("utf-8")
            first = False

    return EventSourceResponse(frames(), ping=ping_interval, sep="\n", headers={"cache-control": "no-store"})


def workflow_event_response(
    orchestrator: Any, task: str, *, ping_interval: float = 15.0, **kwargs: Any
) -> Any:
    """Run ``orchestrator`` on ``task`` and stream its events to the client as SSE.

    ``kwargs`` go to ``execute_workflow`` (``title``, ``context``, ``run_id``...).
    """
    return event_source_response(stream_workflow(orchestrator, task, **kwargs), ping_interval=ping_interval)
