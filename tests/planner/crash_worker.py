"""A process the planner crash test kills: a planner run (tests/planner/script.py's
add-split-rework script) on a SQLite store, started or resumed.

``python -m tests.planner.crash_worker DB RUN_ID DIR KILLS``.  In DIR it appends each
provider call's request fingerprint to ``calls.log`` (as the provider receives it), each
worker visit it starts to ``starts.log`` (``node visit``) and the kill point it dies at to
``killed.log``.  KILLS lists, comma-separated, where the process kills itself with
SIGKILL once the store holds it (seen from the stream callback, which runs after the
store has the events): ``cost:AGENT:N`` (the N-th model call billed to AGENT) or
``done:NODE:VISIT`` (that visit's completion); ``none`` for nowhere.  A process that gets
to the end prints the run's essence as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from orchestration import (
    AgentResult,
    CompletionRequest,
    EventType,
    PlannerConfig,
    PlannerOrchestrator,
    ScriptedProvider,
    StreamEvent,
    SubTask,
)
from orchestration.stores import open_store

from .script import PlannerScript
from .test_planner_run import ADD_SPLIT_REWORK


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


class LoggedPlanner(PlannerOrchestrator):
    """Logs each worker visit as it starts."""

    starts: Path

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        _append(self.starts, f"{subtask.id} {(context or {}).get('visit')}")
        return await super().execute_subtask(subtask, context)


def essence(result: Any, visits: dict[str, int]) -> dict[str, Any]:
    return {
        "status": str(result.status),
        "final": result.final_synthesis,
        "agents": [[r.subtask_id, str(r.status), r.content] for r in result.agent_results],
        "visits": visits,
    }


async def main(db: str, run_id: str, folder: str, kills: str) -> None:
    out = Path(folder)
    store = open_store(db)
    points = set(kills.split(","))
    stored = await store.events(run_id)
    costs: dict[str, int] = {}
    for event in stored:
        if event.event_type is EventType.COST_UPDATE and event.agent_id:
            costs[event.agent_id] = costs.get(event.agent_id, 0) + 1
    script = PlannerScript(ADD_SPLIT_REWORK)

    def reply(request: CompletionRequest) -> Any:
        _append(out / "calls.log", request.fingerprint())
        return script.reply(request)

    def on_event(event: StreamEvent) -> None:
        point = None
        if event.event_type is EventType.COST_UPDATE and event.agent_id:
            costs[event.agent_id] = costs.get(event.agent_id, 0) + 1
            point = f"cost:{event.agent_id}:{costs[event.agent_id]}"
        elif event.event_type is EventType.GRAPH_NODE_COMPLETED:
            point = f"done:{event.data['node']}:{event.data['visit']}"
        if point in points:
            _append(out / "killed.log", point)
            os.kill(os.getpid(), signal.SIGKILL)

    planner = LoggedPlanner(PlannerConfig(max_concurrent_agents=1), ScriptedProvider(reply), store=store)
    planner.starts = out / "starts.log"
    try:
        if stored:
            result = await planner.resume(run_id, on_event)
        else:
            result = await planner.execute_workflow(
                "Write a short report on tides", run_id=run_id, stream_callback=on_event
            )
        visits = {node: info["visits"] for node, info in result.metadata["planner"]["nodes"].items()}
        print(json.dumps(essence(result, visits)))
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
