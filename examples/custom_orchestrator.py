"""A custom orchestrator: subclass BaseOrchestrator and implement three hooks.

``ProsConsOrchestrator`` researches the arguments for and against a decision in
parallel, then a third agent, which depends on both, weighs them; the synthesis formats
the verdict.  Every model call goes through ``self.call_llm`` (retries, fallback model,
budget, events and cost come with it).

    python examples/custom_orchestrator.py
    python examples/custom_orchestrator.py --provider openai "Should we rewrite the service in Rust?"
"""

from __future__ import annotations

from typing import Any

from _common import choose_provider, finish, parse_args, print_status, run_example

from orchestration import AgentResult, AgentType, BaseOrchestrator, OrchestratorConfig, SubTask


class ProsConsOrchestrator(BaseOrchestrator):
    """Arguments for and against (in parallel), then a verdict that reads both."""

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        return [
            SubTask(
                id="pros", description=f"The strongest arguments for: {task}", agent_type=AgentType.RESEARCHER
            ),
            SubTask(
                id="cons",
                description=f"The strongest arguments against: {task}",
                agent_type=AgentType.RESEARCHER,
            ),
            SubTask(
                id="verdict",
                description=f"Weigh the arguments and decide: {task}",
                agent_type=AgentType.ANALYST,
                dependencies=["pros", "cons"],
            ),
        ]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        context = context or {}
        prompt = f"Subtask: {subtask.description}"
        for dependency_id, result in context.get("dependency_results", {}).items():
            prompt += f"\n\n{dependency_id.upper()}:\n{result.content}"
        completion = await self.call_llm(prompt)
        return AgentResult(
            agent_id=f"agent_{subtask.id}",
            agent_type=subtask.agent_type,
            subtask_id=subtask.id,
            content=completion.content,
            model=completion.model,
        )

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        sections = {result.subtask_id: result.content for result in agent_results}
        return (
            f"## For\n\n{sections.get('pros', '(missing)')}\n\n## Against\n\n{sections.get('cons', '(missing)')}"
            f"\n\n## Verdict\n\n{sections.get('verdict', '(missing)')}"
        )


async def main() -> int:
    args = parse_args(__doc__, "Adopt a four-day work week")
    provider = choose_provider(args)

    orchestrator = ProsConsOrchestrator(OrchestratorConfig(primary_model=args.model), provider)
    result = await orchestrator.execute_workflow(args.task)

    print_status(result)
    return finish(result)


if __name__ == "__main__":
    raise SystemExit(run_example(main))
