"""Answered runs go on: the server resumes the paused runs it can rebuild.

An answer through ``POST /runs/{id}/answers`` (or the live page's form) to a run nobody
drives is recorded in the run's log; the server then continues the run itself, in its
event loop, streaming to its subscribers like a run it started, as ``orchestrate resume``
would.  It rebuilds only what it was given when the app was built, never anything a
request or a stored run names (importing runs a module's code):

- a **workflow** run, by its class: ``workflows=[ReviewFlow]`` (a run names its class
  as ``module:Class``);
- a **graph** run, by the name it was run under: ``graphs={"review": (graph, handlers)}``
  for runs of ``graph.run(handlers, orchestrator="review")`` (the default name is
  ``"graph"``);
- a **planner** run this server started and that paused, by the orchestrator that ran it.

``run_options`` (``provider``, ``config``, ``guardrails``...) go to every workflow and
graph run it resumes.  Once its questions are answered again, a run that paused again goes
on again; a run the server cannot rebuild keeps its answer and goes on when resumed
elsewhere (``orchestrate resume``, or your code).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..models import TaskStatus

if TYPE_CHECKING:
    from ..graph import Graph
    from ..stores.base import RunStore
    from ..workflow import Workflow

__all__ = ["Resumers", "Resume"]

#: Continues one stored run, streaming to the callback given; returns when it stops.
Resume = Callable[[Any], Awaitable[Any]]


class Resumers:
    """What this server can rebuild to continue a paused run (see the module)."""

    def __init__(
        self,
        store: RunStore,
        *,
        workflows: Sequence[type[Workflow]] = (),
        graphs: Mapping[str, tuple[Graph, Mapping[Any, Any]]] | None = None,
        run_options: Mapping[str, Any] | None = None,
    ) -> None:
        from ..graph import Graph
        from ..workflow import Workflow

        self.store = store
        self.workflows: dict[str, type[Workflow]] = {}
        for cls in workflows:
            if not (isinstance(cls, type) and issubclass(cls, Workflow)):
                raise ConfigError(f"workflows= takes Workflow subclasses, not {cls!r}")
            self.workflows[f"{cls.__module__}:{cls.__qualname__}"] = cls
        self.graphs = dict(graphs or {})
        for name, entry in self.graphs.items():
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], Graph)):
                raise ConfigError(f"graphs[{name!r}] must be (graph, handlers), the graph a Graph")
        self.run_options = dict(run_options or {})
        #: Planner (orchestrator) runs this server started that paused, by run id.
        self.paused: dict[str, Any] = {}

    def for_run(self, run_id: str, orchestrator: str) -> Resume | None:
        """How to continue ``run_id`` (run by ``orchestrator``), or None: not rebuilt here."""
        store, options = self.store, self.run_options
        workflow = self.workflows.get(orchestrator)
        if workflow is not None:
            return lambda callback: workflow().run(
                store=store, run_id=run_id, stream_callback=callback, **options
            )
        graph_entry = self.graphs.get(orchestrator)
        if graph_entry is not None:
            graph, handlers = graph_entry
            return lambda callback: graph.run(
                handlers, store=store, run_id=run_id, stream_callback=callback,
                orchestrator=orchestrator, **options,
            )  # fmt: skip
        planner = self.paused.get(run_id)
        if planner is not None:
            return functools.partial(self._resume_planner, planner, run_id)
        return None

    async def _resume_planner(self, planner: Any, run_id: str, callback: Any) -> Any:
        try:
            return await planner.resume(run_id, callback)
        finally:
            summary = await self.store.get_run(run_id)
            if summary is not None and summary.status is TaskStatus.PAUSED:
                self.paused[run_id] = planner  # paused again: the next answer continues it
