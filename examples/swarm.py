"""Dream Swarm: a parallel multi-domain search with deduplicated, per-domain synthesis.

python examples/swarm.py
python examples/swarm.py --provider anthropic "Survey open-source vector databases"
"""

from __future__ import annotations

from _common import choose_provider, finish, parse_args, print_status, run_example

from orchestration import DreamSwarmConfig, DreamSwarmOrchestrator


async def main() -> int:
    args = parse_args(__doc__, "Survey quantum error correction")
    provider = choose_provider(args)

    config = DreamSwarmConfig(
        num_agents=5,
        domains=["arxiv", "github", "news", "wikipedia"],
        max_parallel=3,
        primary_model=args.model,
    )
    result = await DreamSwarmOrchestrator(config, provider).execute_workflow(args.task)

    print_status(result)
    for subtask, agent in zip(result.subtasks, result.agent_results, strict=False):
        source = subtask.metadata.get("domain_source")
        print(f"  {agent.agent_id:<16} {subtask.metadata.get('domain'):<10} ({source}) {subtask.description}")
    swarm = result.metadata.get("swarm", {})
    print(f"  findings kept: {swarm.get('findings')}, duplicates removed: {swarm.get('duplicates_removed')}")
    return finish(result)


if __name__ == "__main__":
    raise SystemExit(run_example(main))
