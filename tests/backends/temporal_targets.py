"""Graphs and workflows the Temporal tests run, by import path, on in-process and separate workers."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from orchestration import Edge, Graph, Node, NodeKind, OrchestratorConfig, ScriptedProvider
from orchestration.workflow import Flow, Workflow, step

# -- parity: a split made by a handler, model calls, a loop through a switch -------------

parity = Graph(
    nodes=[
        Node(id="plan"),
        Node(id="research"),
        Node(id="draft"),
        Node(id="review", kind=NodeKind.SWITCH, max_visits=3),
        Node(id="publish", kind=NodeKind.TERMINAL),
    ],
    edges=[
        Edge(source="plan", target="research"),
        Edge(source="research", target="draft"),
        Edge(source="draft", target="review"),
        Edge(source="review", target="draft"),  # the loop's back-edge
        Edge(source="review", target="publish"),
    ],
    entry="plan",
)


def _plan(ctx: Any) -> str:
    ctx.graph.split("research", [Node(id=f"research.{t}") for t in ("tides", "moon")], reason="two questions")
    return "plan ready"


async def _part(ctx: Any) -> str:
    return (await ctx.call_llm(f"Facts about {ctx.node_id}", max_tokens=50)).content


def _draft(ctx: Any) -> dict[str, Any]:
    return {"text": f"draft {ctx.visit}", "score": ctx.visit * 40, "seen": sorted(ctx.inputs())}


def _review(ctx: Any) -> str:
    return "publish" if ctx.input["score"] >= 80 else "draft"


parity_handlers = {"plan": _plan, NodeKind.TASK: _part, "draft": _draft, "review": _review}


def parity_provider() -> ScriptedProvider:
    return ScriptedProvider(
        {
            "Facts about research.tides": "Tides follow the moon.",
            "Facts about research.moon": "The moon is far.",
        }
    )


parity_config = OrchestratorConfig(max_total_cost=1.0)

# -- vendor: independent nodes calling a real HTTP vendor (the kill trials) ----------------

VENDOR_NODES = 3

vendor = Graph(
    nodes=[*(Node(id=f"n{i}") for i in range(VENDOR_NODES)), Node(id="join", kind=NodeKind.TERMINAL)],
    edges=[Edge(source=f"n{i}", target="join") for i in range(VENDOR_NODES)],
)


async def _ask(ctx: Any) -> str:
    return (await ctx.call_llm(f"{ctx.payload}:{ctx.node_id}", max_tokens=20)).content


vendor_handlers = {NodeKind.TASK: _ask}


def vendor_provider() -> Any:
    from providers.openai import OpenAIProvider

    return OpenAIProvider("gpt-4o-mini", base_url=os.environ["FAKE_VENDOR_URL"], api_key="sk-test-secret")


vendor_config = OrchestratorConfig(max_retries=0)

# -- slow: a node that runs until cancelled ---------------------------------------------------

slow = Graph(
    nodes=[Node(id="first"), Node(id="wait"), Node(id="after")],
    edges=[Edge(source="first", target="wait"), Edge(source="wait", target="after")],
)


async def _forever(ctx: Any) -> str:
    await asyncio.sleep(3600)
    return "never"


slow_handlers = {"first": lambda ctx: "started", "wait": _forever, "after": lambda ctx: "never"}


# -- a decorator workflow ------------------------------------------------------------------


class Report(Workflow):
    @step
    async def outline(self, topic: str) -> list[str]:
        return [f"{topic}: causes", f"{topic}: effects"]

    @step
    async def research(self, outline: list[str]) -> str:
        return "; ".join(outline)

    @step
    async def critique(self, outline: list[str]) -> str:
        return f"{len(outline)} sections"

    @step
    async def write(self, research: str, critique: str) -> str:
        return f"{research} ({critique})"

    def build(self, flow: Flow) -> None:
        flow.start(self.outline).then([self.research, self.critique]).then(self.write)


# -- an orchestrator with dependencies -------------------------------------------------------

from orchestration import AgentResult, BaseOrchestrator, SubTask  # noqa: E402


class Chain(BaseOrchestrator):
    """Research two angles, then compare them (a dependency), then synthesize."""

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [
            SubTask(id="causes", description=f"causes of {task}"),
            SubTask(id="effects", description=f"effects of {task}"),
            SubTask(id="compare", description="compare", dependencies=["causes", "effects"]),
        ]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        seen = sorted((context or {}).get("dependency_results", {}))
        answer = (await self.call_llm(f"{subtask.description} after {seen}")).content
        return AgentResult(agent_id="", agent_type=subtask.agent_type, subtask_id=subtask.id, content=answer)

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return " | ".join(f"{r.subtask_id}: {r.content}" for r in agent_results)
