"""Iterative: refine an answer until it is good enough or the iteration cap is reached.

Each iteration writes an answer (the first from the task, later ones from the previous
answer and its feedback), scores it 0-1 (by default an LLM judgement, parsed robustly;
or ``scorer=``), and asks ``convergence_fn(result)`` whether to stop, where ``result`` is
an :class:`IterationResult` (``iteration``, ``output``, ``score``, ``feedback``)::

    IterativeOrchestrator(config, provider, max_iterations=5, convergence_fn=lambda r: r.score > 0.9)

Every iteration emits ``iteration_start`` / ``iteration_complete`` events (with
``iteration`` and ``max_iterations``).  On convergence the run is COMPLETED with the
converged output; at the cap the answer is the best-scoring output (the latest on a
tie), and the run says it did not converge.  A failing model call after the first
iteration keeps the best answer so far (also reported); a ``convergence_fn`` or
``scorer`` that raises fails the run with the reason.  The loop runs as the run's one
agent (``agent_refine``), so all of its calls are billed there; its time limit is
``timeout_seconds`` per call (``2 * max_iterations * timeout_seconds`` in all).  No state is
kept on the instance between runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from orchestration import (
    AgentResult,
    AgentType,
    BudgetExceededError,
    ConfigError,
    EventType,
    OrchestrationError,
    OrchestratorConfig,
    SubTask,
    SynthesisResult,
    TaskStatus,
)

from ._base import PatternOrchestrator, is_int, is_number, maybe_await
from ._parsing import parse_score
from ._prompts import ITERATIVE_PROMPTS

__all__ = ["ConvergenceError", "IterationResult", "IterativeOrchestrator", "Scorer"]

#: ``scorer(output, task)`` -> a 0-1 score, or ``(score, feedback)``; sync or async.
Scorer = Callable[[str, str], Any]
#: ``refine_fn(task, previous)`` -> the next answer (``previous`` is None the first time).
Refiner = Callable[[str, "IterationResult | None"], str | Awaitable[str]]


class ConvergenceError(OrchestrationError):
    """``convergence_fn``, ``scorer`` or ``refine_fn`` raised or returned something unusable."""


@dataclass(frozen=True, slots=True)
class IterationResult:
    """One iteration: its number (from 1), its output, its 0-1 score and the feedback."""

    iteration: int
    output: str
    score: float
    feedback: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


class IterativeOrchestrator(PatternOrchestrator):
    """Looped refinement with a score and a convergence test.

    Args:
        max_iterations: the cap (>= 1).
        convergence_fn: ``fn(IterationResult) -> bool``; default ``score >= score_threshold``.
        scorer: ``fn(output, task)`` (sync or async) returning a 0-1 score or
            ``(score, feedback)``; default: the model judges (prompt ``judge``).
        refine_fn: ``fn(task, previous)`` (sync or async) producing each answer instead of
            the ``draft``/``revise`` model calls.
        score_threshold: the default convergence threshold.
        prompts: overrides of ``draft``, ``revise``, ``judge``.
    """

    default_prompts = ITERATIVE_PROMPTS

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        provider: Any = None,
        *,
        max_iterations: int = 5,
        convergence_fn: Callable[[IterationResult], Any] | None = None,
        scorer: Scorer | None = None,
        refine_fn: Refiner | None = None,
        score_threshold: float = 0.9,
        prompts: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(config, provider, prompts=prompts, **options)
        if not is_int(max_iterations) or max_iterations < 1:
            raise ConfigError(f"max_iterations must be an integer >= 1, got {max_iterations!r}")
        if not is_number(score_threshold) or not 0 <= score_threshold <= 1:
            raise ConfigError(f"score_threshold must be a number between 0 and 1, got {score_threshold!r}")
        for name, value in (("convergence_fn", convergence_fn), ("scorer", scorer), ("refine_fn", refine_fn)):
            if value is not None and not callable(value):
                raise ConfigError(f"{name} must be callable, got {value!r}")
        self.max_iterations = max_iterations
        self.score_threshold = float(score_threshold)
        self.convergence_fn = convergence_fn
        self.scorer = scorer
        self.refine_fn = refine_fn

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        """One subtask: the refinement loop."""
        # The loop makes two calls per iteration, each limited by timeout_seconds.
        limit = self.config.timeout_seconds * 2 * self.max_iterations
        return [
            SubTask(
                id="refine",
                description=task,
                agent_type=AgentType.WRITER,
                timeout_seconds=limit,
                metadata={"max_iterations": self.max_iterations},
            )
        ]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        """Run the loop; the result's content is the converged (or best) output."""
        context = context or {}
        task = str(context.get("task", subtask.description))
        cap = self.max_iterations
        history: list[IterationResult] = []
        converged = False
        stopped: str | None = None
        for number in range(1, cap + 1):
            self.emit_event(EventType.ITERATION_START, {"iteration": number, "max_iterations": cap})
            previous = history[-1] if history else None
            try:
                output = await self._write(task, number, previous)
                score, feedback = await self._score(output, task)
            except (BudgetExceededError, ConvergenceError):
                raise
            except Exception as error:
                if not history:
                    raise
                stopped = f"iteration {number} failed ({type(error).__name__}: {error})"
                self.warn(f"{stopped}; keeping the best of {len(history)} completed iteration(s)")
                break
            result = IterationResult(number, output, score, feedback)
            history.append(result)
            converged = await self._converged(result)
            self.emit_event(
                EventType.ITERATION_COMPLETE,
                {
                    "iteration": number,
                    "max_iterations": cap,
                    "score": score,
                    "feedback": feedback,
                    "converged": converged,
                    "output": output,
                },
            )
            if converged:
                break
        best = history[-1] if converged else max(reversed(history), key=lambda r: r.score)
        return self.result_for(
            context,
            subtask.id,
            AgentType.WRITER,
            best.output,
            metadata={
                "converged": converged,
                "iterations": [r.to_dict() for r in history],
                "best_iteration": best.iteration,
                "best_score": best.score,
                "stopped": stopped,
            },
        )

    async def _write(self, task: str, number: int, previous: IterationResult | None) -> str:
        if self.refine_fn is not None:
            try:
                output = await maybe_await(self.refine_fn(task, previous))
            except Exception as error:
                raise ConvergenceError(
                    f"refine_fn raised {type(error).__name__}: {error} (iteration {number})"
                ) from error
            if not isinstance(output, str):
                raise ConvergenceError(f"refine_fn returned {type(output).__name__}; return a str")
            return output
        if previous is None:
            prompt = self.prompts.render("draft", task=task)
        else:
            prompt = self.prompts.render(
                "revise",
                task=task,
                iteration=previous.iteration,
                previous=previous.output,
                feedback=previous.feedback or "(none)",
            )
        return (await self.call_llm(prompt)).content

    async def _score(self, output: str, task: str) -> tuple[float, str]:
        if self.scorer is None:
            answer = (await self.call_llm(self.prompts.render("judge", task=task, output=output))).content
            parsed = parse_score(answer)
            if parsed is None:
                self.warn("the judge's answer had no score; counted as 0", output=answer[:500])
                return 0.0, answer.strip()
            return parsed
        try:
            value = await maybe_await(self.scorer(output, task))
        except Exception as error:
            raise ConvergenceError(f"scorer raised {type(error).__name__}: {error}") from error
        score, feedback = value if isinstance(value, tuple) and len(value) == 2 else (value, "")
        if not is_number(score) or not 0 <= score <= 1:
            raise ConvergenceError(
                f"scorer returned {value!r}; return a score between 0 and 1 (or a (score, feedback) pair)"
            )
        return float(score), str(feedback)

    async def _converged(self, result: IterationResult) -> bool:
        if self.convergence_fn is None:
            return result.score >= self.score_threshold
        try:
            return bool(await maybe_await(self.convergence_fn(result)))
        except Exception as error:
            raise ConvergenceError(
                f"convergence_fn raised {type(error).__name__}: {error} (iteration {result.iteration})"
            ) from error

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str | SynthesisResult:
        """The loop's answer; reports a run that did not converge."""
        result = agent_results[0]
        meta = dict(result.metadata)
        iterations = len(meta.get("iterations", ()))
        summary = {
            "converged": bool(meta.get("converged")),
            "iterations": iterations,
            "best_iteration": meta.get("best_iteration"),
            "best_score": meta.get("best_score"),
        }
        if not summary["converged"]:
            why = meta.get("stopped") or f"the cap of {self.max_iterations} iteration(s) was reached"
            self.set_outcome(
                status=TaskStatus.PARTIAL,
                error=(
                    f"did not converge: {why}; the answer is iteration {summary['best_iteration']}'s "
                    f"(score {summary['best_score']:.2f})"
                ),
                metadata=summary,
            )
        else:
            self.set_outcome(metadata=summary)
        return SynthesisResult(
            content=result.content,
            level=1,
            source_ids=[result.agent_id],
            metadata={**summary, "iteration_results": meta.get("iterations", [])},
        )
