"""Conditional: choose a branch at run time, then run it.

Two forms:

- ``ConditionalOrchestrator(config, provider, condition=fn, true_branch=a, false_branch=b)``
  where ``fn(context) -> bool`` (sync or async);
- ``ConditionalOrchestrator(config, provider, branches={"deep": a, "quick": b},
  evaluator=fn, default="quick")`` where ``fn(context)`` returns a key of ``branches``
  (an unknown key takes ``default``, or fails the run when there is none).

``condition`` and ``evaluator`` may also be text in a small safe expression language
over the context, e.g. ``condition="complexity > 0.7 and 'legal' in task"`` (see
:mod:`patterns._condition`); this is how the CLI's ``--condition`` and JSON options
build a conditional.

``context`` is the dict given to ``execute_workflow`` plus ``task`` and ``run_id``.

A branch is

- another orchestrator: it runs *inside this run* (its plan, agents, syntheses, events
  and costs become this run's; concurrency, retries and budget come from this
  orchestrator's config, models and prompts from the branch's own; its model calls go
  through this run's provider, so a run has one provider and can be resumed or
  replayed);
- a list of steps (or one step as a string): run as a :class:`SequentialOrchestrator`
  pipeline;
- a callable ``fn(task, context)`` (sync or async) returning the answer as a str (or an
  AgentResult): run as the run's single agent.

The choice is a ``branch_selected`` event and ``metadata["branch"]`` of the final
synthesis (and of the result).  A condition or evaluator that raises fails the run with
the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from orchestration import (
    AgentResult,
    AgentType,
    BaseOrchestrator,
    Completion,
    ConfigError,
    EventType,
    OrchestrationError,
    OrchestratorConfig,
    SubTask,
    SynthesisResult,
)

from ._base import PatternOrchestrator, maybe_await
from ._condition import TextCondition
from .sequential import SequentialOrchestrator

__all__ = ["BranchError", "ConditionalOrchestrator"]

_KEY = "conditional_branch"


class BranchError(OrchestrationError):
    """The condition or evaluator raised, or chose a branch that does not exist."""


@dataclass(frozen=True, slots=True)
class _Branch:
    name: str
    orchestrator: BaseOrchestrator | None
    function: Callable[..., Any] | None

    @property
    def kind(self) -> str:
        return "orchestrator" if self.orchestrator is not None else "callable"

    @property
    def target(self) -> str:
        if self.orchestrator is not None:
            return type(self.orchestrator).__name__
        return getattr(self.function, "__name__", type(self.function).__name__)


class ConditionalOrchestrator(PatternOrchestrator):
    """Runs one of several branches, chosen at run time from the context."""

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        provider: Any = None,
        *,
        condition: Callable[[dict[str, Any]], Any] | None = None,
        true_branch: Any = None,
        false_branch: Any = None,
        branches: Mapping[Hashable, Any] | None = None,
        evaluator: Callable[[dict[str, Any]], Any] | None = None,
        default: Hashable | None = None,
        **options: Any,
    ) -> None:
        super().__init__(config, provider, **options)
        # Text is a safe expression over the context (patterns._condition): the CLI and JSON can give it.
        if isinstance(condition, str):
            condition = TextCondition(condition)
        if isinstance(evaluator, str):
            evaluator = TextCondition(evaluator)
        binary = condition is not None or true_branch is not None or false_branch is not None
        multi = branches is not None or evaluator is not None or default is not None
        if binary and multi:
            raise ConfigError(
                "give either condition/true_branch/false_branch or branches/evaluator/default, not both"
            )
        if binary:
            if not callable(condition):
                raise ConfigError(
                    f"condition must be a callable taking the context dict or an expression, got {condition!r}"
                )
            if true_branch is None or false_branch is None:
                missing = "true_branch" if true_branch is None else "false_branch"
                raise ConfigError(
                    f"{missing} is required with condition= (an orchestrator, a list of steps, one step as "
                    f'text, or a callable; from the CLI: -o {missing}=\'["step one", "step two"]\')'
                )
            rule: Callable[[dict[str, Any]], Any] = condition
            table: Mapping[Hashable, Any] = {True: true_branch, False: false_branch}
        elif multi:
            if not isinstance(branches, Mapping) or not branches:
                raise ConfigError(f"branches must be a non-empty dict of key -> branch, got {branches!r}")
            if not callable(evaluator):
                raise ConfigError(
                    f"evaluator must be a callable taking the context dict or an expression, got {evaluator!r}"
                )
            if default is not None and default not in branches:
                raise ConfigError(f"default {default!r} is not one of the branches {list(branches)}")
            rule, table = evaluator, branches
        else:
            raise ConfigError(
                "ConditionalOrchestrator needs condition=, true_branch=, false_branch= "
                "or branches={...}, evaluator=, default="
            )
        self.binary = binary
        self.rule = rule
        self.default = default
        self.branches: dict[Hashable, _Branch] = {
            key: self._branch(_name(key), value) for key, value in table.items()
        }
        self._by_name = {branch.name: branch for branch in self.branches.values()}
        if len(self._by_name) != len(self.branches):
            raise ConfigError(f"branch keys must be distinct as strings, got {list(table)}")

    def _branch(self, name: str, value: Any) -> _Branch:
        if isinstance(value, BaseOrchestrator):
            return _Branch(name, value, None)
        if isinstance(value, type):
            raise ConfigError(f"branch {name!r} is a class ({value.__name__}); pass an instance")
        if isinstance(value, str) or (isinstance(value, Sequence) and not isinstance(value, bytes)):
            steps = [value] if isinstance(value, str) else list(value)
            pipeline = SequentialOrchestrator(self.config, self.llm, steps=steps, prices=self.prices)
            return _Branch(name, pipeline, None)
        if callable(value):
            return _Branch(name, None, value)
        raise ConfigError(
            f"branch {name!r} must be an orchestrator, a list of steps or a callable(task, context), got {value!r}"
        )

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        """Evaluate the condition, announce the branch, and plan it."""
        context = dict(context or {})
        branch, value = await self._choose(dict(context, task=task))
        self.emit_event(
            EventType.BRANCH_SELECTED,
            {
                "branch": branch.name,
                "kind": branch.kind,
                "target": branch.target,
                "rule": getattr(self.rule, "__name__", "evaluator"),
                "value": _name(value),
            },
        )
        if branch.orchestrator is None:
            return [
                SubTask(
                    id=f"branch_{_slug(branch.name)}",
                    description=task,
                    agent_type=AgentType.WORKER,
                    metadata={_KEY: branch.name},
                )
            ]
        raw = await branch.orchestrator.decompose_task(task, context)
        # dicts stay dicts: the engine turns them into SubTasks and names a bad field
        items: list[Any] = [_tagged(item, index, branch.name) for index, item in enumerate(_listed(raw))]
        return items

    async def _choose(self, context: dict[str, Any]) -> tuple[_Branch, Any]:
        kind = "condition" if self.binary else "evaluator"
        name = getattr(self.rule, "__name__", kind)
        try:
            value = await maybe_await(self.rule(context))
        except Exception as error:
            raise BranchError(f"{kind} {name} raised {type(error).__name__}: {error}") from error
        key: Any = bool(value) if self.binary else value
        try:
            branch = self.branches.get(key)
        except TypeError:  # unhashable
            branch = None
        if branch is None and self.default is not None:
            self.warn(f"{kind} {name} returned {value!r}, not a branch; using the default {self.default!r}")
            branch = self.branches[self.default]
        if branch is None:
            raise BranchError(
                f"{kind} {name} returned {value!r}, which is not one of the branches "
                f"{[b.name for b in self.branches.values()]}, and no default is set"
            )
        return branch, value

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        """Run a subtask of the chosen branch."""
        context = context or {}
        branch = self._by_name[str(subtask.metadata.get(_KEY))]
        if branch.orchestrator is not None:
            outcome: Any = await branch.orchestrator.execute_subtask(subtask, context)
        else:
            assert branch.function is not None
            task = str(context.get("task", subtask.description))
            outcome = await maybe_await(branch.function(task, dict(context)))
        return _result(outcome, subtask, context, branch.name)

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str | SynthesisResult:
        """The chosen branch's synthesis (a callable branch's answer as is)."""
        name = next((str(r.metadata[_KEY]) for r in agent_results if _KEY in r.metadata), "")
        branch = self._by_name[name]
        if branch.orchestrator is not None:
            output = await branch.orchestrator.synthesize_results(agent_results, context)
        else:
            output = agent_results[0].content
        if output is None:
            raise TypeError(f"branch {name!r} returned no synthesis")
        synthesis = (
            output
            if isinstance(output, SynthesisResult)
            else SynthesisResult(content=str(output), level=1, source_ids=[r.agent_id for r in agent_results])
        )
        self.set_outcome(metadata={"branch": name})
        return replace(synthesis, metadata={**synthesis.metadata, "branch": name})


def _name(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "branch"


def _listed(raw: Any) -> list[Any]:
    if raw is None or isinstance(raw, (str, bytes)) or not isinstance(raw, (list, tuple)):
        raise OrchestrationError(
            f"the branch's decompose_task must return a list of SubTask, got {raw!r}"[:300]
        )
    return list(raw)


def _tagged(item: Any, index: int, name: str) -> SubTask | Mapping[str, Any]:
    if isinstance(item, SubTask):
        subtask = item
    elif isinstance(item, Mapping):  # tagged and left for the engine, which checks every field
        metadata = item.get("metadata")
        if isinstance(metadata, Mapping) or metadata is None:
            return {**item, "metadata": {**(metadata or {}), _KEY: name}}
        return item
    elif isinstance(item, str) and item.strip():
        subtask = SubTask(id=f"subtask_{index + 1}", description=item.strip())
    else:
        raise OrchestrationError(f"the branch's decompose_task item {index} is not a SubTask: {item!r}"[:300])
    return replace(subtask, metadata={**subtask.metadata, _KEY: name})


def _result(outcome: Any, subtask: SubTask, context: Mapping[str, Any], name: str) -> AgentResult:
    if isinstance(outcome, AgentResult):
        return replace(outcome, metadata={**outcome.metadata, _KEY: name})
    model = None
    if isinstance(outcome, Completion):
        outcome, model = outcome.content, outcome.model
    if isinstance(outcome, str):
        return PatternOrchestrator.result_for(
            context, subtask.id, subtask.agent_type, outcome, model=model, metadata={_KEY: name}
        )
    raise TypeError(f"branch {name!r} returned {type(outcome).__name__}; return a str or an AgentResult")
