"""Which READY nodes to start now: a pure function of the graph state.

Order: critical path first (the longest chain of dependents, weighted by the durations
recorded in events, see :meth:`GraphState.refresh_ranks`), then ``priority`` (higher
first), then graph order (the order nodes were added: a stable tiebreak).  Limits:

- ``slots``: how many may start (the concurrency cap minus what is running);
- ``capacity``: per model, how many calls it can take now (a rate limiter's answer).  A
  ready node whose model has no capacity does not take a slot ahead of one whose model
  has: each model is its own lane, and only lanes with capacity are merged;
- ``headroom``: budget left (USD); a node whose ``cost`` estimate does not fit is held
  back, and cheaper ready nodes behind it go first.

The ready set lives in the state as one heap per model lane, so picking k of R ready
nodes costs O(k log R) rather than sorting them all.  Picked entries are put back:
:func:`schedule` changes nothing a reader can see, and the same state always gives the
same answer.  Starting a node is the runner's decision, recorded as ``NodeStarted``.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from .state import GraphState

__all__ = ["schedule", "take", "take_one"]

_READY = 1
_Entry = tuple[float, int, int, int, str]


def _valid(state: GraphState, entry: _Entry) -> bool:
    rec = state.nodes.get(entry[4])
    return rec is not None and rec.state == _READY and rec.token == entry[3]


def _top(state: GraphState, lane: list[_Entry]) -> _Entry | None:
    """The lane's best valid entry (stale entries are dropped for good)."""
    while lane:
        if _valid(state, lane[0]):
            return lane[0]
        heapq.heappop(lane)
    return None


def schedule(
    state: GraphState,
    slots: int,
    *,
    capacity: Mapping[str, int] | None = None,
    headroom: float | None = None,
) -> list[str]:
    """Ids of at most ``slots`` READY nodes to start now, best first (changes nothing).

    ``capacity`` maps model names to how many more calls each may take now (models not
    in it are unlimited; nodes without a model always may).  ``headroom`` is the budget
    left; each picked node's ``cost`` estimate is counted against it.  Nothing is picked
    once the run has finished or the fold recorded a reason to fail it.
    """
    return _pick(state, slots, capacity, headroom, keep=True)


def take(
    state: GraphState,
    slots: int,
    *,
    capacity: Mapping[str, int] | None = None,
    headroom: float | None = None,
) -> list[str]:
    """:func:`schedule`, for a caller that starts every returned node at once.

    The picked nodes' queue entries are dropped instead of put back (starting a node
    makes its entry stale anyway), which saves a heap push and pop per node.
    """
    return _pick(state, slots, capacity, headroom, keep=False)


def _pick(
    state: GraphState, slots: int, capacity: Mapping[str, int] | None, headroom: float | None, *, keep: bool
) -> list[str]:
    if slots <= 0 or not state.ready_count or state.status is not None or state.error is not None:
        return []
    if not capacity and headroom is None and len(state.lanes) == 1:
        return _pick_one_lane(state, next(iter(state.lanes.values())), slots, keep)
    left = dict(capacity) if capacity else {}
    budget = headroom
    picked: list[str] = []
    taken: list[tuple[list[_Entry], _Entry]] = []
    open_lanes = [
        lane for model, lane in state.lanes.items() if lane and (model is None or left.get(model, 1) > 0)
    ]
    while len(picked) < slots and open_lanes:
        best: _Entry | None = None
        best_lane: list[_Entry] | None = None
        for lane in open_lanes:
            top = _top(state, lane)
            if top is not None and (best is None or top < best):
                best, best_lane = top, lane
        if best is None or best_lane is None:
            break
        heapq.heappop(best_lane)
        rec = state.nodes[best[4]]
        if budget is not None:
            if rec.spec.cost > budget:
                taken.append((best_lane, best))
                continue  # held back: does not fit the budget left
            budget -= rec.spec.cost
        if keep:
            taken.append((best_lane, best))
        picked.append(best[4])
        model = rec.spec.model
        if model is not None and model in left:
            left[model] -= 1
            if left[model] <= 0:
                open_lanes.remove(best_lane)
    for lane, entry in taken:
        heapq.heappush(lane, entry)
    return picked


def _pick_one_lane(state: GraphState, lane: list[_Entry], slots: int, keep: bool) -> list[str]:
    """:func:`_pick` for the common case: one lane, no capacity or budget limits."""
    nodes = state.nodes
    picked: list[str] = []
    kept: list[_Entry] = []
    while lane and len(picked) < slots:
        entry = heapq.heappop(lane)
        rec = nodes.get(entry[4])
        if rec is None or rec.state != _READY or rec.token != entry[3]:
            continue  # stale: dropped for good
        picked.append(entry[4])
        if keep:
            kept.append(entry)
    for entry in kept:
        heapq.heappush(lane, entry)
    return picked


def take_one(state: GraphState) -> str | None:
    """:func:`take` of one node without capacity or budget limits: the best READY node's id
    (its queue entry dropped), or None.  For a caller that starts nodes one at a time."""
    if not state.ready_count or state.status is not None or state.error is not None:
        return None
    if len(state.lanes) != 1:
        picked = _pick(state, 1, None, None, keep=False)
        return picked[0] if picked else None
    nodes = state.nodes
    lane = next(iter(state.lanes.values()))
    while lane:
        entry = heapq.heappop(lane)
        rec = nodes.get(entry[4])
        if rec is not None and rec.state == _READY and rec.token == entry[3]:
            return entry[4]
    return None
