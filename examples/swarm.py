"""Dream Swarm: a parallel multi-domain search with deduplicated, per-domain synthesis.

    python examples/swarm.py
    python examples/swarm.py --provider anthropic "Survey open-source vector databases"
"""

from __future__ import annotations

import argparse
import asyncio

from orchestration import (
    DreamSwarmConfig,
    DreamSwarmOrchestrator,
    ScriptedProvider,
    TaskStatus,
    resolve_provider,
)
from orchestration.scripted import demo_responder


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default="Survey quantum error correction")
    parser.add_argument("--provider", help="a provider name (default: the offline scripted provider)")
    parser.add_argument("--model", help="the primary model id")
    args = parser.parse_args()
    provider = resolve_provider(args.provider, args.model) if args.provider else ScriptedProvider(demo_responder)

    config = DreamSwarmConfig(
        num_agents=5,
        domains=["arxiv", "github", "news", "wikipedia"],
        max_parallel=3,
        primary_model=args.model,
    )
    result = await DreamSwarmOrchestrator(config, provider).execute_workflow(args.task)

    print(f"status: {result.status}" + (f" ({result.error})" if result.error else ""))
    for subtask, agent in zip(result.subtasks, result.agent_results, strict=False):
        source = subtask.metadata.get("domain_source")
        print(f"  {agent.agent_id:<16} {subtask.metadata.get('domain'):<10} ({source}) {subtask.description}")
    swarm = result.metadata.get("swarm", {})
    print(f"  findings kept: {swarm.get('findings')}, duplicates removed: {swarm.get('duplicates_removed')}")
    print(f"\n{result.final_synthesis}\n")
    print(f"Cost: ${result.total_cost:.6f} ({result.usage.calls} calls)")
    return 0 if result.status is TaskStatus.COMPLETED else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
