"""``PlannerOrchestrator``: a planner model builds and revises the graph with tool calls.

```python
planner = PlannerOrchestrator(PlannerConfig(max_nodes=8, max_planning_turns=4), provider)
result = await planner.execute_workflow("Compare three tide-prediction methods")
```

The planner model is offered seed 000's graph tools (``add_node``, ``split_node``,
``rework``, ``refine_node``, ``edit_node``, ``remove_node``, ``list_nodes``,
``check_task``, ``history``, ``finish``); the nodes it adds are run by workers (the
``execute_subtask`` hook, in parallel where dependencies allow); after each turn it sees
their results and revises the plan, until it calls ``finish`` or a bound ends the
planning (``max_planning_turns``, ``max_nodes``, the budget ``max_total_cost``).  The
final answer is written from what completed by the ``synthesize_results`` hook.

It runs on the graph runtime (:mod:`.run`), so it is stored, resumed after a crash
(without redoing completed nodes or paying again for recorded model calls), budgeted,
streamed and shown like any run; and it is a :class:`~orchestration.BaseOrchestrator`,
so the CLI (``orchestrate run planner "TASK"``), the server and the reports take it like
any pattern.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..base import BaseOrchestrator
from ..config import OrchestratorConfig
from ..engine import leases
from ..engine.callbacks import StreamCallbacks, as_callbacks
from ..engine.driver import json_ready, title_from
from ..engine.state import RunState
from ..errors import ConfigError, RunLeasedError, RunNotFoundError, SequenceConflictError, describe
from ..events import EventType, StreamEvent
from ..graph import GraphResult
from ..models import AgentResult, OrchestratorResult, SubTask, SynthesisResult
from ..replay import RecordedProvider, Recording
from .config import PlannerConfig
from .prompts import inputs_text, render, results_text
from .run import PlannerRun

__all__ = ["PlannerOrchestrator"]


class PlannerOrchestrator(BaseOrchestrator):
    """A planner model plans and revises the graph while workers run it (see the module).

    Args: those of :class:`~orchestration.BaseOrchestrator`; ``config`` is a
    :class:`PlannerConfig` (a plain ``OrchestratorConfig`` is lifted to one with the
    planner's defaults).

    Override ``execute_subtask(subtask, context)`` to run nodes with your own agents
    (``context`` has ``task``, ``dependency_results`` and ``expectations`` by dependency
    id), and ``synthesize_results(results, context)`` to write the answer your way; both
    are billed to the run (``self.call_llm`` and ``self.provider`` in them count).
    """

    name = "planner"
    config_class = PlannerConfig
    config: PlannerConfig

    def __init__(
        self, config: OrchestratorConfig | None = None, provider: Any = None, **options: Any
    ) -> None:
        if config is not None and type(config) is OrchestratorConfig:
            config = PlannerConfig(**config.to_dict())
        elif config is not None and not isinstance(config, PlannerConfig):
            raise ConfigError(
                f"PlannerOrchestrator takes a PlannerConfig (or an OrchestratorConfig), not {type(config).__name__}"
            )
        super().__init__(config, provider, **options)
        self._planner_runs: dict[str, PlannerRun] = {}

    # -- the hooks ----------------------------------------------------------------------

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        """Not used: the planner model builds the plan with tool calls while the run goes."""
        raise ConfigError(
            "PlannerOrchestrator plans with its planner model's tool calls; it has no decompose step"
        )

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        """Do one node: one model call on its description and its dependencies' results."""
        context = context or {}
        dependencies: Mapping[str, AgentResult] = context.get("dependency_results") or {}
        expectations: Mapping[str, str] = context.get("expectations") or {}
        inputs = [(node_id, expectations.get(node_id, ""), r.content) for node_id, r in dependencies.items()]
        prompt = render(
            "worker",
            self.config.prompts,
            task=context.get("task", ""),
            node_id=subtask.id,
            description=subtask.description,
            inputs=inputs_text(inputs),
        )
        completion = await self.call_llm(prompt, model=subtask.model)
        return AgentResult(
            agent_id=subtask.id,
            agent_type=subtask.agent_type,
            subtask_id=subtask.id,
            content=completion.content,
            model=completion.model,
        )

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str | SynthesisResult:
        """The final answer from the completed results (one model call); with no result,
        the planner's own answer (no call)."""
        context = context or {}
        if not agent_results:
            return str(context.get("planner_answer") or "No node produced a result.")
        results = [(r.subtask_id, str(r.metadata.get("description", "")), r.content) for r in agent_results]
        prompt = render(
            "synthesis", self.config.prompts, task=context.get("task", ""), results=results_text(results)
        )
        completion = await self.call_llm(prompt)
        return SynthesisResult(
            content=completion.content,
            source_ids=[r.subtask_id for r in agent_results],
            model=completion.model,
        )

    # -- running ------------------------------------------------------------------------

    @property
    def active_runs(self) -> list[str]:
        """Ids of this orchestrator's runs in progress."""
        return list(self._planner_runs)

    def cancel(self, run_id: str | None = None) -> bool:
        """Cancel a run in progress (every run of this orchestrator if ``run_id`` is None)."""
        runs = (
            list(self._planner_runs.values())
            if run_id is None
            else [self._planner_runs[run_id]]
            if run_id in self._planner_runs
            else []
        )
        for run in runs:
            run.graph_run.cancel("the run was cancelled")
        return bool(runs)

    async def execute_workflow(
        self,
        task: str,
        title: str | None = None,
        context: dict[str, Any] | None = None,
        stream_callback: StreamCallbacks | None = None,
        *,
        run_id: str | None = None,
    ) -> OrchestratorResult:
        """Plan and run ``task`` to its end; the result (never raises for a node's failure)."""
        run_id, callbacks = await self._admit_new_run(
            task, context, stream_callback, run_id, self._planner_runs
        )
        payload = self._payload(task, dict(context or {}))
        run = PlannerRun(self, payload, run_id=run_id, title=title or title_from(task), callbacks=callbacks)
        return await self._drive(run)

    async def resume(
        self, run_id: str, stream_callback: StreamCallbacks | None = None, *, wait: bool = False
    ) -> OrchestratorResult:
        """Continue a stopped planner run from its stored events: completed nodes and turns
        are kept, recorded model calls are answered from the recording.  A finished run
        returns its result.  ``wait``: wait up to one lease period for a process that holds
        the run (e.g. one that crashed on another machine)."""
        payload, title = await self._stored(run_id)
        if run_id in self._planner_runs:
            raise RunLeasedError(f"run {run_id!r} is already in progress in this process")
        if wait:  # the run's own acquire takes it over at once from a dead process here
            probe = leases.new_owner()
            await leases.acquire(self.store, run_id, probe, self.config.lease_seconds, wait=True)
            await self.store.release_lease(run_id, probe)
        await self.store.clear_cancel(run_id)  # resuming is a decision to go on
        run = PlannerRun(self, payload, run_id=run_id, title=title, callbacks=as_callbacks(stream_callback))
        return await self._drive(run)

    async def replay(
        self,
        run_id: str,
        *,
        live: bool = False,
        task: str | None = None,
        context: dict[str, Any] | None = None,
        stream_callback: StreamCallbacks | None = None,
    ) -> OrchestratorResult:
        """Run a recorded planner run again (a new run id) with its model calls answered
        from the recording; ``live`` sends requests it lacks to the provider, and a changed
        ``task`` or ``context`` forks the run (what changed goes live)."""
        stored, title = await self._stored(run_id)
        forked = task is not None or context is not None
        provider = RecordedProvider(
            Recording(await self.store.events(run_id)),
            live=self.llm if (live or forked) else None,
            run_id=run_id,
        )
        payload = self._payload(
            task if task is not None else str(stored.get("task", "")),
            dict(context if context is not None else stored.get("context") or {}),
        )
        new_id = uuid.uuid4().hex[:16]
        run = PlannerRun(
            self,
            payload,
            run_id=new_id,
            title=title,
            callbacks=as_callbacks(stream_callback),
            provider=provider,
        )
        result = await self._drive(run)
        return replace(
            result,
            metadata={
                **result.metadata,
                "replay_of": run_id,
                "served_from_recording": provider.served,
                "live_calls": provider.live_calls,
            },
        )

    def _payload(self, task: str, context: dict[str, Any]) -> dict[str, Any]:
        """What the run starts with: the task, and what rebuilds this orchestrator from the
        store (``orchestrate resume`` reads it)."""
        cls = type(self)
        return {
            "task": task,
            "context": json_ready(context),
            "orchestrator_class": f"{cls.__module__}:{cls.__qualname__}",
            "config": self.config.to_dict(),
            "provider": getattr(self.llm, "name", type(self.llm).__name__),
            "labels": dict(self.labels),
        }

    async def _stored(self, run_id: str) -> tuple[dict[str, Any], str]:
        events = await self.store.events(run_id)
        start = next((e for e in events if e.event_type is EventType.WORKFLOW_START), None)
        if start is None:
            raise RunNotFoundError(f"no run {run_id!r} in the store")
        payload = start.data.get("payload")
        if start.data.get("orchestrator") != self.name or not isinstance(payload, Mapping):
            raise ConfigError(
                f"run {run_id!r} was not started by a PlannerOrchestrator "
                f"({start.data.get('orchestrator') or 'unknown orchestrator'}); resume it with the one that ran it"
            )
        return dict(payload), str(start.data.get("title") or "")

    async def _drive(self, run: PlannerRun) -> OrchestratorResult:
        run_id = run.graph_run.run_id
        self._planner_runs[run_id] = run
        try:
            graph = await run.graph_run.run()
        finally:
            self._planner_runs.pop(run_id, None)
        if self.config.generate_documents and graph.status != "paused":
            await self._write_reports(run_id)
        return await self._result(run, graph)

    async def _result(self, run: PlannerRun, graph: GraphResult) -> OrchestratorResult:
        """The run's result: the fold of its stored events (what ``orchestrate show``
        reads), with the graph's verdict and the planner's account."""
        events = await self.store.events(graph.run_id)
        result = RunState.from_events(graph.run_id, events).to_result()
        verdict = graph.output("synthesizer") or {}
        nodes = run.state.nodes
        info = {
            "turns": len(nodes["planner"].completions) if "planner" in nodes else 0,
            "stopped_by": verdict.get("stopped_by"),
            "reason": verdict.get("reason") or graph.error or "",
            "nodes": {
                node_id: {
                    "state": str(graph.states[node_id]),
                    "visits": graph.visits.get(node_id, 0),
                    "dependencies": [e.source for e in nodes[node_id].inn],
                }
                for node_id in run.workers()
            },
        }
        error = graph.error or result.error
        broken = [n for n in ("planner", "observe", "decide", "synthesizer") if n in graph.errors]
        if broken:  # the loop itself failed (no provider, a store error, a bug): say where
            error = f"the {broken[0]} node failed: {graph.errors[broken[0]]}"
        return replace(result, error=error, metadata={**result.metadata, "planner": info})

    async def _write_reports(self, run_id: str) -> None:
        """Write the run's reports after its last event (so they show the whole run) and
        list them in a ``document_generation_complete`` event, as orchestrator runs do."""
        from ..reports import Reports, generate_reports

        formats = list(self.config.document_formats)
        events = await self.store.events(run_id)
        result = RunState.from_events(run_id, events).to_result()
        try:
            reports = await asyncio.to_thread(
                generate_reports, result, formats, self.config.output_directory, events=events
            )
        except Exception as failure:  # a package the reports need is missing, a folder is unwritable
            reports = Reports.failed(formats, describe(failure), failure)
        items: list[tuple[EventType, dict[str, Any]]] = [
            (EventType.DOCUMENT_GENERATION_START, {"formats": formats})
        ]
        items += [(EventType.WARNING, {"message": warning}) for warning in reports.warnings]
        items += [
            (EventType.DOCUMENT_ERROR, {"format": f.format, "path": f.path, "error": f.error})
            for f in reports.failures
        ]
        documents = [d.to_dict() for d in reports.documents]
        items.append((EventType.DOCUMENT_GENERATION_COMPLETE, {"documents": documents, "ends_run": True}))
        await _append_after(self.store, run_id, items)


async def _append_after(store: Any, run_id: str, items: Sequence[tuple[EventType, dict[str, Any]]]) -> None:
    """Append events after the run's last one (read again if another writer came first)."""
    for _ in range(10):
        stored = await store.events(run_id)
        seq = stored[-1].seq if stored else 0
        now = time.time()
        batch = [
            StreamEvent(kind, run_id, seq + n, now, data, None, 100.0)
            for n, (kind, data) in enumerate(items, 1)
        ]
        try:
            await store.append(run_id, batch)
            return
        except SequenceConflictError:
            continue
    raise ConfigError(f"run {run_id}: the store kept changing while its reports were listed; try again")
