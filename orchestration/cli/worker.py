"""``orchestrate worker --temporal HOST:PORT`` and ``orchestrate run ... --temporal HOST:PORT``.

A worker runs the workflows and node activities of runs on its task queue, writing their
events to its store (``--store``, or ``$ORCHESTRATION_DATABASE_URL``: PostgreSQL when
workers run on several machines).  ``run --temporal`` submits a run instead of running
it here, follows its events in the same store (the live display), and prints its result;
``--detach`` prints the run id and returns at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any, TextIO

from ..errors import ConfigError
from ..events import TERMINAL_EVENTS, StreamEvent
from ..models import OrchestratorResult, TaskStatus
from .common import add_store_option, open_cli_store, print_result, run_with_display

__all__ = ["add_temporal_options", "add_worker_command", "run_on_temporal", "run_worker_command"]

_FOLLOW_SECONDS = 0.2


def add_temporal_options(parser: argparse.ArgumentParser) -> None:
    """``--temporal``, ``--task-queue``, ``--detach`` for ``orchestrate run``."""
    parser.add_argument(
        "--temporal",
        metavar="HOST:PORT",
        help="submit the run to Temporal workers (orchestrate worker) instead of running it here",
    )
    parser.add_argument("--task-queue", default=None, help="the workers' task queue (default: orchestration)")
    parser.add_argument(
        "--detach", action="store_true", help="with --temporal: print the run id, do not wait"
    )


def add_worker_command(commands: Any) -> None:
    """Register ``orchestrate worker``."""
    worker = commands.add_parser("worker", help="run a Temporal worker for runs submitted with --temporal")
    worker.add_argument("--temporal", metavar="HOST:PORT", required=True, help="the Temporal server")
    worker.add_argument("--task-queue", default=None, help="the task queue to poll (default: orchestration)")
    worker.add_argument("--namespace", default="default", help="the Temporal namespace (default: default)")
    worker.add_argument(
        "--concurrency", type=int, default=100, metavar="N", help="node activities at once (default: 100)"
    )
    add_store_option(worker)


def run_worker_command(args: argparse.Namespace, err: TextIO) -> int:
    """``orchestrate worker``: run until interrupted."""
    from ..backends.temporal import DEFAULT_TASK_QUEUE, run_worker

    if args.concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, not {args.concurrency}")
    queue = args.task_queue or DEFAULT_TASK_QUEUE
    store = open_cli_store(args)

    def announce() -> None:
        print(
            f"worker polling task queue {queue!r} on {args.temporal} (concurrency {args.concurrency})",
            file=err,
            flush=True,
        )

    async def main() -> None:
        try:
            await run_worker(
                args.temporal,
                store,
                task_queue=queue,
                concurrency=args.concurrency,
                namespace=args.namespace,
                on_ready=announce,
            )
        finally:
            await store.close()

    asyncio.run(main())
    return 0


async def run_on_temporal(
    args: argparse.Namespace, options: dict[str, Any], context: dict[str, Any], out: TextIO, err: TextIO
) -> int:
    """``orchestrate run TARGET TASK --temporal HOST:PORT``: submit, follow, print the result."""
    from ..backends.temporal import DEFAULT_TASK_QUEUE, TemporalBackend

    store = open_cli_store(args)
    try:
        backend = await TemporalBackend.connect(
            args.temporal, store=store, task_queue=args.task_queue or DEFAULT_TASK_QUEUE
        )
        run_id = await backend.submit(
            args.pattern,
            payload=args.task,
            task=args.task,
            title=args.title or "",
            context=context,
            provider=getattr(args, "provider", None) or ("scripted" if args.command == "demo" else None),
            model=args.model,
            options=options,
        )
        if args.detach:
            print(run_id, file=out)
            return 0
        outcome: dict[str, Any] = {}

        async def start(callback: Any) -> Any:
            follow = asyncio.ensure_future(_follow(store, run_id, callback))
            try:
                outcome.update(await backend.wait(run_id))
                await follow
            finally:
                follow.cancel()
            return await backend.result(run_id)

        requests: list[asyncio.Task[bool]] = []

        def cancel() -> None:  # Ctrl-C: ask the workers to stop the run, then wait for its end
            requests.append(asyncio.get_running_loop().create_task(store.request_cancel(run_id)))

        result = await run_with_display(start, cancel, args, err)
        await asyncio.gather(*requests)
    finally:
        await store.close()
    if isinstance(result, OrchestratorResult):
        print_result(result, args, out)
        return 0 if result.status is TaskStatus.COMPLETED else 1
    data = {
        "run_id": result.run_id,
        "status": result.status,
        "error": result.error,
        "outputs": {node: result.output(node) for node in result.outputs if result.outputs[node]},
        "total_cost": result.total_cost,
    }
    json.dump(data, out, ensure_ascii=False, indent=2, default=str)
    out.write("\n")
    return 0 if result.status == "completed" else 1


async def _follow(store: Any, run_id: str, callback: Any) -> None:
    """Hand the run's stored events to ``callback`` as they arrive, until it ends."""
    seq = 0
    while True:
        events: list[StreamEvent] = await store.events(run_id, after_seq=seq)
        for event in events:
            outcome = callback(event)
            if asyncio.iscoroutine(outcome):
                await outcome
            seq = event.seq
            if event.event_type in TERMINAL_EVENTS:
                return
        await asyncio.sleep(_FOLLOW_SECONDS)
