"""Noticing a hook that blocks the event loop.

An ``async def execute_subtask`` that does blocking work (a synchronous HTTP client, the
seed README's sync ``self.provider.complete(...)``) holds the event loop: other subtasks
cannot run meanwhile, so the run is silently sequential whatever its concurrency.
:class:`timed` runs a hook's coroutine step by step and, the first time one step (the
code between two awaits) takes longer than :data:`BLOCKING_SECONDS`, says once per run,
in a ``warning`` event and the log, what to do instead.  Timing a step costs two clock
reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

from .run import RunContext

__all__ = ["BLOCKING_SECONDS", "report_blocking", "timed"]

logger = logging.getLogger("orchestration")

T = TypeVar("T")

#: A stretch of a hook without an await longer than this is reported.
BLOCKING_SECONDS = 0.1

_KEY = "blocking-hook"


class timed(Generic[T]):
    """Await ``coroutine`` (a hook of ``run``), reporting a step that blocks the loop."""

    __slots__ = ("_agent_id", "_coroutine", "_hook", "_run")

    def __init__(self, coroutine: Coroutine[Any, Any, T], run: RunContext, agent_id: str, hook: str) -> None:
        self._coroutine = coroutine
        self._run = run
        self._agent_id = agent_id
        self._hook = hook

    def __await__(self) -> Generator[Any, Any, T]:
        coroutine = self._coroutine
        clock = time.perf_counter
        value: Any = None
        error: BaseException | None = None
        while True:
            started = clock()
            try:
                yielded = coroutine.send(value) if error is None else coroutine.throw(error)
            except StopIteration as done:
                self._check(clock() - started)
                return done.value  # type: ignore[no-any-return]
            except BaseException:
                self._check(clock() - started)
                raise
            self._check(clock() - started)
            value, error = None, None
            try:
                value = yield yielded
            except BaseException as thrown:  # cancellation and the like go to the hook
                error = thrown

    def _check(self, seconds: float) -> None:
        if seconds > BLOCKING_SECONDS and _KEY not in self._run.warned:
            report_blocking(
                self._run,
                f"{self._agent_id}: {self._hook} ran for {seconds:.2f}s without awaiting, which blocks "
                "the event loop, so other subtasks could not run meanwhile",
            )


def report_blocking(run: RunContext, what: str) -> None:
    """Say once per run (warning event and log) that ``what`` blocked the loop, and the fix."""
    if _KEY in run.warned:
        return
    message = (
        f"{what}; instead use `await self.call_llm(...)`, an async provider, or "
        "`await asyncio.to_thread(...)` for blocking work"
    )
    logger.warning("run %s: %s", run.run_id, message)
    run.warn_once(_KEY, message)
