"""Dream Cascade: hierarchical research in three tiers (Belter -> Drummer -> Camina).

Runs offline with the scripted provider by default:

    python examples/cascade.py
    python examples/cascade.py --provider openai --model gpt-4o-mini "Research solid-state batteries"
"""

from __future__ import annotations

from _common import choose_provider, finish, parse_args, print_status, run_example

from orchestration import DreamCascadeConfig, DreamCascadeOrchestrator, EventType, StreamEvent


def progress(event: StreamEvent) -> None:
    """Print one line per finished agent and per synthesis tier."""
    if event.event_type in (EventType.AGENT_COMPLETE, EventType.AGENT_ERROR):
        print(f"  [{event.progress:5.1f}%] {event.agent_id}: {event.data['result']['status']}")
    elif event.event_type is EventType.SYNTHESIS_COMPLETE:
        synthesis = event.data["synthesis"]
        print(f"  [{event.progress:5.1f}%] {synthesis['agent_id']}: level {synthesis['level']} synthesis")


async def main() -> int:
    args = parse_args(__doc__, "Research quantum computing applications")
    provider = choose_provider(args)

    config = DreamCascadeConfig(belter_count=4, drummer_count=2, camina_count=1, primary_model=args.model)
    orchestrator = DreamCascadeOrchestrator(config, provider)
    result = await orchestrator.execute_workflow(args.task, stream_callback=progress)

    print()
    print_status(result)
    for synthesis in result.synthesis_results:
        print(f"  {synthesis.agent_id:<10} level {synthesis.level}  from {', '.join(synthesis.source_ids)}")
    return finish(result, cost_by_agent=True)


if __name__ == "__main__":
    raise SystemExit(run_example(main))
