"""Submitting runs to Temporal, waiting for them, cancelling them; running a worker.

```python
backend = await TemporalBackend.connect("127.0.0.1:7233", store=open_store(url))
run_id = await backend.submit("myapp.graphs:report", payload={"topic": "tides"})
result = await backend.result(run_id)  # a GraphResult, read from the store
```

The run's id is its workflow id.  Its events are in ``store`` (the one every worker
uses: PostgreSQL for workers on many machines), so everything that reads stored runs
(``orchestrate runs/show/cancel``, the HTTP API, SSE, reports) works on it as on a
local run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from ...errors import ConfigError, OrchestrationError, RunNotFoundError
from ...stores.base import RunStore
from ._sdk import ApplicationError, Client, Worker
from .activities import RunActivities
from .targets import TargetSpec
from .wire import WORKFLOW_NAME
from .workflow import RunWorkflow

__all__ = [
    "DEFAULT_TASK_QUEUE",
    "TemporalBackend",
    "TemporalRunError",
    "connect",
    "run_worker",
    "stored_result",
    "worker_for",
]

#: The task queue runs go to and workers poll unless told otherwise.
DEFAULT_TASK_QUEUE = "orchestration"


class TemporalRunError(OrchestrationError):
    """A Temporal run could not run (its target failed to load, its graph is invalid...)."""


def _runner(sandboxed: bool) -> Any:
    """How workflow code runs.  Unsandboxed by default: the workflow's logic is the pure
    core (no I/O, clock or randomness), which Temporal's replayer checks in the tests, and
    the sandbox's import checks cost more CPU per workflow task than the core itself."""
    from temporalio.worker import UnsandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    if not sandboxed:
        return UnsandboxedWorkflowRunner()
    # The core is pure and shared (passed through) rather than re-imported per run.
    restrictions = SandboxRestrictions.default.with_passthrough_modules("orchestration", "msgspec")
    return SandboxedWorkflowRunner(restrictions=restrictions)


async def connect(address: str, namespace: str = "default") -> Client:
    """A Temporal client, with a one-line error when the server cannot be reached."""
    if not address or ":" not in address:
        raise ConfigError(f"--temporal needs HOST:PORT (e.g. 127.0.0.1:7233), not {address!r}")
    try:
        return await Client.connect(address, namespace=namespace)
    except RuntimeError as error:
        raise ConfigError(f"cannot reach the Temporal server at {address}: {error}") from None


def worker_for(
    client: Client,
    store: RunStore,
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
    concurrency: int = 100,
    sandboxed: bool = False,
) -> Worker:
    """A worker that runs workflows and activities of runs on ``task_queue`` (not started).

    ``sandboxed=True`` runs the workflow in Temporal's sandbox (slower, same results)."""
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, not {concurrency}")
    activities = RunActivities(store)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RunWorkflow],
        activities=activities.all(),
        max_concurrent_activities=concurrency,
        workflow_runner=_runner(sandboxed),
        # A dead worker's cached workflows move to a live one after this (default 10s); a live
        # worker slower than this to take its next task replays the run's history instead.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=5),
    )


async def run_worker(
    address: str,
    store: RunStore,
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
    concurrency: int = 100,
    namespace: str = "default",
    on_ready: Callable[[], Any] | None = None,
) -> None:
    """Run a worker until cancelled (``orchestrate worker``); ``on_ready()`` once it polls."""
    client = await connect(address, namespace)
    async with worker_for(client, store, task_queue=task_queue, concurrency=concurrency):
        if on_ready is not None:
            on_ready()
        await asyncio.Event().wait()


