"""What the CLI commands share: the store, running with a display, printing results."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..events import EventType, StreamEvent
from ..models import OrchestratorResult
from ..stores.base import RunStore
from ..utils import format_cost, format_duration

if TYPE_CHECKING:
    from ..guardrails import Guardrails

__all__ = [
    "add_display_options",
    "guardrails_from",
    "add_store_option",
    "open_cli_store",
    "print_result",
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

        from ..streaming import create_progress_bar_callback

        callbacks.append(create_progress_bar_callback(Console(file=err)))

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


def print_result(result: OrchestratorResult, args: argparse.Namespace, out: TextIO) -> None:
    """The result as JSON (``--json``) or as a readable summary."""
    if args.json:
        json.dump(result.to_dict(), out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.table import Table

    console = Console(file=out, highlight=False)
    console.rule(f"[bold]{escape(result.title)}[/bold]")
    if result.final_synthesis:
        console.print(Markdown(result.final_synthesis))
    table = Table(title="Agents", show_lines=False)
    for column in ("agent", "status", "tokens", "cost", "time"):
        table.add_column(column, justify="right" if column in ("tokens", "cost", "time") else "left")
    for agent in result.agent_results:
        table.add_row(
            escape(agent.agent_id),
            str(agent.status),
            str(agent.usage.total_tokens),
            format_cost(agent.cost),
            format_duration(agent.execution_time),
        )
    console.print(table)
    console.print(
        f"status: [bold]{result.status}[/bold]   total: {format_cost(result.total_cost)} "
        f"({result.usage.total_tokens} tokens, {result.usage.calls} calls)   "
        f"time: {format_duration(result.execution_time)}   run: {result.run_id}"
    )
    for document in result.generated_documents:
        console.print(f"report: {escape(document.path)} ({document.size_bytes} bytes)")
    if result.error:
        console.print(f"[yellow]{escape(result.error)}[/yellow]")


def escape(text: str) -> str:
    """Rich markup escaped (LLM text must never be read as markup)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)
