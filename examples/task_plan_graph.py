"""Seed 001's Task/Plan graph: tasks do, plans decide, in plan -> act -> observe -> act cycles.

Tasks are TASK nodes (they call the model through the framework); plans are SWITCH nodes
(they route on what the last task produced).  A plan may send work back for another
round: the cycle passes through the plan, so it is a loop, capped by the node's
``max_visits``; the run's budget caps what all the calls may cost.  Both guardrails are
enforced by the engine, not by the task authors.

python examples/task_plan_graph.py
python examples/task_plan_graph.py --provider openai "a CLI that renames photos by date"
"""

from __future__ import annotations

import sys

from _common import choose_provider, parse_args, run_example

from orchestration import Edge, Graph, MemoryStore, Node, NodeKind, OrchestratorConfig, ScriptedProvider
from orchestration.graph import NodeContext
from orchestration.llm import CompletionRequest


def offline_model(request: CompletionRequest) -> str:
    """The scripted model: the first review of each part fails, the second passes."""
    prompt = request.prompt_text
    if prompt.startswith("Review"):
        return "PASS" if "attempt 2" in prompt else "FAIL: add error handling"
    if prompt.startswith("Spec"):
        return "Parse arguments; read EXIF dates; rename files; report what changed."
    return f"code for: {prompt.split(':', 1)[-1].strip()[:60]}"


def graph() -> Graph:
    parts = ("cli", "core")
    nodes = [Node(id="spec"), Node(id="plan", kind=NodeKind.SWITCH)]
    edges = [Edge(source="spec", target="plan")]
    for part in parts:
        nodes += [
            Node(id=f"code_{part}", max_visits=3),  # the observe -> act loop's cap
            Node(id=f"review_{part}"),
            Node(id=f"accept_{part}", kind=NodeKind.SWITCH),
        ]
        edges += [
            Edge(source="plan", target=f"code_{part}"),
            Edge(source=f"code_{part}", target=f"review_{part}"),
            Edge(source=f"review_{part}", target=f"accept_{part}"),
            Edge(source=f"accept_{part}", target=f"code_{part}"),  # back for another round
            Edge(source=f"accept_{part}", target="ship"),
        ]
    nodes.append(Node(id="ship", kind=NodeKind.TERMINAL))
    return Graph(nodes=nodes, edges=edges, entry="spec")


async def spec(ctx: NodeContext) -> str:
    return (await ctx.call_llm(f"Spec the task: {ctx.payload}", max_tokens=200)).content


def plan(ctx: NodeContext) -> list[str]:
    return ["code_cli", "code_core"]  # both parts in parallel


async def code(ctx: NodeContext) -> dict[str, object]:
    part = ctx.node_id.removeprefix("code_")
    text = (
        await ctx.call_llm(f"Write the {part} (attempt {ctx.visit}): {ctx.payload}", max_tokens=300)
    ).content
    return {"part": part, "attempt": ctx.visit, "code": text}


async def review(ctx: NodeContext) -> dict[str, object]:
    work = dict(ctx.input)
    verdict = (
        await ctx.call_llm(f"Review attempt {work['attempt']} of {work['part']}: {work['code']}")
    ).content
    return {**work, "verdict": verdict}


def accept(ctx: NodeContext) -> str:
    part = ctx.node_id.removeprefix("accept_")
    return "ship" if str(ctx.input["verdict"]).startswith("PASS") else f"code_{part}"


async def main() -> int:
    args = parse_args(__doc__, "a CLI that renames photos by the date they were taken")
    provider = choose_provider(args, offline=lambda: ScriptedProvider(offline_model))
    handlers = {
        "spec": spec,
        "plan": plan,
        **{f"code_{p}": code for p in ("cli", "core")},
        **{f"review_{p}": review for p in ("cli", "core")},
        **{f"accept_{p}": accept for p in ("cli", "core")},
    }
    config = OrchestratorConfig(max_total_cost=0.25, primary_model=args.model)
    result = await graph().run(
        handlers, payload=args.task, store=MemoryStore(), provider=provider, config=config
    )
    print(f"status: {result.status}")
    for node_id, visits in result.visits.items():
        if visits > 1:
            print(f"  {node_id}: {visits} rounds")
    for work in (result.output("ship") or {}).values():  # what each accepting plan passed on
        print(f"  shipped {work['part']} after {work['attempt']} attempt(s): {work['verdict']}")
    print(f"Cost: ${result.total_cost:.6f} for {result.usage.calls} calls")
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(run_example(main))
