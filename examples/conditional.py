"""Conditional: pick a branch at run time from the context.

A complex task gets a full Dream Cascade; a simple one a single quick step.

    python examples/conditional.py --complexity 0.9
    python examples/conditional.py --complexity 0.2
    python examples/conditional.py --provider openai --complexity 0.8 "Assess the home battery market"
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from orchestration import (
    ConditionalOrchestrator,
    DreamCascadeConfig,
    DreamCascadeOrchestrator,
    OrchestratorConfig,
    ScriptedProvider,
    TaskStatus,
    resolve_provider,
)
from orchestration.scripted import demo_responder


def should_deep_analyze(context: dict[str, Any]) -> bool:
    """The README's condition: deep analysis for complex tasks."""
    return bool(context.get("complexity", 0) > 0.7)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default="Research quantum computing applications")
    parser.add_argument("--complexity", type=float, default=0.9, help="0-1; above 0.7 takes the deep branch")
    parser.add_argument("--provider", help="a provider name (default: the offline scripted provider)")
    parser.add_argument("--model", help="the primary model id")
    args = parser.parse_args()
    provider = resolve_provider(args.provider, args.model) if args.provider else ScriptedProvider(demo_responder)

    config = OrchestratorConfig(primary_model=args.model)
    deep_analysis = DreamCascadeOrchestrator(
        DreamCascadeConfig(belter_count=3, drummer_count=2, primary_model=args.model), provider
    )
    quick_analysis = ["Answer the task in three sentences"]
    orchestrator = ConditionalOrchestrator(
        config, provider,
        condition=should_deep_analyze,
        true_branch=deep_analysis,
        false_branch=quick_analysis,
    )
    result = await orchestrator.execute_workflow(args.task, context={"complexity": args.complexity})

    print(f"status: {result.status}" + (f" ({result.error})" if result.error else ""))
    print(f"branch: {result.metadata.get('branch')} ({len(result.agent_results)} agent(s))")
    print(f"\n{result.final_synthesis}\n")
    print(f"Cost: ${result.total_cost:.6f} ({result.usage.calls} calls)")
    return 0 if result.status is TaskStatus.COMPLETED else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
