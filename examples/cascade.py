"""Dream Cascade: hierarchical research in three tiers (Belter -> Drummer -> Camina).

Runs offline with the scripted provider by default:

    python examples/cascade.py
    python examples/cascade.py --provider openai --model gpt-4o-mini "Research solid-state batteries"
"""

from __future__ import annotations

import argparse
import asyncio

from orchestration import (
    DreamCascadeConfig,
    DreamCascadeOrchestrator,
    EventType,
    ScriptedProvider,
    StreamEvent,
    TaskStatus,
    resolve_provider,
)
from orchestration.scripted import demo_responder


def progress(event: StreamEvent) -> None:
    """Print one line per finished agent and per synthesis tier."""
    if event.event_type in (EventType.AGENT_COMPLETE, EventType.AGENT_ERROR):
        print(f"  [{event.progress:5.1f}%] {event.agent_id}: {event.data['result']['status']}")
    elif event.event_type is EventType.SYNTHESIS_COMPLETE:
        synthesis = event.data["synthesis"]
        print(f"  [{event.progress:5.1f}%] {synthesis['agent_id']}: level {synthesis['level']} synthesis")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default="Research quantum computing applications")
    parser.add_argument("--provider", help="a provider name (default: the offline scripted provider)")
    parser.add_argument("--model", help="the primary model id")
    args = parser.parse_args()
    provider = resolve_provider(args.provider, args.model) if args.provider else ScriptedProvider(demo_responder)

    config = DreamCascadeConfig(belter_count=4, drummer_count=2, camina_count=1, primary_model=args.model)
    orchestrator = DreamCascadeOrchestrator(config, provider)
    result = await orchestrator.execute_workflow(args.task, stream_callback=progress)

    print(f"\nstatus: {result.status}" + (f" ({result.error})" if result.error else ""))
    for synthesis in result.synthesis_results:
        print(f"  {synthesis.agent_id:<10} level {synthesis.level}  from {', '.join(synthesis.source_ids)}")
    print(f"\n{result.final_synthesis}\n")
    for agent, usage in result.cost_by_agent.items():
        print(f"  {agent:<16} {usage.calls} call(s) ${usage.cost_usd:.6f}")
    print(f"Cost: ${result.total_cost:.6f} ({result.usage.calls} calls)")
    return 0 if result.status is TaskStatus.COMPLETED else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
