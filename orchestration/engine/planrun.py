"""Runs an orchestrator's plan on the graph core: one TASK node per subtask.

The plan (validated by :func:`~orchestration.engine.graph.build_plan`) becomes a graph
(a node per subtask, an edge from each dependency) folded into a
:class:`~orchestration.engine.core.GraphState`; which subtasks start, in what order, is
the core scheduler's answer (:func:`~orchestration.engine.core.scheduler.take_one`: critical
path first, then ``priority``, then plan order), and what a failure rules out is the
fold's (its dependents are SKIPPED).  The runners are tasks of one ``asyncio.TaskGroup``,
started as subtasks become ready (never more than the cap), each going on to the next
ready subtask when its own is done, so a chain runs in one task; nothing idles waiting
for a wake-up.

The graph state is in memory only: what the run stores are the orchestrator's own events
(``agent_start``, ``agent_complete``...), which :class:`~orchestration.engine.state.RunState`
folds, so runs stored by earlier versions load and resume as before.  A resumed run's
completed subtasks are folded in as completed nodes and do not run again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from ..models import SubTask
from .core import Edge, GraphState, Node, NodeCompleted, NodeFailed, NodeSkipped, NodeStarted, RunStarted
from .core.scheduler import take_one
from .graph import Plan

__all__ = ["PlanRun", "plan_graph"]

_READY = 1


def plan_graph(plan: Plan, completed: Iterable[str] = ()) -> GraphState:
    """The plan as a folded graph: a TASK node per subtask, ``completed`` ones done."""
    nodes = tuple(Node(id=s.id, priority=s.priority, model=s.model) for s in plan.subtasks)
    edges = tuple(Edge(source=d, target=s.id) for s in plan.subtasks for d in s.dependencies)
    state = GraphState().apply(RunStarted(nodes, edges, orchestrator="plan"))
    done = set(completed)
    if done:
        for rec in state.topological():  # dependencies first: each is READY when reached
            node_id = rec.spec.id
            if node_id in done and rec.state == _READY:
                state.apply(NodeStarted(node_id, 1))
                state.apply(NodeCompleted(node_id, 1))
    state.emitted.clear()
    return state


class PlanRun:
    """One execution of a plan (see the module docstring).

    ``execute`` runs one subtask and returns True on success; ``on_ruled_out`` is told
    about subtasks that will never run (a dependency failed, or the run is stopping).
    Nothing new starts once ``should_stop()`` is true; subtasks already running finish
    (or are cancelled with the run).
    """

    __slots__ = (
        "_execute",
        "_group",
        "_ruled_out",
        "_should_stop",
        "_waiting",
        "concurrency",
        "plan",
        "state",
    )

    def __init__(
        self,
        plan: Plan,
        execute: Callable[[SubTask], Awaitable[bool]],
        *,
        concurrency: int,
        should_stop: Callable[[], bool],
        on_ruled_out: Callable[[list[str], str], None],
        completed: Iterable[str] = (),
    ) -> None:
        self.plan = plan
        self.state = plan_graph(plan, completed)
        self.concurrency = max(1, concurrency)
        self._execute = execute
        self._should_stop = should_stop
        self._ruled_out = on_ruled_out
        self._group: asyncio.TaskGroup | None = None
        #: Runner tasks created that have not taken a subtask yet.
        self._waiting = 0

    async def run(self) -> None:
        """Run every subtask that can run; each one that cannot is reported as ruled out."""
        reason = "the run stopped before it started"
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._spawn()
        except asyncio.CancelledError:
            reason = "not started: the run was cancelled"
            raise
        finally:  # every subtask is accounted for, however the run ended
            self._group = None
            remaining = [node_id for node_id, rec in self.state.nodes.items() if rec.state <= _READY]
            if remaining:
                self._ruled_out(remaining, reason)

    def _spawn(self) -> None:
        """Start a runner for each READY subtask no runner will take, under the cap."""
        state = self.state
        group = self._group
        if group is None or self._should_stop():
            return
        free = min(state.ready_count, self.concurrency - state.active) - self._waiting
        for _ in range(free):
            self._waiting += 1
            group.create_task(self._runner())

    async def _runner(self) -> None:
        """Take the best READY subtask when this task gets to run (not when it was
        created: a subtask that finished without yielding lets its runner take the next
        best one at once), run it, and go on while one is ready."""
        state = self.state
        by_id = self.plan.by_id
        self._waiting -= 1
        while not self._should_stop() and state.active < self.concurrency:
            node_id = take_one(state)
            if node_id is None:
                return
            state.apply(NodeStarted(node_id, 1))
            if await self._execute(by_id[node_id]):
                state.apply(NodeCompleted(node_id, 1))
                state.emitted.clear()
            else:
                state.apply(NodeFailed(node_id, 1, "did not complete"))
                skipped = [e.node for e in state.emitted if type(e) is NodeSkipped]
                state.emitted.clear()
                if skipped:
                    self._ruled_out(skipped, f"dependency {node_id!r} did not complete")
            if state.ready_count > 1 and state.active + self._waiting + 1 < self.concurrency:
                self._waiting += 1  # this runner takes one of them itself
                self._spawn()
                self._waiting -= 1
