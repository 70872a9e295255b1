"""What the CLI commands share: the store, running with a display, printing results."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import redact_urls
from ..events import EventType, StreamEvent
from ..models import AgentResult, OrchestratorResult, without_resume_hint
from ..progress import format_usd_cell
from ..replay import RecordedProvider
from ..stores.base import RunStore
from ..usage import Usage
from ..utils import format_duration

if TYPE_CHECKING:
    from ..guardrails import Guardrails

RECORDING = RecordedProvider.name  # the provider named on cost events a recording answered

__all__ = [
    "Recorded",
    "add_display_options",
    "agent_rows",
    "guardrails_from",
    "add_store_option",
    "open_cli_store",
    "print_result",
    "recorded_of",
    "result_to_json",
    "resume_command",
    "run_with_display",
]


def add_store_option(parser: argparse.ArgumentParser) -> None:
    """``--store``: where runs live."""
    parser.add_argument(
        "--store",
        metavar="URL",
        help="where runs are kept: a SQLite path, sqlite:///path, postgresql://..., or memory: "
        "(default: $ORCHESTRATION_DATABASE_URL, else .orchestration/runs.db)",
    )


def add_display_options(parser: argparse.ArgumentParser) -> None:
    """``--json`` and ``--quiet``."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress display")


def guardrails_from(args: argparse.Namespace) -> Guardrails | None:
    """The guardrail policies ``--policies FILE`` names, if any."""
    path = getattr(args, "policies", None)
    if not path:
        return None
    from ..guardrails import Guardrails

    return Guardrails.load(Path(path))


def open_cli_store(args: argparse.Namespace) -> RunStore:
    """The store the command works on."""
    from ..stores import default_store, open_store

    url = getattr(args, "store", None)
    store: RunStore = open_store(url) if url else default_store()
    return store


def resume_command(run_id: str, args: argparse.Namespace) -> str:
    """The command that continues the paused run ``run_id`` in the store this command used
    (``--store`` repeated, its credentials masked)."""
    words = ["orchestrate", "resume", run_id]
    store = getattr(args, "store", None)
    if store:
        words += ["--store", redact_urls(store)]
    return shlex.join(words)


async def run_with_display(
    start: Callable[[Callable[[StreamEvent], Any]], Awaitable[OrchestratorResult]],
    cancel: Callable[[], Any],
    args: argparse.Namespace,
    err: TextIO,
) -> OrchestratorResult:
    """Run ``start(callback)`` with the run id announced and a live display on ``err``.

    Ctrl-C cancels the run cleanly (results so far are kept and printed).
    """
    callbacks: list[Callable[[StreamEvent], Any]] = []

    def announce(event: StreamEvent) -> None:
        if event.event_type in (EventType.WORKFLOW_START, EventType.WORKFLOW_RESUMED):
            verb = "started" if event.event_type is EventType.WORKFLOW_START else "resumed"
            print(f"run {event.run_id} {verb}", file=err, flush=True)

    callbacks.append(announce)
    if not args.quiet:
        from rich.console import Console

        from ..progress import ProgressDisplay

        callbacks.append(
            ProgressDisplay(Console(file=err), resume_command=lambda run_id: resume_command(run_id, args))
        )

    async def fan_out(event: StreamEvent) -> None:
        for callback in callbacks:
            outcome = callback(event)
            if asyncio.iscoroutine(outcome):
                await outcome

    run = asyncio.ensure_future(start(fan_out))
    try:
        return await asyncio.shield(run)
    except asyncio.CancelledError:
        cancel()
        return await run


@dataclass(frozen=True)
class Recorded:
    """What a replay took from its recording instead of paying a provider for."""

    replay_of: str
    calls: int
    tokens: int
    cost: float


def recorded_of(events: Iterable[StreamEvent]) -> Recorded | None:
    """The recorded share of a run's bill, or None if the run is not a replay."""
    replay_of: str | None = None
    calls = tokens = 0
    cost = 0.0
    for event in events:
        if event.event_type is EventType.WORKFLOW_START:
            origin = event.data.get("replay_of")
            if isinstance(origin, Mapping) and origin.get("run_id"):
                replay_of = str(origin["run_id"])
        elif event.event_type is EventType.COST_UPDATE and event.data.get("provider") == RECORDING:
            usage = Usage.from_dict(dict(event.data.get("usage") or {}))
            calls += usage.calls
            tokens += usage.total_tokens
            cost += float(event.data.get("cost", usage.cost_usd))
    return Recorded(replay_of, calls, tokens, cost) if replay_of is not None else None


