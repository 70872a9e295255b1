"""Answers to the questions graph runs ask, from any process, through the run's store.

Only the holder of a run's lease writes its log, so an answer takes one of two routes:

- **Nobody drives the run** (it paused, or its process died): :func:`answer` takes the
  lease for a moment, checks the answer against the freshly read log, appends the
  ``InterruptAnswered`` (fenced by that lease) and gives the lease back.  The run goes on
  when it is next run.
- **A process drives it** (a live owner holds the lease, other branches may be running,
  or it waits for answers): :func:`answer` checks the answer the same way and posts it to
  the run's *inbox*, a small side log in the same store (run id ``<run_id>~answers``,
  appended with the store's sequence check, so two answerers never both get in).  The
  driver reads the inbox while any of its nodes waits (:class:`Inbox`, on the same timer as
  the cancel flag: no busy loop), records the answer in the run's log, where the waiting
  node picks it up, and deletes the inbox.  :func:`answer` returns once the answer is in the
  log (``"delivered"``); if the driver gives the lease up first, it records the answer
  itself; if the driver is too busy to look within ``wait_seconds``, the answer stays
  queued in the inbox (``"queued"``), and the driver (or the next resume) takes it.

Every answer is checked against the question's JSON schema (one line saying what does not
fit; a text answer that parses as JSON is taken as that JSON, as on the command line).  A
second answer to the same question is refused, naming the answer already given.  Questions
a guardrail asked (:mod:`orchestration.engine.pauses`) are answered together: one answer
goes to every node waiting on the same guardrail.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..errors import GraphError, SequenceConflictError
from ..events import EventType, StreamEvent
from ..stores.base import INBOX_SUFFIX, RunStore
from .core import GraphEvent, GraphState, decode, is_graph_event, wrap
from .core.events import InterruptAnswered, NodeInterrupted
from .leases import is_dead_here, new_owner

if TYPE_CHECKING:
    from .graphrun import GraphRun

__all__ = [
    "GUARDRAIL_KEY",
    "AnswerRoute",
    "Inbox",
    "answer",
    "answers_for",
    "fit",
    "goes_on",
    "inbox_of",
    "question_of",
]

#: What :func:`answer` did: ``recorded`` in the log of a run nobody drives (it goes on when
#: it is run again), ``delivered`` to the process driving the run (it went on), ``queued``
#: in the run's inbox for its driver, which had not looked yet.
AnswerRoute = Literal["recorded", "delivered", "queued"]

_INBOX = INBOX_SUFFIX
_POLL_SECONDS = 0.1
_LEASE_SECONDS = 10.0
_ATTEMPTS = 50
#: The key a guardrail question's schema carries its policy under (see engine/pauses.py).
GUARDRAIL_KEY = "x-orchestration-guardrail"


def inbox_of(run_id: str) -> str:
    """The id of the side log that holds answers posted for ``run_id`` while it is driven."""
    return run_id + _INBOX


# -- checking an answer against the run -----------------------------------------------------


def question_of(
    state: GraphState, run_id: str, node_id: str, events: Sequence[GraphEvent]
) -> NodeInterrupted:
    """The question ``node_id`` waits on, or GraphError saying why there is none."""
    rec = state.nodes.get(node_id)
    if rec is None:
        raise GraphError(f"run {run_id} has no node {node_id!r}")
    if state.status in ("completed", "failed", "cancelled"):
        raise GraphError(f"run {run_id} has ended ({state.status}); its questions take no more answers")
    if rec.waiting:
        return rec.asked[-1]
    given = next(
        (e for e in reversed(events) if isinstance(e, InterruptAnswered) and e.node == node_id), None
    )
    if given is not None:
        raise _second(run_id, node_id, given)
    if rec.answers:  # the driving process's own state: the answers of the current visit
        raise _second(run_id, node_id, InterruptAnswered(node_id, len(rec.answers) - 1, rec.answers[-1]))
    waiting = ", ".join(sorted(state.waiting())) or "none"
    raise GraphError(f"node {node_id!r} of run {run_id} is not waiting for an answer (waiting: {waiting})")


def _shown(value: Any) -> str:
    text = json.dumps(value, default=repr, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def fit(asked: NodeInterrupted, value: Any, run_id: str) -> Any:
    """``value`` checked against the question's JSON schema (a text answer that parses as JSON
    and fits is taken as that JSON); GraphError in one line when it does not fit."""
    schema = asked.schema
    if not schema:
        return value
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        else:
            if not list(validator.iter_errors(parsed)):
                return parsed
    where = "/".join(str(part) for part in error.absolute_path)
    raise GraphError(
        f"the answer to {asked.question!r} (node {asked.node!r} of run {run_id}) does not fit its schema"
        f"{f' at {where}' if where else ''}: {error.message}"
    )


def answers_for(state: GraphState, node_id: str, value: Any, by: str) -> list[InterruptAnswered]:
    """The events that answer ``node_id``'s question with ``value``: one, or, for a question a
    guardrail asked, one for every node waiting on the same guardrail (same answer)."""
    rec = state.nodes[node_id]
    events = [InterruptAnswered(node_id, len(rec.answers), value, by)]
    policy = _guardrail_of(rec.asked[-1]) if rec.asked else None
    if policy is not None:
        for other_id, asked in state.waiting().items():
            if other_id != node_id and _guardrail_of(asked) == policy:
                events.append(InterruptAnswered(other_id, len(state.nodes[other_id].answers), value, by))
    return events


def _guardrail_of(asked: NodeInterrupted) -> str | None:
    schema = asked.schema
    policy = schema.get(GUARDRAIL_KEY) if isinstance(schema, Mapping) else None
    return str(policy) if policy is not None else None


# -- the run's log, read as it grows ----------------------------------------------------------


class _Log:
    """A run's stored log folded into a GraphState, read again from where it stopped."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.state = GraphState()
        self.events: list[GraphEvent] = []
        self.seq = 0

    async def refresh(self) -> None:
        stored = await self.store.events(self.run_id, after_seq=self.seq)
        if not stored and not self.seq:
            raise GraphError(f"no run {self.run_id!r} in the store")
        for event in stored:
            if is_graph_event(event):
                graph_event = decode(event)
                self.state.apply(graph_event)
                self.events.append(graph_event)
            self.seq = event.seq
        self.state.emitted.clear()  # derived events of the log are in the log already
        if self.seq and not self.events:
            raise GraphError(
                f"run {self.run_id} is not a graph run; only graph and workflow runs ask questions"
            )

    def answered(self, node_id: str, index: int) -> InterruptAnswered | None:
        """The answer the log holds for ``node_id``'s question ``index`` of its latest questions."""
        for event in reversed(self.events):
            if isinstance(event, InterruptAnswered) and event.node == node_id and event.index == index:
                return event
            if isinstance(event, NodeInterrupted) and event.node == node_id and event.index <= index:
                return None  # back at (or before) the question itself: not answered yet
        return None


