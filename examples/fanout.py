"""Fan-out: one plan, N parallel model calls, one synthesis.

    python examples/fanout.py
    python examples/fanout.py --agents 6 --provider openai "Compare note-taking apps"
"""

from __future__ import annotations

import argparse
import asyncio

from orchestration import OrchestratorConfig, ScriptedProvider, TaskStatus, resolve_provider
from orchestration.scripted import demo_responder
from patterns import FanOutOrchestrator


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default="Research quantum computing applications")
    parser.add_argument("--agents", type=int, default=4, help="how many parallel subtasks")
    parser.add_argument("--provider", help="a provider name (default: the offline scripted provider)")
    parser.add_argument("--model", help="the primary model id")
    args = parser.parse_args()
    provider = resolve_provider(args.provider, args.model) if args.provider else ScriptedProvider(demo_responder)

    config = OrchestratorConfig(num_agents=args.agents, max_concurrent_agents=args.agents, primary_model=args.model)
    result = await FanOutOrchestrator(config, provider).execute_workflow(args.task)

    print(f"status: {result.status}" + (f" ({result.error})" if result.error else ""))
    for subtask in result.subtasks:
        print(f"  {subtask.id}: {subtask.description}")
    print(f"\n{result.final_synthesis}\n")
    print(f"Cost: ${result.total_cost:.6f} ({result.usage.calls} calls)")
    return 0 if result.status is TaskStatus.COMPLETED else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
