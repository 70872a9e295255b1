"""Iterative: draft, score, revise with feedback, until the score is high enough.

Offline, a scripted judge scores the drafts 0.55, 0.75, then 0.93, so the loop converges
on the third iteration.

    python examples/iterative.py
    python examples/iterative.py --provider openai "Write a limerick about compilers"
"""

from __future__ import annotations

from itertools import count

from _common import choose_provider, finish, parse_args, print_status, run_example

from orchestration import (
    CompletionRequest,
    EventType,
    IterativeOrchestrator,
    OrchestratorConfig,
    ScriptedProvider,
    StreamEvent,
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
        print(
            f"  iteration {data['iteration']}/{data['max_iterations']}: score {data['score']:.2f}"
            f"{' (converged)' if data['converged'] else ''}"
        )


async def main() -> int:
    args = parse_args(__doc__, "Write a haiku about autumn")
    provider = choose_provider(args, offline_provider)

    orchestrator = IterativeOrchestrator(
        OrchestratorConfig(primary_model=args.model),
        provider,
        max_iterations=5,
        convergence_fn=lambda r: r.score > 0.9,
    )
    result = await orchestrator.execute_workflow(args.task, stream_callback=show)

    print_status(result)
    print(
        f"converged: {result.metadata.get('converged')} after {result.metadata.get('iterations')} iteration(s)"
    )
    return finish(result)


if __name__ == "__main__":
    raise SystemExit(run_example(main))
