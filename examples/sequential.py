"""Sequential: a pipeline of steps that run strictly in order, each on the previous output.

Steps can be model calls (a description), your own functions (sync or async), or both.

    python examples/sequential.py
    python examples/sequential.py --provider ollama "Explain how vaccines work"
"""

from __future__ import annotations

from typing import Any

from _common import choose_provider, finish, parse_args, print_status, run_example

from orchestration import OrchestratorConfig, SequentialOrchestrator
from patterns import Step


def outline(task: str, context: dict[str, Any]) -> str:
    """Turn the task into an outline (a plain function: no model call)."""
    return f"Outline for: {task}\n1. What it is\n2. How it works\n3. Why it matters"


async def word_count(text: str, context: dict[str, Any]) -> str:
    """Append a word count (an async handler)."""
    return f"{text}\n\n({len(text.split())} words, step {context['step']} of {context['total']})"


async def main() -> int:
    args = parse_args(__doc__, "Explain how solar panels work")
    provider = choose_provider(args)

    config = OrchestratorConfig(parallel_execution=False, primary_model=args.model)
    pipeline = SequentialOrchestrator(
        config,
        provider,
        steps=[
            Step("Make an outline", handler=outline),  # a function: no model call
            "Write a draft that follows the outline",  # a model call on the previous output
            "Edit the draft for clarity and concision",
            word_count,  # an async function (its docstring describes the step)
        ],
    )
    result = await pipeline.execute_workflow(args.task)

    print_status(result)
    for agent in result.agent_results:
        first_line = agent.content.strip().splitlines()[0] if agent.content.strip() else ""
        print(f"  {agent.agent_id:<14} {agent.status:<10} {first_line[:70]}")
    return finish(result)


if __name__ == "__main__":
    raise SystemExit(run_example(main))
