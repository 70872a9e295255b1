"""Dream Cascade: hierarchical research in three tiers (Belter -> Drummer -> Camina).

- **Tier 1, belters**: ``belter_count`` quick workers run in parallel, one per subtask of
  an LLM decomposition (an unparseable decomposition falls back to a split by research
  angle, announced in a ``warning`` event).  They are the run's agents.
- **Tier 2, drummers**: up to ``drummer_count`` analysts, each synthesising one group of
  the successful tier-1 results (groups are contiguous and as even as possible, larger
  first).  Each report is a ``SynthesisResult`` with ``level=1``.  Tier 2 runs only when
  at least ``drummer_threshold`` tier-1 results succeeded; otherwise tier 3 reads the
  tier-1 results directly (and a warning says so).
- **Tier 3, caminas**: ``camina_count`` (normally 1) final syntheses over the tier-2
  reports, each from one of ``camina_perspectives``; ``level=2``.  With more than one
  camina the final answer is their sections joined.

Tiers 2 and 3 can be disabled (``enable_drummer`` / ``enable_camina``); then the next
tier up (or the final answer) takes the lower tier's outputs as they are.  Each tier has
its own model and timeout; every call of every tier is billed (to ``agent_belter_N``,
``drummer_N``, ``camina_N``).  A tier-2 or tier-3 call that fails is reported, its
inputs are passed up unsynthesised, and the run is marked PARTIAL.

Tiers 2 and 3 run in the synthesis phase, which as a whole is limited by
``timeout_seconds``; ``drummer_timeout`` and ``camina_timeout`` limit each call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, ClassVar

from orchestration import (
    AgentResult,
    AgentType,
    BudgetExceededError,
    EventType,
    OrchestratorConfig,
    SubTask,
    SynthesisResult,
    TaskStatus,
)

from ._base import (
    RESEARCH_ANGLES,
    PatternOrchestrator,
    is_int,
    is_number,
    is_text_list,
    prompts_problems,
    run_bounded,
    split_by,
)
from ._prompts import CASCADE_PROMPTS

__all__ = ["DEFAULT_PERSPECTIVES", "DreamCascadeConfig", "DreamCascadeOrchestrator"]

#: What each camina writes (camina N takes entry N, cycling).
DEFAULT_PERSPECTIVES = (
    "one complete, well-structured final report with the key conclusions",
    "a critical review: where the analyses agree, where they disagree, and which evidence is weak",
    "the open questions, risks and recommended next steps",
)


@dataclass
class DreamCascadeConfig(OrchestratorConfig):
    """Configuration of :class:`DreamCascadeOrchestrator` (plus every ``OrchestratorConfig`` field).

    - ``belter_count``: tier-1 workers, i.e. subtasks asked of the decomposition
      (default: ``num_agents``).
    - ``drummer_count``: tier-2 analysts (at most one per successful tier-1 result).
    - ``camina_count``: tier-3 final syntheses (normally 1).
    - ``belter_model`` / ``drummer_model`` / ``camina_model``: per-tier model (default
      ``primary_model``); ``belter_timeout`` / ``drummer_timeout`` / ``camina_timeout``:
      per-call limits in seconds (default ``timeout_seconds`` for belters, none beyond the
      synthesis phase's limit for the others).
    - ``enable_drummer`` / ``enable_camina``: switch tier 2 / tier 3 off.
    - ``drummer_threshold``: tier 2 runs only with at least this many tier-1 results.
    - ``camina_perspectives``: what each camina writes.
    - ``prompts``: overrides of the pattern's prompts (``decompose``, ``belter``,
      ``drummer``, ``camina``).
    """

    belter_count: int | None = None
    drummer_count: int = 2
    camina_count: int = 1
    belter_model: str | None = None
    drummer_model: str | None = None
    camina_model: str | None = None
    belter_timeout: float | None = None
    drummer_timeout: float | None = None
    camina_timeout: float | None = None
    enable_drummer: bool = True
    enable_camina: bool = True
    drummer_threshold: int = 2
    camina_perspectives: list[str] = field(default_factory=lambda: list(DEFAULT_PERSPECTIVES))
    prompts: dict[str, str] = field(default_factory=dict)

    @property
    def belters(self) -> int:
        """How many tier-1 workers a run uses."""
        return self.belter_count if self.belter_count is not None else self.num_agents

    def validate(self) -> list[str]:
        """Every problem with this config, as messages naming the field."""
        errors = super().validate()
        for name in ("belter_count", "drummer_count", "camina_count", "drummer_threshold"):
            value = getattr(self, name)
            if value is None and name == "belter_count":
                continue
            if not is_int(value):
                errors.append(f"{name} must be an integer, got {value!r}")
            elif value < 1:
                tier_count = name in ("drummer_count", "camina_count")
                hint = " (to switch a tier off use enable_drummer/enable_camina)" if tier_count else ""
                errors.append(f"{name} must be >= 1, got {value}{hint}")
        for name in ("belter_model", "drummer_model", "camina_model"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                errors.append(f"{name} must be a non-empty model id or None, got {value!r}")
        for name in ("belter_timeout", "drummer_timeout", "camina_timeout"):
            value = getattr(self, name)
            if value is not None and (not is_number(value) or not value > 0):
                errors.append(f"{name} must be a number of seconds > 0 or None, got {value!r}")
        for name in ("enable_drummer", "enable_camina"):
            if not isinstance(getattr(self, name), bool):
                errors.append(f"{name} must be True or False, got {getattr(self, name)!r}")
        perspectives = self.camina_perspectives
        if not is_text_list(perspectives):
            errors.append(f"camina_perspectives must be a non-empty list of strings, got {perspectives!r}")
        return errors + prompts_problems(self.prompts)


class DreamCascadeOrchestrator(PatternOrchestrator):
    """Hierarchical research: belters (tier 1) -> drummers (tier 2) -> camina (tier 3).

    ``DreamCascadeOrchestrator(config, provider)``; a plain ``OrchestratorConfig`` is
    accepted and lifted to a :class:`DreamCascadeConfig` with the tier defaults.
    Synthesis levels: tier 2 reports are ``level=1``, tier 3 ``level=2``.
    """

    config_class = DreamCascadeConfig
    default_prompts: ClassVar[Mapping[str, str]] = CASCADE_PROMPTS
    config: DreamCascadeConfig

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        provider: Any = None,
        *,
        prompts: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(self._own_config(config), provider, prompts=prompts, **options)

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        """Tier-1 subtasks from an LLM decomposition (or a split by research angle)."""
        config = self.config
        items = await self.plan_with_llm(
            task, config.belters, fallback=split_by(RESEARCH_ANGLES), fallback_label="research angle"
        )
        return [
            SubTask(
                id=f"belter_{index}",
                description=item.description,
                agent_type=AgentType.BELTER,
                model=config.belter_model,
                timeout_seconds=config.belter_timeout,
                metadata={"tier": 1},
            )
            for index, item in enumerate(items, 1)
        ]

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        """One belter: one model call on its subtask."""
        task = (context or {}).get("task", subtask.description)
        completion = await self.call_llm(
            self.prompts.render("belter", subtask=subtask.description, task=task),
            model=subtask.model or self.config.belter_model,
        )
        return self.result_for(
            context,
            subtask.id,
            AgentType.BELTER,
            completion.content,
            model=completion.model,
            metadata={"tier": 1},
        )

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str | SynthesisResult:
        """Tier 2 over groups of tier-1 results, then tier 3 over the tier-2 reports."""
        config = self.config
        context = context or {}
        task = str(context.get("task", ""))
        failed: list[AgentResult] = list(context.get("failed_results", ()))
        problems: list[str] = []
        meta: dict[str, Any] = {
            "belters": [r.agent_id for r in agent_results],
            "belters_failed": [r.agent_id for r in failed],
        }
        inputs: list[tuple[str, str]] = [(r.agent_id, r.content) for r in agent_results]
        level = 0

        if config.enable_drummer and len(agent_results) >= config.drummer_threshold:
            groups = _groups(agent_results, config.drummer_count)
            meta["groups"] = {f"drummer_{i}": [r.agent_id for r in g] for i, g in enumerate(groups, 1)}
            outcomes = await run_bounded(
                [partial(self._drummer, i, group, task) for i, group in enumerate(groups, 1)],
                config.concurrency,
            )
            inputs = []
            for group, outcome in zip(groups, outcomes, strict=True):
                if isinstance(outcome, SynthesisResult):
                    inputs.append((outcome.agent_id, outcome.content))
                else:
                    problems.append(outcome)
                    inputs.extend((r.agent_id, r.content) for r in group)
            meta["drummers"] = [o.agent_id for o in outcomes if isinstance(o, SynthesisResult)]
            level = 1 if meta["drummers"] else 0
        elif config.enable_drummer:
            self.warn(
                f"tier 2 skipped: {len(agent_results)} tier-1 result(s), fewer than "
                f"drummer_threshold={config.drummer_threshold}; tier 3 reads the tier-1 results directly"
            )
            meta["tier2_skipped"] = True

        final: SynthesisResult | None = None
        if config.enable_camina:
            final = await self._caminas(task, inputs, failed, problems, meta)
        if final is None:  # tier 3 off or failed: the answer is the lower tier's output as is
            final = SynthesisResult(
                content="\n\n".join(f"## {source}\n\n{text.strip()}" for source, text in inputs),
                level=max(level, 1),
                source_ids=[source for source, _ in inputs],
            )
        final = replace(final, metadata={**final.metadata, **meta})
        if problems:
            self.set_outcome(status=TaskStatus.PARTIAL, error="; ".join(problems), metadata={"cascade": meta})
        else:
            self.set_outcome(metadata={"cascade": meta})
        return final

    async def _drummer(self, index: int, group: list[AgentResult], task: str) -> SynthesisResult | str:
        prompt = self.prompts.render(
            "drummer",
            task=task,
            count=len(group),
            results="\n\n".join(f"### Findings of {r.agent_id}\n{r.content.strip()}" for r in group),
        )
        return await self._tier_call(
            f"drummer_{index}",
            1,
            prompt,
            self.config.drummer_model,
            self.config.drummer_timeout,
            [r.agent_id for r in group],
            record=True,
        )

    async def _caminas(
        self,
        task: str,
        inputs: list[tuple[str, str]],
        failed: list[AgentResult],
        problems: list[str],
        meta: dict[str, Any],
    ) -> SynthesisResult | None:
        config = self.config
        gaps = ""
        if failed or problems:
            missing = [f"{r.agent_id} ({r.error})" for r in failed] + problems
            gaps = "Note: parts of the research failed and are missing: " + "; ".join(missing) + "\n"
        results = "\n\n".join(f"### {source}\n{text.strip()}" for source, text in inputs)
        sources = [source for source, _ in inputs]
        perspectives = config.camina_perspectives
        count = config.camina_count
        calls = []
        for index in range(1, count + 1):
            perspective = perspectives[(index - 1) % len(perspectives)]
            prompt = self.prompts.render(
                "camina", task=task, gaps=gaps, results=results, perspective=perspective
            )
            calls.append(
                partial(
                    self._tier_call,
                    f"camina_{index}",
                    2,
                    prompt,
                    config.camina_model,
                    config.camina_timeout,
                    sources,
                    record=count > 1,
                    metadata={"perspective": perspective},
                )
            )
        outcomes = await run_bounded(calls, config.concurrency)
        done = [o for o in outcomes if isinstance(o, SynthesisResult)]
        problems.extend(o for o in outcomes if isinstance(o, str))
        meta["caminas"] = [o.agent_id for o in done]
        if not done:
            return None
        if count == 1:
            return done[0]
        return SynthesisResult(
            content="\n\n".join(
                f"## {o.metadata.get('perspective', o.agent_id)}\n\n{o.content.strip()}" for o in done
            ),
            level=2,
            source_ids=[o.agent_id for o in done],
            agent_id="camina",
        )

    async def _tier_call(
        self,
        agent_id: str,
        level: int,
        prompt: str,
        model: str | None,
        limit: float | None,
        sources: list[str],
        *,
        record: bool,
        metadata: Mapping[str, Any] | None = None,
    ) -> SynthesisResult | str:
        """One tier-2/3 model call billed to ``agent_id``; a failure is returned as a message."""
        started = time.perf_counter()
        with self.agent(agent_id):
            self.emit_event(
                EventType.SYNTHESIS_START, {"level": level, "inputs": len(sources), "sources": sources}
            )
            try:
                async with asyncio.timeout(limit):
                    completion = await self.call_llm(prompt, model=model)
            except BudgetExceededError:
                raise
            except Exception as error:
                reason = (
                    f"timed out after {limit:g}s"
                    if isinstance(error, TimeoutError) and limit
                    else (f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
                )
                message = f"{agent_id} failed: {reason}"
                self.warn(message)
                return message
            synthesis = SynthesisResult(
                content=completion.content,
                level=level,
                source_ids=sources,
                agent_id=agent_id,
                model=completion.model,
                execution_time=time.perf_counter() - started,
                metadata=metadata or {},
            )
            if record:
                synthesis = self.record_synthesis(synthesis)
            return synthesis


def _groups(items: list[AgentResult], count: int) -> list[list[AgentResult]]:
    """``items`` in ``min(count, len(items))`` contiguous groups, sizes differing by at most one."""
    count = max(1, min(count, len(items)))
    base, extra = divmod(len(items), count)
    groups, start = [], 0
    for index in range(count):
        size = base + (1 if index < extra else 0)
        groups.append(items[start : start + size])
        start += size
    return groups
