"""Stored runs from the command line: ``runs``, ``show``, ``resume``, ``replay``, ``cancel``."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from typing import Any, TextIO

from ..base import BaseOrchestrator
from ..engine.leases import leased_message
from ..errors import ConfigError, RunLeasedError, RunNotFoundError
from ..events import EventType
from ..models import OrchestratorResult, TaskStatus
from ..progress import format_usd_cell
from ..stores.base import RunStore, RunSummary
from ..utils import format_duration
from .common import (
    add_display_options,
    add_store_option,
    escape,
    guardrails_from,
    open_cli_store,
    print_result,
    recorded_of,
    result_to_json,
    run_with_display,
)
from .options import recorded_options

__all__ = ["add_commands", "handle"]

COMMANDS = ("runs", "show", "resume", "replay", "cancel", "prune", "answer")


def add_commands(commands: Any) -> None:
    """Register the history subcommands on the main parser."""
    runs = commands.add_parser("runs", help="list stored runs with status, cost and age")
    runs.add_argument("--status", choices=[str(s) for s in TaskStatus], help="only runs with this status")
    runs.add_argument("--limit", type=int, default=50)
    runs.add_argument("--json", action="store_true", help="a JSON list")
    add_store_option(runs)

    show = commands.add_parser("show", help="print a stored run's result and history")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true")
    show.add_argument(
        "--mermaid", action="store_true", help="print the run's graph as Mermaid flowchart text"
    )
    add_store_option(show)

    resume = commands.add_parser("resume", help="continue an interrupted or paused run")
    resume.add_argument("run_id")
    resume.add_argument("--provider", help="provider to continue with (default: the one the run used)")
    resume.add_argument(
        "--wait",
        action="store_true",
        help="wait (up to one lease period) for the lease of the process driving the run to expire: "
        "one that died on another machine, or is stuck (a dead process on this machine is taken over "
        "without waiting)",
    )
    resume.add_argument(
        "--policies", metavar="FILE", help="guardrail policies (YAML) to enforce from here on"
    )
    resume.add_argument(
        "--answer",
        action="append",
        default=[],
        metavar="NODE=VALUE",
        help="answer the question NODE waits on first (VALUE: JSON, or else text); repeatable",
    )
    add_display_options(resume)
    add_store_option(resume)

    replay = commands.add_parser("replay", help="re-run a recorded run with zero provider calls")
    replay.add_argument("run_id")
    replay.add_argument("--live", action="store_true", help="send requests missing from the recording live")
    replay.add_argument("--provider", help="provider for --live (default: the one the run used)")
    add_display_options(replay)
    add_store_option(replay)

    cancel = commands.add_parser("cancel", help="cancel a run, whichever process is running it")
    cancel.add_argument("run_id")
    add_store_option(cancel)

    answer = commands.add_parser("answer", help="answer the question a paused run's node waits on")
    answer.add_argument("run_id")
    answer.add_argument("node", help="the id of the node (or workflow step) that asked")
    answer.add_argument("answer", help="the answer: JSON (true, 3, {...}) or else text")
    answer.add_argument(
        "--text", action="store_true", help="take the answer as text even if it is valid JSON"
    )
    answer.add_argument("--by", default="", help="who answers (recorded with the answer)")
    add_store_option(answer)

    prune = commands.add_parser("prune", help="delete old finished runs (retention), then vacuum")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="finished runs older than DAYS")
    prune.add_argument("--keep", type=int, metavar="N", help="keep only the newest N finished runs")
    prune.add_argument("--vacuum", action="store_true", help="reclaim the space afterwards")
    add_store_option(prune)


async def handle(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run one history command; returns the exit status."""
    store = open_cli_store(args)
    try:
        if args.command == "runs":
            return await _runs(store, args, out)
        if args.command == "show":
            return await _show(store, args, out)
        if args.command == "prune":
            if args.older_than is None and args.keep is None:
                raise ConfigError("prune needs --older-than DAYS and/or --keep N")
            deleted = await store.prune(older_than_days=args.older_than, keep_last=args.keep)
            if args.vacuum and hasattr(store, "vacuum"):
                await store.vacuum()
            print(f"deleted {deleted} run(s)", file=err)
            return 0
        if args.command == "answer":
            return await _answer(store, args, err)
        if args.command == "cancel":
            summary = await store.get_run(args.run_id)
            if summary is None:
                raise RunNotFoundError(f"no run {args.run_id!r} in the store")
            if summary.status.is_terminal:
                print(f"run {args.run_id} already ended ({summary.status}); nothing to cancel", file=err)
                return 1
            await store.request_cancel(args.run_id)
            print(f"cancellation of run {args.run_id} requested", file=err)
            return 0
        if args.command == "resume" and await _is_graph_run(store, args.run_id):
            from .answering import resume_graph

            return await resume_graph(store, args, out, err)
        if args.command == "resume" and args.answer:
            if not await _asks_questions(store, args.run_id):
                raise ConfigError(
                    f"run {args.run_id} is an orchestrator run: it asks no questions to answer; "
                    f"continue it with orchestrate resume {args.run_id}"
                )
            from .answering import answer_all  # a planner run: answered, then resumed below

            await answer_all(store, args, err)
        orchestrator = await _orchestrator_for(store, args)
        result: OrchestratorResult
        if args.command == "resume":
            try:
                result = await run_with_display(
                    lambda cb: orchestrator.resume(args.run_id, cb, wait=args.wait),
                    lambda: orchestrator.cancel(args.run_id),
                    args,
                    err,
                )
            except RunLeasedError as error:
                if error.lease_seconds is None:
                    raise
                raise RunLeasedError(
                    leased_message(
                        args.run_id,
                        error.holder,
                        error.lease_seconds,
                        waited=error.waited,
                        wait_hint="add --wait",
                    )
                ) from None
            recorded = None
        else:
            result = await run_with_display(
                lambda cb: orchestrator.replay(args.run_id, live=args.live, stream_callback=cb),
                orchestrator.cancel,
                args,
                err,
            )
            recorded = recorded_of(await store.events(result.run_id))
        print_result(result, args, out, recorded)
        return 0 if result.status is TaskStatus.COMPLETED else 1
    finally:
        await store.close()


