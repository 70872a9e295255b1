"""One planner run on the graph runtime: the planning loop and the nodes it adds.

The graph starts as a loop of four nodes::

    planner -> observe -> decide --(back-edge)--> planner
                            \\-> synthesizer

- ``planner`` (one visit per turn): one model call offered the planner's tools
  (:mod:`.tools`); its tool calls become changes to this graph, made through the node's
  :class:`~orchestration.graph.GraphHandle` (recorded as the planner's), and the nodes it
  adds start at once.  Nothing is awaited between the model's answer and the end of the
  visit, so a turn's changes reach the store together with its completion: a resumed run
  never finds half a turn.  The visit's output is the turn (the model's message, the
  tool results, what changed), so every later turn rebuilds its conversation from
  stored outputs and a resumed turn asks exactly what it asked before (its answer comes
  from the run's recording, not a new call).
- the planner's nodes (``worker``, and an AGGREGATE ``join`` for each split,
  :mod:`.nodes`): each runs the orchestrator's ``execute_subtask`` hook on the results
  of the nodes it depends on.
  They are not wired to the loop, so a failed one fails only itself and its dependents
  (the planner sees that and replans); a loop that re-enters ``planner`` does not reset
  them.
- ``observe``: waits until every planner node has finished, then tells the planner what
  came out (new results, failures, the turns and nodes left) and whether a bound
  (``max_planning_turns``, ``max_nodes``, the budget) ends the planning.
- ``decide`` (a switch): back to ``planner``, or on to ``synthesizer``, which writes the
  final answer with the ``synthesize_results`` hook from what completed and decides the
  run's status (:func:`.nodes.outcome` reads it back).

Worker and synthesis hooks run billed to their node (``attributed``), so
``self.call_llm`` and ``self.provider`` in them spend the run's budget; every model call
goes through the framework's call path (budget admission, retries, fallbacks, the
recording on resume).  Workers also emit the orchestrator's ``agent_*`` events and the
synthesis ``synthesis_*`` events, so displays, listings and results read a planner run
like any orchestrator run.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..engine.callbacks import StreamCallback
from ..engine.core import Edge, GraphState, Node, NodeKind, NodeState
from ..engine.guard import GuardrailRejectedError, RunPausedError
from ..engine.pauses import install
from ..errors import BudgetExceededError, GraphError, ProviderError, describe
from ..events import EventType
from ..graph import GraphRun, NodeContext, NodeOutput
from ..models import SubTask
from . import nodes
from .prompts import clip, render, result_text, task_message
from .specs import TOOL_SPECS
from .tools import FIXED_NODES, JOIN_HANDLER, WORKER_HANDLER, PlannerTools

if TYPE_CHECKING:
    from ..engine.graphcalls import ModelAccess
    from .orchestrator import PlannerOrchestrator

__all__ = ["PlannerRun", "planner_graph"]

_DONE = NodeState.COMPLETED


def planner_graph(max_turns: int) -> tuple[list[Node], list[Edge]]:
    """The loop every planner run starts from (see the module docstring)."""
    nodes = [
        Node(id="planner", max_visits=max_turns, description="plans and revises the graph with tool calls"),
        Node(id="observe", description="waits for the planned nodes and reports their results"),
        Node(id="decide", kind=NodeKind.SWITCH, description="plans again, or writes the answer"),
        Node(id="synthesizer", kind=NodeKind.TERMINAL, description="writes the final answer"),
    ]
    edges = [
        Edge(source="planner", target="observe"),
        Edge(source="observe", target="decide"),
        Edge(source="decide", target="planner"),
        Edge(source="decide", target="synthesizer"),
    ]
    return nodes, edges


class PlannerRun:
    """The graph run of one planner run (new, resumed, or a replay)."""

    def __init__(
        self,
        orch: PlannerOrchestrator,
        payload: Mapping[str, Any],
        *,
        run_id: str,
        title: str,
        callbacks: Sequence[StreamCallback] = (),
        provider: Any = None,
    ) -> None:
        self.orch = orch
        self.config = orch.config
        default_model = getattr(orch.llm, "model", None)
        if (
            provider is not None
            and self.config.primary_model is None
            and isinstance(default_model, str)
            and default_model
        ):
            # Another provider answers (a replay's recording): requests name the model they named.
            self.config = replace(self.config, primary_model=default_model)
        self.task = str(payload.get("task", ""))
        self.context: dict[str, Any] = dict(payload.get("context") or {})
        self._changed = asyncio.Event()
        loop_nodes, loop_edges = planner_graph(self.config.max_planning_turns)
        handlers: dict[str, Callable[..., Any]] = {
            "planner": self._plan,
            "observe": self._observe,
            "decide": self._decide,
            "synthesizer": functools.partial(nodes.synthesize, self),
            WORKER_HANDLER: functools.partial(nodes.work, self),
            JOIN_HANDLER: functools.partial(nodes.join, self),
        }
        self.graph_run = GraphRun(
            loop_nodes,
            loop_edges,
            handlers,
            entry="planner",
            payload=dict(payload),
            store=orch.store,
            run_id=run_id,
            concurrency=self.config.concurrency + 1,  # the observe node waits in a slot of its own
            stream_callback=list(callbacks),
            title=title,
            provider=provider if provider is not None else orch.llm,
            config=self.config,
            prices=orch.prices,
            lease_seconds=self.config.lease_seconds,
            task=self.task,
            orchestrator=orch.name,
            outcome=nodes.outcome,
        )
        models = self.graph_run.models
        assert models is not None  # a provider was given
        self.models: ModelAccess = models
        if orch.guardrails is not None:  # a pause asks a person, durably (engine/pauses.py)
            install(models, orch.guardrails)
        models.context.labels = dict(orch.labels)

    @property
    def state(self) -> GraphState:
        """The graph's state now."""
        return self.graph_run.state

    def emit(self, kind: EventType, data: Mapping[str, Any], agent_id: str | None = None) -> None:
        """Add a non-graph event (an orchestrator kind: ``agent_complete``...) to the run's log."""
        self.models.log.emit(kind, data, agent_id)

    def outputs(self, node_id: str) -> list[Any]:
        """A node's output of each completed visit, in order (the planner's: its turns)."""
        rec = self.state.nodes.get(node_id)
        return [c.output for c in rec.completions] if rec is not None else []

    def workers(self) -> list[str]:
        """The planner's nodes, in the order added."""
        return [node_id for node_id in self.state.nodes if node_id not in FIXED_NODES]

    def wake(self) -> None:
        """A planner node finished (however): ``observe`` looks again."""
        self._changed.set()

    # -- the planner's turn -----------------------------------------------------------------

    def messages(self, turn: int) -> list[dict[str, Any]]:
        """The planner's conversation before its ``turn`` (rebuilt from the stored turns)."""
        config = self.config
        system = render(
            "planner",
            config.prompts,
            max_nodes=config.max_nodes,
            max_turns=config.max_planning_turns,
            num_agents=config.num_agents,
        )
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": task_message(self.task, self.context)},
        ]
        turns, observed = self.outputs("planner"), self.outputs("observe")
        for record, observation in zip(turns[: turn - 1], observed[: turn - 1], strict=False):
            messages.append(record["message"])
            messages.extend(record["results"])
            messages.append({"role": "user", "content": observation["text"]})
        return messages

    async def _plan(self, ctx: NodeContext) -> NodeOutput:
        turn = ctx.visit
        earlier = self.outputs("planner")[: turn - 1]
        self.emit(EventType.DECOMPOSITION_START, {"task": self.task, "turn": turn}, "planner")
        try:
            async with asyncio.timeout(self.config.timeout_seconds):
                completion = await ctx.call_llm(
                    self.messages(turn), tools=TOOL_SPECS, model=self.config.planner_model
                )
        except BudgetExceededError as error:
            return self._turn(turn, stop="budget", reason=f"the budget ran out: {error}")
        except (GuardrailRejectedError, RunPausedError) as error:
            return self._turn(turn, stop="guardrail", reason=f"a guardrail stopped the planning: {error}")
        except (ProviderError, TimeoutError) as error:
            why = describe(error) if not isinstance(error, TimeoutError) else "it timed out"
            return self._turn(turn, stop="error", reason=f"the planner's model call failed ({why})")
        # From here to the return nothing is awaited: the turn's changes are stored with it.
        tools = PlannerTools(
            state=lambda: self.state,
            graph=ctx.graph,
            max_nodes=self.config.max_nodes,
            added=sum(len(record["added"]) for record in earlier),
            timeout=self.config.timeout_seconds,
            history=[change for record in earlier for change in record["changes"]],
            summarize=lambda output: clip(result_text(output), self.config.result_chars),
            turn=turn,
        )
        outcomes = tools.apply(completion.tool_calls)
        stop = next((o.stop for o in outcomes if o.stop == "max_nodes"), None)
        stop = stop or next((o.stop for o in outcomes if o.stop), None)
        reason = tools.stopped or ""
        if not completion.tool_calls:
            stop, reason = "answered", "the planner answered without calling a tool"
        record = {
            "message": completion.message(),
            "results": [o.message() for o in outcomes],
            "changes": [o.change for o in outcomes if o.change is not None],
            "added": [node_id for o in outcomes for node_id in o.added],
            "text": completion.content,
        }
        if record["changes"]:
            self._emit_plan(turn)
        return self._turn(turn, stop=stop, reason=reason, **record)

    def _turn(self, turn: int, *, stop: str | None, reason: str, **record: Any) -> NodeOutput:
        done: dict[str, Any] = {
            "turn": turn,
            "message": None,
            "results": [],
            "changes": [],
            "added": [],
            "text": "",
        }
        done.update(record, stop=stop, reason=reason)
        summary = f"turn {turn}: {len(done['changes'])} change(s)" + (f"; {reason}" if reason else "")
        return NodeOutput(output=nodes.as_stored(done), summary=summary)

    def _emit_plan(self, turn: int) -> None:
        """The plan so far, as the orchestrator's ``decomposition_complete`` (displays, results)."""
        records = self.state.nodes
        subtasks = [
            SubTask(
                id=node_id,
                description=records[node_id].spec.description,
                dependencies=[e.source for e in records[node_id].inn],
            ).to_dict()
            for node_id in self.workers()
        ]
        self.emit(
            EventType.DECOMPOSITION_COMPLETE,
            {"subtasks": subtasks, "count": len(subtasks), "turn": turn},
            "planner",
        )

    # -- observing and deciding -------------------------------------------------------------

    async def _settled(self, ctx: NodeContext) -> None:
        """Wait until every planner node has finished (each one's handler wakes this).

        When the nodes left can only wait for answers (a guardrail paused their calls),
        this node asks the same question (one answer goes to every node a guardrail
        stopped, :func:`~orchestration.engine.answers.answers_for`): with nothing running,
        the run pauses durably, and the answer continues it.  Run again once answered, it
        asks its earlier questions first, in order, so each gets its own answer back."""
        rec = self.state.nodes[ctx.node_id]
        for asked in rec.asked[: len(rec.answers)]:
            self._went_on(await ctx.interrupt(asked.question, asked.schema), asked.question)
        while True:
            left = [self.state.nodes[n] for n in self.workers() if self.state.nodes[n].state < _DONE]
            if not left:
                return
            waiting = [r for r in left if r.waiting]
            if waiting and not any(r.state in (NodeState.READY, NodeState.ACTIVE) for r in left):
                asked = waiting[0].asked[-1]
                self._went_on(await ctx.interrupt(asked.question, asked.schema), asked.question)
                continue
            self._changed.clear()
            await self._changed.wait()

    def _went_on(self, answer: Any, question: str) -> None:
        """An answer this node waited on with the nodes a guardrail stopped: false stops the run."""
        if answer is not True:
            stop = f"stopped at a guardrail (answered {answer!r}): {question}"
            self.graph_run.abort(stop)
            raise GraphError(stop)

    async def _observe(self, ctx: NodeContext) -> dict[str, Any]:
        await self._settled(ctx)
        record = ctx.input
        turn = int(record["turn"])
        config = self.config
        reported: dict[str, list[Any]] = {}
        for earlier in self.outputs("observe")[: turn - 1]:
            reported.update(earlier["reported"])
        lines, now = [], {}
        stop, reason = record["stop"], record["reason"]
        for node_id in self.workers():
            rec = self.state.nodes[node_id]
            seen = [rec.visits, int(rec.state)]
            now[node_id] = seen
            if reported.get(node_id) == seen:
                continue
            state = NodeState(rec.state)
            if state is _DONE:
                result = clip(result_text(rec.completions[-1].output), config.result_chars)
                lines.append(f"[{node_id}] completed (visit {rec.visits}):\n{result}")
            else:
                why = rec.error or rec.reason
                if not why:
                    why = (
                        "a node it depends on did not complete"
                        if state is NodeState.SKIPPED
                        else "did not run"
                    )
                lines.append(f"[{node_id}] {state.name}: {why}")
                if stop is None and (rec.error or "").startswith(BudgetExceededError.__name__):
                    stop, reason = "budget", f"the budget ran out while {node_id!r} ran"
                elif stop is None and (rec.error or "").startswith(GuardrailRejectedError.__name__):
                    stop, reason = "guardrail", f"a guardrail stopped {node_id!r}: {rec.error}"
        turns_left = config.max_planning_turns - turn
        if stop is None and turns_left <= 0:
            stop = "max_turns"
            reason = f"the planner used its {config.max_planning_turns} turns (max_planning_turns) without finishing"
        added = sum(len(r["added"]) for r in self.outputs("planner")[:turn])
        plan = ", ".join(f"{n} ({NodeState(self.state.nodes[n].state).name})" for n in self.workers())
        text = "\n\n".join(
            [
                f"Turn {turn} is done.",
                "New results:\n" + ("\n\n".join(lines) if lines else "(none)"),
                f"The plan now: {plan or 'no nodes'}.",
                f"Turns left: {turns_left}. Nodes you may still add: {max(config.max_nodes - added, 0)}. "
                "Call tools to revise the plan, or finish.",
            ]
        )
        return nodes.as_stored({"turn": turn, "text": text, "reported": now, "stop": stop, "reason": reason})

    def _decide(self, ctx: NodeContext) -> str:
        return "synthesizer" if ctx.input["stop"] else "planner"
