"""A board: a task graph kept in a run store, worked by agents that claim and deliver.

Seed 000's model.  No handlers run here: planners change the graph and agents pull
work through the tools in :mod:`orchestration.graph.tools` (``get_task`` claims the best
READY node, critical path first, under a lease; ``finish_task`` delivers it).  The board
is an ordinary run in the store (run id ``board-<name>``) whose events are the graph
core's, so the same fold gives its state and any number of processes can share it: each
change is checked against the freshly folded state and appended with the next sequence
number, and a writer that lost a race re-reads the log and tries again.

The tools are synchronous (the signature models and seed 000 use); a board runs its
store on a private event loop thread, so it works from plain scripts and, briefly
blocking, from inside async code.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..engine.core.events import GraphEvent, NodeStarted, RunStarted, decode, is_graph_event, wrap
from ..engine.core.spec import NodeState
from ..engine.core.state import GraphState
from ..errors import ConfigError, GraphError, OrchestrationError, SequenceConflictError

if TYPE_CHECKING:
    from ..events import StreamEvent
    from ..stores import RunStore

__all__ = ["Board", "Claim", "open_board"]

T = TypeVar("T")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: How often a change is retried after another writer appended first.
_ATTEMPTS = 50


class Claim:
    """Who holds an ACTIVE node, for which visit, until when (wall-clock seconds)."""

    __slots__ = ("agent", "lease_until", "visit")

    def __init__(self, agent: str, visit: int, lease_until: float | None) -> None:
        self.agent = agent
        self.visit = visit
        self.lease_until = lease_until


class Board:
    """A graph in a store, shared by planners and agents (see the module docstring)."""

    def __init__(self, store: RunStore, name: str, *, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"board name {name!r}: use 1-100 letters, digits, '.', '_' or '-'")
        self.store = store
        self.name = name
        self.run_id = f"board-{name}"
        self.clock = clock
        self.state = GraphState()
        self.claims: dict[str, Claim] = {}
        self.seq = 0
        self.log: list[tuple[int, float, GraphEvent]] = []  # (seq, timestamp, event) for history
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- the store, from synchronous code ---------------------------------------------

    def _call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=f"board-{self.name}", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result()

    def close(self) -> None:
        """Stop the board's loop thread (the store stays open: it is the caller's)."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading and changing -----------------------------------------------------------

    def refresh(self) -> GraphState:
        """Fold what other writers appended since the last read; the board's state."""
        with self._lock:
            stored = self._call(lambda: self.store.events(self.run_id, self.seq))
            self._fold(stored)
            if not self.state.started:
                self._append([RunStarted((), (), None, title=f"board {self.name}", orchestrator="board")])
            return self.state

    def _fold(self, stored: Sequence[StreamEvent]) -> None:
        for event in stored:
            self.seq = event.seq
            if not is_graph_event(event):
                continue
            graph_event = decode(event)
            self.state.apply(graph_event)
            self._track(graph_event, event.timestamp)
        self.state.emitted.clear()

    def _track(self, event: GraphEvent, timestamp: float) -> None:
        self.log.append((self.seq, timestamp, event))
        node = getattr(event, "node", None)
        if isinstance(event, NodeStarted):
            self.claims[event.node] = Claim(event.agent, event.visit, event.lease_until)
        elif isinstance(node, str) and node in self.claims and self.state.state_of(node) != NodeState.ACTIVE:
            del self.claims[node]

    def change(self, build: Callable[[GraphState], GraphEvent]) -> GraphEvent:
        """Apply the event ``build`` derives from the fresh state, atomically.

        ``build`` may raise (GraphError, ValueError) to refuse; it is called again on the
        newer state when another writer appended first.
        """
        with self._lock:
            for _ in range(_ATTEMPTS):
                event = build(self.refresh())
                try:
                    self._append([event])
                except _Conflict:
                    continue
                return event
            raise OrchestrationError(f"board {self.name!r}: {_ATTEMPTS} writers raced this change; try again")

    def _append(self, events: Sequence[GraphEvent]) -> None:
        """Fold ``events`` (the core refuses a misfit, changing nothing), then store them."""
        now = self.clock()
        batch: list[StreamEvent] = []
        seq = self.seq
        for event in events:
            self.state.apply(event)  # raises GraphError, recording nothing, if it does not fit
            for item in (event, *self.state.take_emitted()):
                seq += 1
                batch.append(wrap(item, self.run_id, seq, now))
        try:
            self._call(lambda: self.store.append(self.run_id, batch))
        except SequenceConflictError as error:
            self._forget()  # the state holds events the store does not: read it all again
            raise _Conflict from error
        except BaseException:
            self._forget()
            raise
        for stored in batch:
            self.seq = stored.seq
            self._track(decode(stored), now)

    def _forget(self) -> None:
        self.state = GraphState()
        self.claims.clear()
        self.log.clear()
        self.seq = 0


class _Conflict(Exception):
    """Another writer appended between our read and our write."""


def open_board(store: RunStore, name: str) -> Board:
    """The board ``name`` in ``store`` (created on first use)."""
    board = Board(store, name)
    try:
        board.refresh()
    except GraphError:
        board.close()
        raise
    return board
