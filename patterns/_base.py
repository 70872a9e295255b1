"""What the built-in patterns share: prompts, their own config class, LLM planning with a
fallback, bounded fan-out, user callbacks that may be sync or async, and config checks.

Patterns keep no per-run state on ``self``: everything a run needs travels in its
subtasks' metadata and its agents' results, so two runs of one instance (even at the
same time) never see each other's data.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeGuard, TypeVar

from orchestration import (
    AgentResult,
    BaseOrchestrator,
    ConfigError,
    EventType,
    OrchestratorConfig,
)

from ._parsing import PlanItem, parse_plan
from ._prompts import PromptSet

__all__ = [
    "PIPELINE_STAGES",
    "RESEARCH_ANGLES",
    "PatternOrchestrator",
    "format_results",
    "is_int",
    "is_number",
    "is_text_list",
    "maybe_await",
    "prompts_problems",
    "run_bounded",
    "split_by",
]

T = TypeVar("T")

#: How an unparseable research decomposition is split instead (one angle per subtask).
RESEARCH_ANGLES = (
    "background and key concepts",
    "current state and recent developments",
    "practical applications and examples",
    "challenges, risks and limitations",
    "open questions and future directions",
    "comparison with alternatives",
    "costs and trade-offs",
    "evidence and sources",
)

#: How an unparseable pipeline decomposition is split instead (in order).
PIPELINE_STAGES = (
    "gather the facts and requirements",
    "analyse what was gathered",
    "draft the answer",
    "review the draft and correct it",
    "finalise and polish",
)


def split_by(labels: Sequence[str]) -> Callable[[str, int], list[str]]:
    """A fallback splitter: ``count`` subtasks, one per label (cycled), each about ``task``."""

    def split(task: str, count: int) -> list[str]:
        parts = []
        for index in range(count):
            label = labels[index % len(labels)]
            lap = index // len(labels)
            suffix = f" (part {lap + 1})" if lap else ""
            parts.append(f"{label[0].upper()}{label[1:]} of: {task}{suffix}")
        return parts

    return split


class PatternOrchestrator(BaseOrchestrator):
    """Base of the built-in patterns: prompts as data and shared helpers.

    Args:
        config: the run configuration (a pattern may require its own subclass).
        provider: any provider :func:`orchestration.as_provider` accepts.
        prompts: overrides for this instance's prompts (see ``default_prompts``).
        options: the other keyword arguments of :class:`~orchestration.BaseOrchestrator`
            (``store``, ``prices``, ...).
    """

    #: The prompts this pattern uses (``string.Template`` syntax), by name.
    default_prompts: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        provider: Any = None,
        *,
        prompts: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(config, provider, **options)
        # A pattern config's prompts are that pattern's; another pattern sharing the config ignores them.
        own = self.config_class is not OrchestratorConfig and isinstance(self.config, self.config_class)
        layer = getattr(self.config, "prompts", None) if own else None
        self.prompts = PromptSet(type(self).__name__, self.default_prompts, layer, prompts)

    @classmethod
    def _own_config(cls, config: OrchestratorConfig | None) -> OrchestratorConfig:
        """``config`` as this pattern's ``config_class``: None gives the defaults, a plain
        :class:`OrchestratorConfig` is lifted (pattern fields at their defaults), any
        other class is a :class:`ConfigError`."""
        wanted = cls.config_class
        if config is None:
            return wanted()
        if type(config) is OrchestratorConfig:
            return wanted.from_dict(config.to_dict())
        if not isinstance(config, wanted):
            raise ConfigError(
                f"{cls.__name__} needs a {wanted.__name__} (or a plain OrchestratorConfig), "
                f"got {type(config).__name__}"
            )
        return config

    def warn(self, message: str, **data: Any) -> None:
        """Emit a ``warning`` event on the current run."""
        self.emit_event(EventType.WARNING, {"message": message, **data})

    async def plan_with_llm(
        self,
        task: str,
        count: int,
        *,
        fallback: Callable[[str, int], list[str]],
        fallback_label: str,
        prompt: str = "decompose",
        model: str | None = None,
        **values: Any,
    ) -> list[PlanItem]:
        """Ask the model for ``count`` subtasks; parse its answer robustly.

        An answer with nothing usable falls back to ``fallback(task, count)`` and says so
        in a ``warning`` event; a longer plan is cut to ``count`` (also a warning).
        """
        completion = await self.call_llm(
            self.prompts.render(prompt, task=task, count=count, **values), model=model
        )
        items = parse_plan(completion.content)
        if not items:
            self.warn(
                f"decomposition output could not be parsed; fell back to a split by {fallback_label} "
                f"({count} subtasks)",
                output=completion.content[:500],
            )
            return [PlanItem(text, {}) for text in fallback(task, count)]
        if len(items) > count:
            self.warn(f"decomposition proposed {len(items)} subtasks; using the first {count}")
            items = items[:count]
        elif len(items) < count:
            self.warn(f"decomposition proposed {len(items)} subtasks instead of {count}; running those")
        return items

    @staticmethod
    def result_for(
        context: Mapping[str, Any] | None, subtask_id: str, agent_type: Any, content: str, **fields: Any
    ) -> AgentResult:
        """An :class:`AgentResult` for the subtask running in ``context``."""
        agent_id = str((context or {}).get("agent_id") or f"agent_{subtask_id}")
        return AgentResult(
            agent_id=agent_id, agent_type=agent_type, subtask_id=subtask_id, content=content, **fields
        )


def format_results(results: Sequence[AgentResult], heading: str = "Result") -> str:
    """Agent results as numbered Markdown sections for a synthesis prompt."""
    return "\n\n".join(
        f"### {heading} {index} ({result.agent_id})\n{result.content.strip()}"
        for index, result in enumerate(results, 1)
    )


async def maybe_await(value: Any) -> Any:
    """``value``, awaited first if it is awaitable (a user callback may be sync or async)."""
    return await value if inspect.isawaitable(value) else value


def is_int(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """A finite ``int`` or ``float`` that is not a ``bool`` (config values must be finite)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_text_list(value: object) -> bool:
    """A non-empty sequence (not a string) of non-blank strings."""
    return (
        not isinstance(value, str)
        and isinstance(value, Sequence)
        and bool(value)
        and all(isinstance(item, str) and item.strip() for item in value)
    )


def prompts_problems(prompts: object) -> list[str]:
    """The problem with a pattern config's ``prompts`` field, if any."""
    if isinstance(prompts, Mapping):
        return []
    return [f"prompts must be a dict of prompt name -> template, got {prompts!r}"]


async def run_bounded(factories: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run ``factories`` concurrently, at most ``limit`` at once; results in order.

    Every coroutine is awaited inside one task group (nothing outlives the call).  If one
    raises, the others are cancelled and that error is raised as itself (not wrapped in
    an exception group), so the engine still recognises e.g. an exhausted budget.
    """
    semaphore = asyncio.Semaphore(max(1, limit))
    results: dict[int, T] = {}

    async def one(index: int, factory: Callable[[], Awaitable[T]]) -> None:
        async with semaphore:
            results[index] = await factory()

    try:
        async with asyncio.TaskGroup() as group:
            for index, factory in enumerate(factories):
                group.create_task(one(index, factory))
    except BaseExceptionGroup as failure:
        raise _first_leaf(failure) from None
    return [results[index] for index in range(len(factories))]


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
