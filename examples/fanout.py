"""Fan-out: one plan, N parallel model calls, one synthesis.

python examples/fanout.py
python examples/fanout.py --agents 6 --provider openai "Compare note-taking apps"
"""

from __future__ import annotations

from _common import choose_provider, finish, parse_args, print_status, run_example

from orchestration import OrchestratorConfig
from patterns import FanOutOrchestrator


async def main() -> int:
    args = parse_args(
        __doc__,
        "Research quantum computing applications",
        lambda parser: parser.add_argument(
            "--agents", type=int, default=4, help="how many parallel subtasks"
        ),
    )
    provider = choose_provider(args)

    config = OrchestratorConfig(
        num_agents=args.agents, max_concurrent_agents=args.agents, primary_model=args.model
    )
    result = await FanOutOrchestrator(config, provider).execute_workflow(args.task)

    print_status(result)
    for subtask in result.subtasks:
        print(f"  {subtask.id}: {subtask.description}")
    return finish(result)


if __name__ == "__main__":
    raise SystemExit(run_example(main))