async def _runs(store: RunStore, args: argparse.Namespace, out: TextIO) -> int:
    status = TaskStatus(args.status) if args.status else None
    runs = await store.list_runs(status=status, limit=args.limit)
    if args.json:
        rows = []
        for run in runs:
            row = run.to_dict()
            row.update(replay_of=run.metadata.get("replay_of"), spent_usd=_spent(run))
            rows.append(row)
        json.dump(rows, out, indent=2)
        out.write("\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(runs)} run(s)")
    table.add_column("run", no_wrap=True, min_width=16)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("spent", justify="right", no_wrap=True, min_width=8)
    table.add_column("age", justify="right", no_wrap=True, min_width=5)
    for column in ("orchestrator", "title"):
        table.add_column(column)
    now = time.time()
    replays = 0
    for run in runs:
        replay_of = run.metadata.get("replay_of")
        replays += replay_of is not None
        table.add_row(
            run.run_id if replay_of is None else f"{run.run_id}\n replay of\n {escape(str(replay_of))}",
            str(run.status),
            format_usd_cell(_spent(run)),
            format_duration(now - run.created_at),
            escape(run.orchestrator),
            escape(run.title),
        )
    console = Console(file=out, highlight=False)
    console.print(table)
    recorded = sum(run.total_cost - _spent(run) for run in runs)
    note = (
        f" ({replays} replay(s): {format_usd_cell(recorded)} recorded, not counted again)" if replays else ""
    )
    console.print(f"spent: {format_usd_cell(sum(_spent(run) for run in runs))} over {len(runs)} run(s){note}")
    return 0


def _spent(run: RunSummary) -> float:
    """What the run paid providers: a replay's recorded answers cost nothing again."""
    recorded = run.metadata.get("recorded_cost", 0.0)
    return max(run.total_cost - (float(recorded) if isinstance(recorded, (int, float)) else 0.0), 0.0)