# -- answering -----------------------------------------------------------------------------------


async def answer(
    store: RunStore, run_id: str, node_id: str, value: Any, *, by: str = "", wait_seconds: float = 10.0
) -> AnswerRoute:
    """Answer the question ``node_id`` of run ``run_id`` waits on, from any process.

    Returns how it got there (:data:`AnswerRoute`): ``"recorded"`` for a run nobody drives
    (it continues when run again: ``graph.run(..., run_id=run_id)``, ``Workflow.run(run_id=...)``
    or ``orchestrate resume``), ``"delivered"`` once the process driving the run took it,
    ``"queued"`` if that process did not look within ``wait_seconds`` (it takes it later).
    Raises GraphError in one line: no such run or node, the node waits for nothing, the
    answer does not fit the question's schema, or the question was answered already.
    """
    log = _Log(store, run_id)
    owner = new_owner()
    posted: StreamEvent | None = None
    deadline = time.monotonic() + max(0.0, wait_seconds)
    while True:
        if await _take_lease(store, run_id, owner):
            try:
                return await _record(log, owner, node_id, value, by, posted)
            finally:
                await store.release_lease(run_id, owner)
        await log.refresh()
        if posted is None:
            asked = question_of(log.state, run_id, node_id, log.events)
            value = fit(asked, value, run_id)
            posted = await _post(store, run_id, node_id, len(log.state.nodes[node_id].answers), value, by)
            continue
        index = int(posted.data["index"])
        given = log.answered(node_id, index)
        if given is not None:
            if _same(given, posted):
                return "delivered"
            raise _second(run_id, node_id, given)
        if not any(e.data.get("id") == posted.data["id"] for e in await store.events(inbox_of(run_id))):
            await log.refresh()  # the driver empties the inbox only once the log holds what it took
            given = log.answered(node_id, index)
            if given is not None:
                if _same(given, posted):
                    return "delivered"
                raise _second(run_id, node_id, given)
            posted = await _post(store, run_id, node_id, index, value, by)  # lost in a race: again
        if time.monotonic() >= deadline:
            return "queued"
        await asyncio.sleep(_POLL_SECONDS)


