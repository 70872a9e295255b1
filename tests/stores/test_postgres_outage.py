"""PostgreSQL goes away in the middle of a run: no call is paid for that cannot be stored.

Each test runs its own PostgreSQL server (``initdb`` in a temporary folder, a free port),
holds two model calls in flight at a counting provider, stops the server, lets the calls
answer, and checks that no further call is sent while the database is down.  Then either
the server comes back and the run completes with every event stored, or it stays down
past the store's ``outage_timeout`` and the run fails with one line naming the store;
``resume`` then re-pays at most the two calls that were in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from orchestration import OrchestratorConfig
from orchestration.events import EventType
from orchestration.llm import Completion, CompletionRequest
from orchestration.models import TaskStatus
from orchestration.usage import Usage
from tests.conftest import require_service
from tests.core.helpers import GraphOrchestrator, fan

from .pgserver import PostgresServer, postgres_binaries

pytestmark = pytest.mark.postgres

SUBTASKS = 8
HOLD_AT, HOLDING = 3, 2  # calls 3 and 4 are in flight when the database stops


class HeldProvider:
    """Counts every call it is sent; calls ``HOLD_AT``.. wait for :attr:`release`."""

    name = "held"
    model = "held-model"

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.waiting = 0
        self.all_held = asyncio.Event()
        self.release = asyncio.Event()
        self.new_call = asyncio.Event()

    async def complete(self, request: CompletionRequest) -> Completion:
        self.prompts.append(str(request.messages[-1]["content"]))
        self.new_call.set()
        number = len(self.prompts)
        if HOLD_AT <= number < HOLD_AT + HOLDING:
            self.waiting += 1
            if self.waiting == HOLDING:
                self.all_held.set()
            await self.release.wait()
        usage = Usage(input_tokens=10, output_tokens=5, calls=1)
        return Completion(f"answer {number}", usage, request.model or self.model)


class StoreRetries(logging.Handler):
    """Counts the Postgres store's failed append attempts (it logs one per retry)."""

    def __init__(self, enough: int) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.enough = enough
        self.first = asyncio.Event()  # records are logged on the event loop's thread
        self.reached = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying for up to" in record.getMessage() or "attempt" in record.getMessage():
            self.count += 1
            self.first.set()
            if self.count >= self.enough:
                self.reached.set()


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    binaries = postgres_binaries()
    require_service("PostgreSQL binaries (initdb, pg_ctl)", binaries is not None, "install postgresql")
    assert binaries is not None
    instance = PostgresServer(binaries)
    try:
        instance.start()
        yield instance
    finally:
        instance.remove()


@pytest.fixture
def retries() -> Iterator[StoreRetries]:
    logger = logging.getLogger("orchestration.stores")
    handler = StoreRetries(enough=4)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _orchestrator(provider: HeldProvider, store: Any, **config: Any) -> GraphOrchestrator:
    options = {"max_concurrent_agents": 2, "max_retries": 0, **config}
    return GraphOrchestrator(OrchestratorConfig(**options), provider, subtasks=fan(SUBTASKS), store=store)


async def _stop_with_calls_in_flight(server: PostgresServer, provider: HeldProvider) -> None:
    await provider.all_held.wait()
    assert len(provider.prompts) == HOLD_AT + HOLDING - 1
    await asyncio.to_thread(server.stop)
    provider.new_call.clear()
    provider.release.set()  # the calls in flight answer while the database is down


async def test_no_calls_while_postgres_is_down_and_the_run_goes_on_when_it_is_back(
    server: PostgresServer, retries: StoreRetries
) -> None:
    from orchestration.stores.postgres import PostgresStore

    store = PostgresStore(server.dsn, outage_timeout=300, connect_timeout=2)
    provider = HeldProvider()
    go = asyncio.Event()

    async def late_caller(orch: GraphOrchestrator, subtask: Any, context: Any) -> str:
        await go.wait()  # a free agent that wants to call the model while the database is down
        return (await orch.call_llm(f"Subtask: {subtask.description}")).content

    # Three agents at a time: two calls are held in flight, the third agent calls on `go`.
    orch = _orchestrator(provider, store, max_concurrent_agents=3)
    orch.behaviour["s2"] = late_caller
    try:
        async with asyncio.timeout(240):  # only turns a hang into a failure
            run = asyncio.create_task(orch.execute_workflow("task"))
            await _stop_with_calls_in_flight(server, provider)
            await retries.first.wait()  # the store noticed: the answers just received are not stored
            go.set()
            sent = asyncio.create_task(provider.new_call.wait())
            retried = asyncio.create_task(retries.reached.wait())
            await asyncio.wait([sent, retried], return_when=asyncio.FIRST_COMPLETED)
            sent.cancel()
            retried.cancel()
            assert not provider.new_call.is_set(), "a model call was sent while the store was down"
            assert len(provider.prompts) == HOLD_AT + HOLDING - 1
            await asyncio.to_thread(server.start)
            result = await run
        assert result.status is TaskStatus.COMPLETED, result.error
        assert len(provider.prompts) == SUBTASKS + 1  # every subtask and the synthesis, each paid once
        assert len(set(provider.prompts)) == SUBTASKS + 1
        stored = await store.events(result.task_id)
        assert [event.seq for event in stored] == list(range(1, len(stored) + 1))
        assert stored[-1].event_type is EventType.WORKFLOW_COMPLETE
        assert sum(event.event_type is EventType.COST_UPDATE for event in stored) == SUBTASKS + 1
    finally:
        await store.close()


async def test_a_store_that_stays_down_fails_the_run_in_one_line_and_resume_repays_only_calls_in_flight(
    server: PostgresServer,
) -> None:
    from orchestration.stores.postgres import PostgresStore

    store = PostgresStore(server.dsn, outage_timeout=1.5, connect_timeout=2)
    provider = HeldProvider()
    try:
        async with asyncio.timeout(240):
            run = asyncio.create_task(_orchestrator(provider, store, lease_seconds=1).execute_workflow("t"))
            await _stop_with_calls_in_flight(server, provider)
            result = await run
        assert len(provider.prompts) == HOLD_AT + HOLDING - 1  # nothing was sent after the outage began
        assert result.status is TaskStatus.FAILED
        error = result.error or ""
        assert "\n" not in error and "Traceback" not in error
        assert f"Postgres store 127.0.0.1:{server.port}/postgres" in error and "outage_timeout" in error
    finally:
        await store.close()

    await asyncio.to_thread(server.start)
    paid = list(provider.prompts)
    store = PostgresStore(server.dsn)
    try:
        async with asyncio.timeout(240):
            resumed = await _orchestrator(provider, store, lease_seconds=1).resume(result.task_id, wait=True)
    finally:
        await store.close()
    assert resumed.status is TaskStatus.COMPLETED, resumed.error
    repaid = [prompt for prompt in provider.prompts[len(paid) :] if prompt in paid]
    assert len(repaid) <= HOLDING  # only the calls in flight when the database went away
    assert set(provider.prompts) >= {f"Subtask: part {i}" for i in range(SUBTASKS)}