class TemporalBackend:
    """Runs on Temporal workers: submit, wait, read results, cancel."""

    def __init__(self, client: Client, store: RunStore, *, task_queue: str = DEFAULT_TASK_QUEUE) -> None:
        self.client = client
        self.store = store
        self.task_queue = task_queue

    @classmethod
    async def connect(
        cls,
        address: str,
        *,
        store: RunStore | None = None,
        task_queue: str = DEFAULT_TASK_QUEUE,
        namespace: str = "default",
    ) -> TemporalBackend:
        """Connect to the Temporal server at ``address`` (``HOST:PORT``)."""
        if store is None:
            from ...stores import default_store

            store = default_store()
        return cls(await connect(address, namespace), store, task_queue=task_queue)

    async def submit(
        self,
        target: str,
        *,
        payload: Any = None,
        run_id: str | None = None,
        title: str = "",
        task: str = "",
        context: Mapping[str, Any] | None = None,
        provider: str | None = None,
        model: str | None = None,
        options: Mapping[str, Any] | None = None,
        handlers: str | None = None,
        concurrency: int = 100,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float = 2.0,
        max_attempts: int = 0,
        task_timeout: float = 10.0,
    ) -> str:
        """Start a run of ``target`` (see :mod:`.targets`) on the workers; its run id.

        ``heartbeat_seconds``: how often a running node tells Temporal its worker lives;
        after three missed beats its node goes to another worker.  ``max_attempts``: how
        often a node's activity is tried when workers die (0: until it completes).
        ``task_timeout``: how long one workflow task may take (Temporal's default, 10s); a
        run of many thousands of nodes needs more when a worker has to replay its history.
        """
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, not {concurrency!r}")
        if not heartbeat_seconds > 0 or not lease_seconds > 0:
            raise ConfigError("heartbeat_seconds and lease_seconds must be > 0")
        run_id = run_id or uuid.uuid4().hex[:16]
        spec = TargetSpec(target, provider, model, dict(options or {}), handlers)
        request = {
            "run_id": run_id,
            "owner": f"temporal:{run_id}:{uuid.uuid4().hex[:8]}",
            "target": spec.to_dict(),
            "payload": payload,
            "title": title,
            "task": task,
            "context": dict(context or {}),
            "concurrency": concurrency,
            "lease_seconds": float(lease_seconds),
            "heartbeat_seconds": float(heartbeat_seconds),
            "max_attempts": int(max_attempts),
        }
        from temporalio.exceptions import WorkflowAlreadyStartedError

        try:
            await self.client.start_workflow(
                WORKFLOW_NAME,
                request,
                id=run_id,
                task_queue=self.task_queue,
                task_timeout=timedelta(seconds=task_timeout),
            )
        except WorkflowAlreadyStartedError:
            raise ConfigError(f"run {run_id!r} is already running on Temporal") from None
        return run_id

    async def wait(self, run_id: str) -> dict[str, Any]:
        """Wait for the run's workflow to end; ``{"run_id", "status", "error"}``."""
        from temporalio.client import WorkflowFailureError
        from temporalio.service import RPCError

        handle = self.client.get_workflow_handle(run_id)
        try:
            outcome: dict[str, Any] = await handle.result()
        except WorkflowFailureError as error:
            cause: Any = error.cause
            while getattr(cause, "cause", None) is not None and not isinstance(cause, ApplicationError):
                cause = cause.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
            raise TemporalRunError(f"run {run_id} failed on Temporal: {message}") from None
        except RPCError as error:
            raise RunNotFoundError(f"no Temporal run {run_id!r}: {error}") from None
        return outcome

    async def result(self, run_id: str) -> Any:
        """Wait for the run, then its result as a local run returns it (read from the store)."""
        await self.wait(run_id)
        return await stored_result(self.store, run_id)

    async def cancel(self, run_id: str) -> bool:
        """Ask the run to stop (through the store, as ``orchestrate cancel`` does)."""
        return await self.store.request_cancel(run_id)


async def stored_result(store: RunStore, run_id: str) -> Any:
    """A stored graph run's :class:`~orchestration.graph.GraphResult`, or an orchestrator
    run's :class:`~orchestration.models.OrchestratorResult`."""
    from ...engine.core import GraphState, decode, is_graph_event
    from ...engine.graphresult import build_result
    from ...engine.state import RunState

    events = await store.events(run_id)
    if not events:
        raise RunNotFoundError(f"no run {run_id!r} in the store")
    state = GraphState()
    rest = []
    for event in events:
        if is_graph_event(event):
            state.apply(decode(event))
        else:
            rest.append(event)
    state.take_emitted()
    from .orchestrator import is_orchestrator_run, orchestrator_result

    if is_orchestrator_run(events):
        return orchestrator_result(run_id, events)
    return build_result(run_id, state, RunState.from_events(run_id, rest).usage)
