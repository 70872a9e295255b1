"""Reports a live run writes: after its final event, listed in its record, failures as events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from orchestration import OrchestratorConfig
from orchestration.engine.state import RunState
from orchestration.events import EventType, StreamEvent
from orchestration.models import OrchestratorResult, TaskStatus
from orchestration.reports import report_basename
from orchestration.server.broadcast import EventBroadcaster, follow_run
from orchestration.stores.memory import MemoryStore
from orchestration.streaming import create_sse_callback, stream_workflow
from tests.streaming.demo import DemoOrchestrator


def _size(path: str) -> int:
    return Path(path).stat().st_size


def _config(tmp_path: Path, formats: list[str] | None = None) -> OrchestratorConfig:
    return OrchestratorConfig(
        max_retries=0,
        generate_documents=True,
        document_formats=formats or ["markdown", "pdf"],
        output_directory=str(tmp_path),
    )


async def _run(orchestrator: DemoOrchestrator, **kwargs: Any) -> tuple[OrchestratorResult, list[StreamEvent]]:
    seen: list[StreamEvent] = []
    result = await orchestrator.execute_workflow("Research reports", stream_callback=seen.append, **kwargs)
    return result, seen


async def test_reports_show_the_real_duration_and_the_log_to_its_end(tmp_path: Path) -> None:
    store = MemoryStore()
    result, seen = await _run(DemoOrchestrator(_config(tmp_path), store=store))
    assert result.status is TaskStatus.COMPLETED and result.execution_time > 0
    documents = {d.format: Path(d.path) for d in result.generated_documents}
    markdown = documents["markdown"].read_text(encoding="utf-8")
    front = yaml.safe_load(markdown.split("---\n")[1])
    assert front["execution_time_s"] == round(result.execution_time, 3) > 0
    assert front["status"] == "completed"
    run_log = markdown.split("## Run log")[1]
    assert "| workflow\\_complete | 1 |" in run_log and "| document\\_generation\\_start | 1 |" in run_log

    # The listing is the run's last event, after the terminal one; the record says completed.
    kinds = [e.event_type for e in seen]
    assert kinds[-3:] == [
        EventType.WORKFLOW_COMPLETE,
        EventType.DOCUMENT_GENERATION_START,
        EventType.DOCUMENT_GENERATION_COMPLETE,
    ]
    assert [e.is_last for e in seen].count(True) == 1 and seen[-1].is_last
    stored = await store.events(result.run_id)
    assert [e.seq for e in stored] == [e.seq for e in seen]
    summary = await store.get_run(result.run_id)
    assert summary is not None and summary.status is TaskStatus.COMPLETED
    folded = RunState.from_events(result.run_id, stored).to_result()
    assert folded.generated_documents == result.generated_documents
    assert folded.execution_time == result.execution_time


async def test_a_report_that_cannot_be_written_is_an_event_and_the_others_are_listed(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    orchestrator = DemoOrchestrator(_config(tmp_path), store=store)
    run_id = "unwritable-pdf"
    named = OrchestratorResult(task_id=run_id, title="Research reports", status=TaskStatus.COMPLETED)
    (tmp_path / f"{report_basename(named)}.pdf").mkdir()  # the PDF's path is taken by a folder
    result, seen = await _run(orchestrator, run_id=run_id)
    assert result.status is TaskStatus.COMPLETED and result.error is None
    assert [d.format for d in result.generated_documents] == ["markdown"]
    assert result.generated_documents[0].size_bytes == _size(result.generated_documents[0].path) > 0
    errors = [e for e in seen if e.event_type is EventType.DOCUMENT_ERROR]
    assert len(errors) == 1 and errors[0].data["format"] == "pdf"
    assert "IsADirectoryError" in errors[0].data["error"] and errors[0].data["path"].endswith(".pdf")
    assert result.metadata["document_errors"] == [f"pdf: {errors[0].data['error']}"]
    summary = await store.get_run(run_id)
    assert summary is not None and summary.status is TaskStatus.COMPLETED


async def test_an_output_folder_that_cannot_exist_fails_every_report_but_not_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    result, seen = await _run(DemoOrchestrator(_config(blocker / "reports")))
    assert result.status is TaskStatus.COMPLETED and result.error is None
    assert result.generated_documents == () and result.final_synthesis
    failed = [e.data["format"] for e in seen if e.event_type is EventType.DOCUMENT_ERROR]
    assert failed == ["markdown", "pdf"]
    assert seen[-1].event_type is EventType.DOCUMENT_GENERATION_COMPLETE and seen[-1].data["documents"] == []


async def test_streams_end_after_the_report_listing(tmp_path: Path) -> None:
    store = MemoryStore()
    broadcaster = EventBroadcaster()
    frames: asyncio.Queue[str | None] = asyncio.Queue()
    sse = create_sse_callback(frames)

    async def both(event: StreamEvent) -> None:
        broadcaster.publish(event)
        await sse(event)

    orchestrator = DemoOrchestrator(_config(tmp_path, ["markdown"]), store=store)
    result = await orchestrator.execute_workflow("Research reports", stream_callback=both, run_id="followed")
    followed = [e async for e in follow_run(store, broadcaster, "followed", poll_interval=0.05)]
    assert followed[-1].event_type is EventType.DOCUMENT_GENERATION_COMPLETE
    assert [d["path"] for d in followed[-1].data["documents"]] == [d.path for d in result.generated_documents]
    sent = []
    while (frame := frames.get_nowait()) is not None:
        sent.append(frame)
    assert len(sent) == len(followed) and "document_generation_complete" in sent[-1]

    streamed = [e async for e in stream_workflow(DemoOrchestrator(_config(tmp_path, ["markdown"])), "Again")]
    assert streamed[-1].event_type is EventType.DOCUMENT_GENERATION_COMPLETE


async def test_closing_a_stream_at_the_terminal_event_keeps_the_reports(tmp_path: Path) -> None:
    store = MemoryStore()
    stream = stream_workflow(DemoOrchestrator(_config(tmp_path), store=store), "Research", run_id="closed")
    async for event in stream:
        if event.is_terminal:
            break
    await stream.aclose()
    events = await store.events("closed")
    assert events[-1].event_type is EventType.DOCUMENT_GENERATION_COMPLETE
    assert {d["format"] for d in events[-1].data["documents"]} == {"markdown", "pdf"}
    assert not [e for e in events if e.event_type is EventType.DOCUMENT_ERROR]
