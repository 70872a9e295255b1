"""A terminal display of a run, fed by its events (``create_progress_bar_callback``).

On a terminal it shows an overall bar and one row per agent (several run at once) with
tokens and cost as they arrive; notable events (retries, fallbacks, errors, warnings)
are printed above the display so they stay readable.  Elsewhere (a pipe, CI) it prints
only those lines and a plain summary at the end.  All text from the run (task titles,
agent output, error messages) is passed to rich as ``Text``, never as markup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .events import EventType, StreamEvent
from .models import without_resume_hint
from .utils import format_usd

__all__ = ["ProgressDisplay", "format_usd_cell"]

_LOGGED = {
    EventType.AGENT_RETRY: "retry",
    EventType.MODEL_RETRY: "retry",
    EventType.MODEL_FALLBACK: "fallback",
    EventType.WARNING: "warning",
    EventType.BUDGET_EXCEEDED: "budget",
    EventType.CALLBACK_ERROR: "callback error",
    EventType.DOCUMENT_ERROR: "report error",
}
_DONE = {EventType.AGENT_COMPLETE: "✓", EventType.AGENT_ERROR: "✗", EventType.AGENT_SKIPPED: "-"}


@dataclass
class _Agent:
    label: str
    row: Any = None
    chars: int = 0
    tokens: int = 0
    cost: float = 0.0
    mark: str = ""


class ProgressDisplay:
    """A stream callback that draws a run's progress with rich (see module docs)."""

    def __init__(
        self,
        console: Any = None,
        *,
        max_rows: int = 12,
        show_text: bool = True,
        resume_command: Callable[[str], str] | None = None,
    ) -> None:
        """``resume_command(run_id)``: how this interface continues a paused run (the CLI's
        ``orchestrate resume ...``), printed instead of the Python hint its error carries."""
        from rich.console import Console

        self.console = console if console is not None else Console(stderr=True)
        self.live = bool(self.console.is_terminal) and not self.console.is_dumb_terminal
        self.max_rows = max_rows
        self.show_text = show_text
        self.resume_command = resume_command
        self._progress: Any = None
        self._overall: Any = None
        self._agents: dict[str, _Agent] = {}  # by subtask id (stable across an agent's events)
        self._keys: dict[str, str] = {}  # event agent_id -> subtask id
        self._finished: list[str] = []
        self._title = ""
        self._started: float | None = None
        self._resumed = False
        self._tokens = 0
        self._cost = 0.0
        self._recorded = 0.0  # a replay's answers from its recording: counted, not spent

    def __call__(self, event: StreamEvent) -> None:
        """Update the display for one event."""
        kind = event.event_type
        data = event.data
        if kind is EventType.WORKFLOW_START or kind is EventType.WORKFLOW_RESUMED:
            self._resumed = kind is EventType.WORKFLOW_RESUMED
            self._start(str(data.get("title") or event.run_id), event.timestamp)
        elif kind is EventType.DECOMPOSITION_COMPLETE:
            self._log("plan", f"{data.get('count', len(data.get('subtasks', ())))} subtasks")
        elif kind is EventType.AGENT_START:
            self._agent_started(event)
        elif kind is EventType.TOKEN_DELTA and self._key(event) in self._agents:
            self._agents[self._key(event)].chars += len(str(data.get("delta", "")))
            self._refresh(self._key(event))
        elif kind is EventType.COST_UPDATE:
            usage = data.get("usage") or {}
            tokens = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
            self._tokens += tokens
            self._cost = float(data.get("total_cost", self._cost + float(data.get("cost", 0.0))))
            if data.get("provider") == "recording":  # RecordedProvider.name
                self._recorded += float(data.get("cost", 0.0))
            agent = self._agents.get(self._key(event))
            if agent is not None:
                agent.tokens += tokens
                agent.cost += float(data.get("cost", 0.0))
                self._refresh(self._key(event))
        elif kind in _DONE:
            self._agent_finished(event)
        elif kind in _LOGGED:
            detail = data.get("message") or data.get("error") or data.get("reason") or ""
            who = f"{event.agent_id}: " if event.agent_id else ""
            self._log(_LOGGED[kind], f"{who}{detail}", style="yellow")
        if self._progress is not None and self._overall is not None:
            info = f"{self._tokens:,} tok  {format_usd_cell(self._cost)}"
            self._progress.update(self._overall, completed=event.progress, info=info)
        if event.is_terminal:
            self._finish(event)

    def _key(self, event: StreamEvent) -> str:
        return self._keys.get(event.agent_id or "", event.agent_id or "")

    def _start(self, title: str, timestamp: float) -> None:
        self._title = title
        self._started = timestamp
        if not self.live or self._progress is not None:
            return
        from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(bar_width=24),
            TaskProgressColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._overall = self._progress.add_task(_short(title, 48), total=100, info="")

    def _agent_started(self, event: StreamEvent) -> None:
        agent_id = event.agent_id or str(event.data.get("subtask_id", "agent"))
        key = str(event.data.get("subtask_id") or agent_id)
        self._keys[agent_id] = key
        label = f"  {agent_id}: {_short(str(event.data.get('description', '')), 40)}"
        agent = self._agents.setdefault(key, _Agent(label))
        if self._progress is not None and agent.row is None:
            agent.row = self._progress.add_task(label, total=None, info="")

    def _refresh(self, agent_id: str) -> None:
        agent = self._agents[agent_id]
        if self._progress is None or agent.row is None:
            return
        parts = [f"{agent.tokens:,} tok", format_usd_cell(agent.cost)]
        if self.show_text and agent.chars:
            parts.insert(0, f"{agent.chars:,} chars")
        self._progress.update(agent.row, info="  ".join(parts))

    def _agent_finished(self, event: StreamEvent) -> None:
        result = event.data.get("result") or {}
        agent_id = event.agent_id or str(result.get("agent_id", "agent"))
        key = str(result.get("subtask_id") or self._key(event))
        agent = self._agents.setdefault(key, _Agent(f"  {agent_id}"))
        agent.mark = _DONE[event.event_type]
        if event.event_type is not EventType.AGENT_COMPLETE:
            reason = result.get("error") or str(result.get("status", ""))
            self._log("agent", f"{agent_id} {result.get('status', 'failed')}: {reason}", style="red")
        if self._progress is None:
            return
        if agent.row is None:
            agent.row = self._progress.add_task(agent.label, total=None, info="")
        self._progress.update(agent.row, total=1, completed=1, description=f"{agent.mark}{agent.label[1:]}")
        self._finished.append(key)
        running = sum(1 for a in self._agents.values() if a.row is not None and not a.mark)
        while self._finished and len(self._finished) + running > self.max_rows:
            old = self._agents[self._finished.pop(0)]
            self._progress.update(old.row, visible=False)

    def _log(self, label: str, message: str, *, style: str = "cyan") -> None:
        from rich.text import Text

        line = Text.assemble((f"[{label}] ", style), _short(message, 300))
        target = self._progress.console if self._progress is not None else self.console
        target.print(line, soft_wrap=not self.live)

    def _finish(self, event: StreamEvent) -> None:
        from rich.text import Text

        self.close()
        status = str(event.data.get("status", event.event_type))
        elapsed = event.timestamp - self._started if self._started is not None else 0.0
        cost = float(event.data.get("total_cost", self._cost))
        done = sum(1 for a in self._agents.values() if a.mark == "✓")
        failed = sum(1 for a in self._agents.values() if a.mark in ("✗", "-"))
        agents, tokens = len(self._agents), self._tokens
        if "agents" in event.data:  # the whole run's counts (a resumed run's earlier work too)
            agents = int(event.data["agents"])
            done = int(event.data.get("agents_completed", done))
            failed = agents - done
            tokens = int(event.data.get("total_tokens", tokens))
        bill = format_usd_cell(cost)
        if self._recorded:
            bill = f"{format_usd_cell(max(cost - self._recorded, 0.0))} spent, {format_usd_cell(self._recorded)} recorded"
        since = " since resuming" if self._resumed else ""
        summary = (
            f"{self._title or event.run_id} — {status} in {elapsed:.1f}s{since}: {agents} agents "
            f"({done} completed, {failed} not), {tokens:,} tokens, {bill}"
        )
        style = "green" if status == "completed" else "red"
        self.console.print(Text(summary, style=style if self.live else ""), soft_wrap=True)
        error = str(event.data.get("error") or "")
        command = self.resume_command(event.run_id) if self.resume_command and status == "paused" else None
        if command is not None:
            error = without_resume_hint(error, event.run_id)
        if error:
            self.console.print(Text(f"error: {error}"), soft_wrap=True)
        if command is not None:
            self.console.print(Text(f"continue with: {command}"), soft_wrap=True)

    def close(self) -> None:
        """Stop the live display (called automatically at the run's end)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._overall = None


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


#: The CLI's and the live display's cost cells: :func:`orchestration.utils.format_usd`.
format_usd_cell = format_usd