async def goes_on(store: RunStore, run_id: str) -> bool:
    """True when the stored graph run ``run_id`` paused and answers since let a node go on:
    run again (nobody drives it), it continues from there."""
    log = _Log(store, run_id)
    try:
        await log.refresh()
    except GraphError:  # no such run, or not a graph run
        return False
    state = log.state
    return state.status == "paused" and state.ready_count > 0


def _same(given: InterruptAnswered, posted: StreamEvent) -> bool:
    return bool(given.by == posted.data["by"] and given.answer == posted.data["answer"])


def _second(run_id: str, node_id: str, given: InterruptAnswered) -> GraphError:
    who = f" by {given.by}" if given.by else ""
    return GraphError(
        f"node {node_id!r} of run {run_id} already has its answer ({_shown(given.answer)}{who}); "
        "a second answer is refused"
    )


async def _take_lease(store: RunStore, run_id: str, owner: str) -> bool:
    """The run's lease for a moment, unless a live process drives the run."""
    if await store.acquire_lease(run_id, owner, _LEASE_SECONDS):
        return True
    holder = await store.lease_holder(run_id)
    if holder is None:
        return bool(await store.acquire_lease(run_id, owner, _LEASE_SECONDS))
    return is_dead_here(holder) and bool(await store.take_over_lease(run_id, holder, owner, _LEASE_SECONDS))


async def _record(
    log: _Log, owner: str, node_id: str, value: Any, by: str, posted: StreamEvent | None
) -> AnswerRoute:
    """Under the run's lease: write the answer (and any others waiting in the inbox) to the log."""
    store, run_id = log.store, log.run_id
    await log.refresh()
    if posted is not None:
        given = log.answered(node_id, int(posted.data["index"]))
        if given is not None:
            if _same(given, posted):
                return "delivered"  # the driver took it before it let the run go
            raise _second(run_id, node_id, given)
    inbox = await store.events(inbox_of(run_id))
    events: list[GraphEvent] = []
    state = log.state
    for entry in inbox:  # answers posted to a driver that stopped before taking them
        events += _take_entry(state, entry)
    if posted is None or not any(e.data.get("id") == posted.data["id"] for e in inbox):
        asked = question_of(state, run_id, node_id, [*log.events, *events])
        for event in answers_for(state, node_id, fit(asked, value, run_id), by):
            state.apply(event)
            events.append(event)
    else:  # ours was in the inbox: taken above, unless the node moved on or another got in
        index = int(posted.data["index"])
        ours = [
            e for e in events if isinstance(e, InterruptAnswered) and (e.node, e.index) == (node_id, index)
        ]
        if not ours:  # raises, saying why, unless the node still waits: then it is answered now
            asked = question_of(state, run_id, node_id, [*log.events, *events])
            for event in answers_for(state, node_id, fit(asked, value, run_id), by):
                state.apply(event)
                events.append(event)
        elif not _same(ours[0], posted):
            raise _second(run_id, node_id, ours[0])
    events += state.take_emitted()
    now = time.time()
    batch = [wrap(item, run_id, log.seq + n, now) for n, item in enumerate(events, 1)]
    fenced = "fence" in _parameters(store.append)
    if fenced:
        await store.append(run_id, batch, fence=owner)
    else:
        await store.append(run_id, batch)
    if inbox:
        await store.delete_run(inbox_of(run_id))
    return "recorded"


