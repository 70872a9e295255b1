"""Answering a paused graph run's question from another process, through its store."""

from __future__ import annotations

import time
from typing import Any

from ..errors import GraphError, SequenceConflictError
from ..stores.base import RunStore
from .core import GraphEvent, GraphState, decode, is_graph_event, wrap
from .core.events import InterruptAnswered

__all__ = ["answer"]


async def answer(store: RunStore, run_id: str, node_id: str, value: Any, *, by: str = "") -> None:
    """Record the answer to the question ``node_id`` of stored run ``run_id`` waits on.

    Only a paused run takes answers this way (a running one takes them in the process that
    drives it, with :meth:`GraphRun.answer`); it continues when it is next run
    (``graph.run(..., run_id=run_id)``, or ``Workflow.run(run_id=...)``).  Raises
    GraphError naming what is wrong when the run is not paused or the node is not waiting.
    """
    for _ in range(20):
        stored = await store.events(run_id)
        if not stored:
            raise GraphError(f"no run {run_id!r} in the store")
        state = GraphState()
        for stored_event in stored:
            if is_graph_event(stored_event):
                state.apply(decode(stored_event))
        state.emitted.clear()  # derived events of the log are in the log already
        rec = state.nodes.get(node_id)
        if rec is None:
            raise GraphError(f"run {run_id} has no node {node_id!r}")
        if state.status != "paused":
            where = f"it {state.status}" if state.status else "it is still running"
            raise GraphError(
                f"run {run_id} is not paused ({where}); answer a running run in the process that "
                "drives it (GraphRun.answer), or once it has paused"
            )
        if not rec.waiting:
            waiting = ", ".join(sorted(state.waiting())) or "none"
            raise GraphError(
                f"node {node_id!r} of run {run_id} is not waiting for an answer (waiting: {waiting})"
            )
        answered = InterruptAnswered(node_id, len(rec.answers), value, by)
        state.apply(answered)
        seq = stored[-1].seq
        now = time.time()
        events: list[GraphEvent] = [answered, *state.take_emitted()]
        batch = [wrap(item, run_id, seq + n, now) for n, item in enumerate(events, 1)]
        try:
            await store.append(run_id, batch)
            return
        except SequenceConflictError:
            continue  # the run appended meanwhile: read again
    raise GraphError(f"run {run_id} kept changing while answering; try again")