async def _show(store: RunStore, args: argparse.Namespace, out: TextIO) -> int:
    events = await store.events(args.run_id)
    if not events:
        raise RunNotFoundError(f"no run {args.run_id!r} in the store")
    if args.mermaid:
        from ..graph.mermaid import ran

        out.write(ran(events))
        return 0
    from ..engine.state import RunState

    result = RunState.from_events(args.run_id, events).to_result()
    recorded = recorded_of(events)
    if args.json:
        shown = {
            "run_id": result.run_id,
            "result": result_to_json(result, recorded),
            "events": [e.to_dict() for e in events],
        }
        json.dump(shown, out, indent=2)
        out.write("\n")
        return 0
    print_result(result, args, out, recorded)
    start = events[0].timestamp
    for event in events:
        detail = event.data.get("error") or event.data.get("subtask_id") or ""
        out.write(
            f"{event.seq:>5} +{event.timestamp - start:8.3f}s {event.event_type:<28} "
            f"{event.agent_id or '':<20} {str(detail)[:60]}\n"
        )
    return 0


async def _answer(store: RunStore, args: argparse.Namespace, err: TextIO) -> int:
    from .answering import answer_from_cli, parse_value

    value = args.answer if args.text else parse_value(args.answer)
    print(await answer_from_cli(store, args.run_id, args.node, value, by=args.by), file=err)
    return 0


async def _asks_questions(store: RunStore, run_id: str) -> bool:
    """True for an orchestrator on the graph runtime (the planner): its guardrail pauses
    are questions, answered like a graph run's."""
    from ..engine.core import is_graph_event

    return any(is_graph_event(event) for event in await store.events(run_id))


async def _is_graph_run(store: RunStore, run_id: str) -> bool:
    from ..engine.core import is_graph_event

    first = await store.events(run_id)
    if not first:
        raise RunNotFoundError(f"no run {run_id!r} in the store")
    payload = first[0].data.get("payload")
    if isinstance(payload, Mapping) and payload.get("orchestrator_class"):
        return False  # an orchestrator on the graph runtime (the planner): resumed as one
    return is_graph_event(first[0])


async def _orchestrator_for(store: RunStore, args: argparse.Namespace) -> BaseOrchestrator:
    """Rebuild the orchestrator a stored run used (class, config, provider)."""
    from ..registry import resolve_orchestrator, resolve_provider

    events = await store.events(args.run_id, after_seq=0)
    start = next((e for e in events if e.event_type is EventType.WORKFLOW_START), None)
    if start is None:
        raise RunNotFoundError(f"no run {args.run_id!r} in the store")
    info: Mapping[str, Any] = start.data
    if not info.get("orchestrator_class") and isinstance(info.get("payload"), Mapping):
        info = info["payload"]  # a front end on the graph runtime (the planner) records it there
    class_path = info.get("orchestrator_class")
    if not class_path:
        raise ConfigError(f"run {args.run_id} does not record its orchestrator class")
    if str(class_path).startswith("__main__:"):
        name = str(class_path).split(":", 1)[1]
        raise ConfigError(
            f"run {args.run_id} was started by a script that defines {name} itself (__main__), which "
            f"the command line cannot import; resume it from that script with "
            f"await {name}(...).resume({args.run_id!r})"
        )
    cls = resolve_orchestrator(str(class_path))
    config = cls.config_class.from_dict(dict(info.get("config") or {}))
    provider_name = args.provider or str(info.get("provider") or "")
    if not provider_name:
        raise ConfigError(f"run {args.run_id} does not record its provider; pass --provider NAME")
    provider = resolve_provider(provider_name, config.primary_model)
    labels = info.get("labels")
    extra: dict[str, Any] = {}
    if isinstance(labels, Mapping) and labels:  # a class without labels= still rebuilds when none were used
        extra = {"labels": dict(labels), **recorded_options(labels)}
    try:  # the constructor options the CLI recorded in the labels rebuild the same orchestrator
        return cls(config, provider, store=store, guardrails=guardrails_from(args), **extra)
    except TypeError as error:
        raise ConfigError(
            f"cannot rebuild {cls.__name__} from the command line ({error}); resume it from Python with "
            f"await orchestrator.resume({args.run_id!r})"
        ) from error