def _parameters(function: Any) -> Mapping[str, Any]:
    import inspect

    return inspect.signature(function).parameters


def _take_entry(state: GraphState, entry: StreamEvent) -> list[GraphEvent]:
    """The events an inbox entry adds to ``state`` (applied): none if its question was
    answered meanwhile or the node no longer waits (the poster finds out and says so)."""
    data = entry.data
    node_id = str(data.get("node", ""))
    rec = state.nodes.get(node_id)
    if rec is None or not rec.waiting or len(rec.answers) != data.get("index"):
        return []
    events: list[GraphEvent] = []
    for event in answers_for(state, node_id, data.get("answer"), str(data.get("by", ""))):
        state.apply(event)
        events.append(event)
    return events


async def _post(store: RunStore, run_id: str, node_id: str, index: int, value: Any, by: str) -> StreamEvent:
    """Append the answer to the run's inbox; refused if one for the same question is there."""
    inbox = inbox_of(run_id)
    data = {"node": node_id, "index": index, "answer": value, "by": by, "id": uuid.uuid4().hex}
    for _ in range(_ATTEMPTS):
        queued = await store.events(inbox)
        for entry in queued:
            if entry.data.get("node") == node_id and entry.data.get("index") == index:
                who = f" by {entry.data.get('by')}" if entry.data.get("by") else ""
                raise GraphError(
                    f"node {node_id!r} of run {run_id} already has an answer on its way "
                    f"({_shown(entry.data.get('answer'))}{who}); a second answer is refused"
                )
        seq = queued[-1].seq + 1 if queued else 1
        event = StreamEvent(EventType.GRAPH_INTERRUPT_ANSWERED, inbox, seq, time.time(), data, node_id)
        try:
            await store.append(inbox, [event])
            return event
        except SequenceConflictError:
            continue  # another answer got in first: read again
    raise GraphError(f"run {run_id}'s inbox kept changing while answering; try again")


class Inbox:
    """The driving process's side: answers other processes posted for the run it drives."""

    __slots__ = ("_id", "_store")

    def __init__(self, store: RunStore, run_id: str) -> None:
        self._store = store
        self._id = inbox_of(run_id)

    async def entries(self) -> list[StreamEvent]:
        """What is queued now."""
        return await self._store.events(self._id)

    async def take(self, run: GraphRun) -> int:
        """Record every queued answer that still fits in ``run``; empty the inbox once the log
        holds them.  Returns how many were taken."""
        taken = 0
        for _ in range(_ATTEMPTS):
            entries = await self.entries()
            if not entries:
                return taken
            taken += self.absorb(run, entries)
            await run.flushed()  # in the log before the inbox forgets them
            if len(await self.entries()) == len(entries):
                await self._store.delete_run(self._id)
                return taken
        return taken

    @staticmethod
    def absorb(run: GraphRun, entries: Sequence[StreamEvent]) -> int:
        """Record the entries that still fit in ``run`` (without flushing); how many did."""
        taken = 0
        for entry in entries:
            data = entry.data
            rec = run.state.nodes.get(str(data.get("node", "")))
            if rec is None or not rec.waiting or len(rec.answers) != data.get("index"):
                continue  # answered meanwhile, or the node moved on: the poster is told
            run.answer(str(data["node"]), data.get("answer"), by=str(data.get("by", "")))
            taken += 1
        return taken