def result_to_json(result: OrchestratorResult, recorded: Recorded | None = None) -> dict[str, Any]:
    """The result as the CLI prints it with ``--json``: ``run_id`` first, a replay's split."""
    data: dict[str, Any] = {"run_id": result.run_id, **result.to_dict()}
    if recorded is not None:
        data["replay"] = {
            "replay_of": recorded.replay_of,
            "provider_calls": result.usage.calls - recorded.calls,
            "spent_usd": max(result.total_cost - recorded.cost, 0.0),
            "recorded_calls": recorded.calls,
            "recorded_cost_usd": recorded.cost,
        }
    return data


def print_result(
    result: OrchestratorResult,
    args: argparse.Namespace,
    out: TextIO,
    recorded: Recorded | None = None,
) -> None:
    """The result as JSON (``--json``) or as a readable summary.

    The agents table is the run's bill: one row per agent that made a call (planner,
    subtask agents, synthesizers, a pattern's own roles) plus agents that finished without
    one, and a total row equal to the run's totals.  ``recorded`` marks a replay: its
    costs are what the recorded run paid, not what this one spent.
    """
    if args.json:
        json.dump(result_to_json(result, recorded), out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.table import Table

    console = Console(file=out, highlight=False)
    console.rule(f"[bold]{escape(result.title)}[/bold]")
    if result.final_synthesis:
        console.print(Markdown(result.final_synthesis))
    title = "Agents" if recorded is None else "Agents (recorded costs, not spent again)"
    table = Table(title=title, show_lines=False)
    for column in ("agent", "status", "tokens", "cost", "time"):
        table.add_column(column, justify="right" if column in ("tokens", "cost", "time") else "left")
    for agent_id, status, usage, elapsed in agent_rows(result):
        table.add_row(
            escape(agent_id),
            status,
            str(usage.total_tokens),
            format_usd_cell(usage.cost_usd),
            format_duration(elapsed) if elapsed is not None else "-",
        )
    table.add_section()
    table.add_row("total", "", str(result.usage.total_tokens), format_usd_cell(result.total_cost), "")
    console.print(table)
    console.print(
        f"status: [bold]{result.status}[/bold]   {_bill_line(result, recorded)}   "
        f"time: {format_duration(result.execution_time)}   run: {result.run_id}"
    )
    for document in result.generated_documents:
        console.print(f"report: {escape(document.path)} ({document.size_bytes} bytes)")
    for failure in result.metadata.get("document_errors", ()):
        console.print(f"[yellow]report not written: {escape(str(failure))}[/yellow]")
    paused = result.status == "paused"
    error = without_resume_hint(result.error, result.run_id) if paused and result.error else result.error
    if error:
        console.print(f"[yellow]{escape(error)}[/yellow]")
    if paused:
        console.print(f"continue with: {escape(resume_command(result.run_id, args))}", soft_wrap=True)


def _bill_line(result: OrchestratorResult, recorded: Recorded | None) -> str:
    usage = result.usage
    if recorded is None:
        return (
            f"total: {format_usd_cell(result.total_cost)} ({usage.total_tokens} tokens, {usage.calls} calls)"
        )
    spent = max(result.total_cost - recorded.cost, 0.0)
    return (
        f"{usage.calls - recorded.calls} provider calls, {format_usd_cell(spent)} spent   "
        f"recorded: {format_usd_cell(recorded.cost)} ({recorded.tokens} tokens, {recorded.calls} calls "
        f"replayed from run {escape(recorded.replay_of)})"
    )


def agent_rows(result: OrchestratorResult) -> list[tuple[str, str, Usage, float | None]]:
    """``(agent, status, usage, seconds)`` per agent, from the run's bill (the cost fold).

    Agents that ran a subtask come in plan order, where the first of them spent; agents
    without a subtask (planner, synthesizer, a pattern's reviewers) have no status or
    time of their own.  The rows' usage adds up to ``result.usage``.
    """
    by_agent = result.cost_by_agent
    ran: dict[str, list[AgentResult]] = {}
    for agent in result.agent_results:
        ran.setdefault(agent.agent_id, []).append(agent)
    order: list[str] = []
    for agent_id in by_agent:
        if agent_id not in ran:
            order.append(agent_id)
        elif not order or order[-1] not in ran:
            order.extend(a for a in ran if a not in order)
    order.extend(a for a in ran if a not in order)  # no subtask agent spent
    rows: list[tuple[str, str, Usage, float | None]] = []
    for agent_id in order:
        usage = by_agent.get(agent_id, Usage())
        results = ran.get(agent_id)
        if not results:
            rows.append((agent_id, "-", usage, None))
            continue
        statuses = ", ".join(dict.fromkeys(str(r.status) for r in results))
        rows.append((agent_id, statuses, usage, sum(r.execution_time for r in results)))
    return rows


def escape(text: str) -> str:
    """Rich markup escaped (LLM text must never be read as markup)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)
