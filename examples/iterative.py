"""Iterative: draft, score, revise with feedback, until the score is high enough.

Offline, a scripted judge scores the drafts 0.55, 0.75, then 0.93, so the loop converges
on the third iteration.

    python examples/iterative.py
    python examples/iterative.py --provider openai "Write a limerick about compilers"
"""

from __future__ import annotations

import argparse
import asyncio
from itertools import count

from orchestration import (
    CompletionRequest,
    EventType,
    IterativeOrchestrator,
    OrchestratorConfig,
    ScriptedProvider,
    StreamEvent,
    TaskStatus,
    resolve_provider,
)


def offline_provider() -> ScriptedProvider:
    """Drafts that get better, and a judge whose scores rise with them."""
    drafts = count(1)
    scores = iter([0.55, 0.75, 0.93, 0.97, 0.99])

    def reply(request: CompletionRequest) -> str:
        if "Rate how well" in request.prompt_text:
            return f'{{"score": {next(scores)}, "feedback": "Make the imagery more concrete."}}'
        return f"Draft {next(drafts)}: crisp leaves let go / the maple counts its losses / in red arithmetic"

    return ScriptedProvider(reply)


def show(event: StreamEvent) -> None:
    """Print each iteration's score as it completes."""
    if event.event_type is EventType.ITERATION_COMPLETE:
        data = event.data
        print(f"  iteration {data['iteration']}/{data['max_iterations']}: score {data['score']:.2f}"
              f"{' (converged)' if data['converged'] else ''}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default="Write a haiku about autumn")
    parser.add_argument("--provider", help="a provider name (default: the offline scripted provider)")
    parser.add_argument("--model", help="the primary model id")
    args = parser.parse_args()
    provider = resolve_provider(args.provider, args.model) if args.provider else offline_provider()

    orchestrator = IterativeOrchestrator(
        OrchestratorConfig(primary_model=args.model), provider,
        max_iterations=5,
        convergence_fn=lambda r: r.score > 0.9,
    )
    result = await orchestrator.execute_workflow(args.task, stream_callback=show)

    print(f"status: {result.status}" + (f" ({result.error})" if result.error else ""))
    print(f"converged: {result.metadata.get('converged')} after {result.metadata.get('iterations')} iteration(s)")
    print(f"\n{result.final_synthesis}\n")
    print(f"Cost: ${result.total_cost:.6f} ({result.usage.calls} calls)")
    return 0 if result.status is TaskStatus.COMPLETED else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
