"""Plans and scheduling decisions: pure functions, no event loop.

:func:`build_plan` validates a decomposition (non-empty, unique ids, known
dependencies, no cycles) and computes each subtask's critical-path rank: the length of
the longest chain of subtasks that depend on it, itself included.  :class:`Scheduler`
hands out ready subtasks highest rank first, then highest ``priority``, then plan order,
and tracks what completing or failing a subtask releases or rules out.

A run executes its plan on the graph core (:mod:`orchestration.engine.planrun`), whose
scheduler orders ready subtasks the same way; :class:`Scheduler` stays for code that
imports it from ``orchestration``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import PlanError
from ..models import SubTask

__all__ = ["Plan", "Scheduler", "build_plan"]


@dataclass(frozen=True)
class Plan:
    """A validated graph of subtasks."""

    subtasks: tuple[SubTask, ...]
    by_id: Mapping[str, SubTask]
    dependents: Mapping[str, tuple[str, ...]]
    rank: Mapping[str, int]
    index: Mapping[str, int]

    def __len__(self) -> int:
        return len(self.subtasks)


def build_plan(subtasks: Iterable[SubTask]) -> Plan:
    """Validate ``subtasks`` as a graph, or raise :class:`PlanError` saying what is wrong."""
    items = tuple(subtasks)
    if not items:
        raise PlanError("the decomposition produced no subtasks; return at least one SubTask")
    by_id: dict[str, SubTask] = {}
    for item in items:
        if not isinstance(item, SubTask):
            raise PlanError(f"expected SubTask objects, got {type(item).__name__}: {item!r}"[:300])
        if not isinstance(item.id, str) or not item.id:
            raise PlanError(f"every subtask needs a non-empty string id; got {item.id!r}")
        if item.id in by_id:
            raise PlanError(f"duplicate subtask id {item.id!r}; ids must be unique")
        by_id[item.id] = item
    dependents: dict[str, list[str]] = {i.id: [] for i in items}
    for item in items:
        for dep in item.dependencies:
            if dep not in by_id:
                raise PlanError(
                    f"subtask {item.id!r} depends on unknown id {dep!r}; known ids: {sorted(by_id)[:20]}"
                )
            if dep == item.id:
                raise PlanError(f"subtask {item.id!r} depends on itself")
            dependents[dep].append(item.id)
    order = _topological_order(items, dependents)
    rank: dict[str, int] = {}
    for node in reversed(order):
        rank[node] = 1 + max((rank[d] for d in dependents[node]), default=0)
    return Plan(
        subtasks=items,
        by_id=by_id,
        dependents={k: tuple(v) for k, v in dependents.items()},
        rank=rank,
        index={item.id: i for i, item in enumerate(items)},
    )


def _topological_order(items: Sequence[SubTask], dependents: Mapping[str, list[str]]) -> list[str]:
    indegree = {i.id: len(i.dependencies) for i in items}
    ready = [i.id for i in items if not i.dependencies]
    order: list[str] = []
    while ready:
        node = ready.pop()
        order.append(node)
        for child in dependents[node]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if len(order) != len(items):
        raise PlanError(f"the subtasks form a cycle: {' -> '.join(_find_cycle(items, indegree))}")
    return order


def _find_cycle(items: Sequence[SubTask], indegree: Mapping[str, int]) -> list[str]:
    deps = {i.id: [d for d in i.dependencies if indegree.get(d, 0) > 0] for i in items}
    start = next(node for node, degree in indegree.items() if degree > 0)
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = deps[node][0]
    cycle = path[seen[node] :]
    return [*reversed(cycle), cycle[-1]]


class Scheduler:
    """Which subtasks may run now.  Mutable, single-threaded, no I/O."""

    __slots__ = ("_heap", "_plan", "_waiting", "done", "failed", "running", "skipped")

    def __init__(self, plan: Plan, completed: Iterable[str] = ()) -> None:
        self._plan = plan
        already = set(completed)
        self._waiting = {
            s.id: sum(1 for d in s.dependencies if d not in already)
            for s in plan.subtasks
            if s.id not in already
        }
        self._heap: list[tuple[int, int, int, str]] = [
            (-plan.rank[s.id], -s.priority, i, s.id)
            for i, s in enumerate(plan.subtasks)
            if self._waiting.get(s.id) == 0
        ]
        heapq.heapify(self._heap)
        self.done: set[str] = already
        self.failed: set[str] = set()
        self.skipped: set[str] = set()
        self.running: set[str] = set()

    def _push(self, subtask: SubTask) -> None:
        entry = (-self._plan.rank[subtask.id], -subtask.priority, self._plan.index[subtask.id], subtask.id)
        heapq.heappush(self._heap, entry)

    @property
    def finished(self) -> bool:
        """True when nothing is running and nothing more can become ready."""
        return not self.running and not self._heap

    @property
    def has_ready(self) -> bool:
        """True when :meth:`next_ready` would return a subtask."""
        return bool(self._heap)

    def next_ready(self) -> SubTask | None:
        """The best ready subtask (now counted as running), or None."""
        if not self._heap:
            return None
        subtask_id = heapq.heappop(self._heap)[3]
        self.running.add(subtask_id)
        return self._plan.by_id[subtask_id]

    def complete(self, subtask_id: str) -> int:
        """Mark a subtask done; returns how many subtasks it made ready."""
        self.running.discard(subtask_id)
        self.done.add(subtask_id)
        released = 0
        for child in self._plan.dependents[subtask_id]:
            self._waiting[child] -= 1
            if self._waiting[child] == 0 and child not in self.skipped:
                self._push(self._plan.by_id[child])
                released += 1
        return released

    def fail(self, subtask_id: str) -> list[str]:
        """Mark a subtask failed; returns the ids of every subtask that can now never run."""
        self.running.discard(subtask_id)
        self.failed.add(subtask_id)
        ruled_out: list[str] = []
        stack = list(self._plan.dependents[subtask_id])
        while stack:
            child = stack.pop()
            if child in self.skipped or child in self.done:
                continue
            self.skipped.add(child)
            ruled_out.append(child)
            stack.extend(self._plan.dependents[child])
        return ruled_out

    def drain(self) -> list[str]:
        """Take every subtask that has not started (the run is stopping); returns their ids."""
        pending = [
            s.id
            for s in self._plan.subtasks
            if s.id not in self.done
            and s.id not in self.failed
            and s.id not in self.skipped
            and s.id not in self.running
        ]
        self._heap.clear()
        self.skipped.update(pending)
        return pending
