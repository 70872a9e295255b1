"""Conditional: pick a branch at run time from the context.

A complex task gets a full Dream Cascade; a simple one a single quick step.

    python examples/conditional.py --complexity 0.9
    python examples/conditional.py --complexity 0.2
    python examples/conditional.py --provider openai --complexity 0.8 "Assess the home battery market"
"""

from __future__ import annotations

from typing import Any

from _common import choose_provider, finish, parse_args, print_status, run_example

from orchestration import (
    ConditionalOrchestrator,
    DreamCascadeConfig,
    DreamCascadeOrchestrator,
    OrchestratorConfig,
)


def should_deep_analyze(context: dict[str, Any]) -> bool:
    """The README's condition: deep analysis for complex tasks."""
    return bool(context.get("complexity", 0) > 0.7)


async def main() -> int:
    args = parse_args(
        __doc__,
        "Research quantum computing applications",
        lambda parser: parser.add_argument(
            "--complexity", type=float, default=0.9, help="0-1; above 0.7 takes the deep branch"
        ),
    )
    provider = choose_provider(args)

    config = OrchestratorConfig(primary_model=args.model)
    deep_analysis = DreamCascadeOrchestrator(
        DreamCascadeConfig(belter_count=3, drummer_count=2, primary_model=args.model), provider
    )
    quick_analysis = ["Answer the task in three sentences"]
    orchestrator = ConditionalOrchestrator(
        config,
        provider,
        condition=should_deep_analyze,
        true_branch=deep_analysis,
        false_branch=quick_analysis,
    )
    result = await orchestrator.execute_workflow(args.task, context={"complexity": args.complexity})

    print_status(result)
    print(f"branch: {result.metadata.get('branch')} ({len(result.agent_results)} agent(s))")
    return finish(result)


if __name__ == "__main__":
    raise SystemExit(run_example(main))
