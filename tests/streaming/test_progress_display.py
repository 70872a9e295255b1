"""The rich progress display: live on a terminal, a plain summary elsewhere, no markup injection."""

from __future__ import annotations

import io

from rich.console import Console

from orchestration import SubTask
from orchestration.progress import format_usd_cell
from orchestration.streaming import create_progress_bar_callback

from .demo import DemoOrchestrator

WIDE_PLAN = [SubTask(id=f"part{i}", description=f"Part {i} [bold red]of[/] the work") for i in range(6)]
WIDE_PLAN.append(SubTask(id="join", description="Join", dependencies=[s.id for s in WIDE_PLAN]))


def _fail_part3(subtask: SubTask) -> bool:
    return subtask.id == "part3"


async def test_plain_output_when_not_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=120)
    display = create_progress_bar_callback(console)
    assert display.live is False
    orchestrator = DemoOrchestrator(plan=WIDE_PLAN, fail=_fail_part3)
    result = await orchestrator.execute_workflow("Build [red]it[/red]", stream_callback=display)
    text = buffer.getvalue()
    assert "\x1b[" not in text  # no escape codes in logs
    assert "[plan] 7 subtasks" in text
    assert "part3 failed on purpose" in text  # the failure is logged above the summary
    summary = text.strip().splitlines()
    assert any(line.startswith("Build [red]it[/red] — partial in") for line in summary)  # markup kept literal
    assert format_usd_cell(result.total_cost) in text  # sub-cent costs keep two significant digits
    assert "7 agents (5 completed, 2 not)" in text  # part3 failed, join skipped


async def test_live_display_on_a_terminal_with_parallel_agents() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=140, color_system="truecolor")
    display = create_progress_bar_callback(console, max_rows=4)
    assert display.live is True
    orchestrator = DemoOrchestrator(plan=WIDE_PLAN, delay=0.02)
    await orchestrator.execute_workflow("Parallel work", stream_callback=display)
    text = buffer.getvalue()
    assert "Parallel work" in text
    assert "agent_part0" in text and "agent_join" in text
    assert "[bold red]of[/]" in text  # task text is shown, not interpreted as markup
    assert "completed in" in text
    assert display._progress is None  # stopped at the end of the run
