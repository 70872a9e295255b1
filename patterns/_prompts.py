"""The built-in patterns' prompts, kept as data.

Prompts are :class:`string.Template` strings (``$task``, ``$subtask``...; write ``$$``
for a literal dollar sign), so they can contain JSON examples without escaping braces.
Override any of them per orchestrator (``prompts={"belter": "..."}``), per pattern
config (``DreamCascadeConfig(prompts={...})``) or in a subclass (``default_prompts``).
An override may only use the placeholders the default offers; anything else is a
:class:`~orchestration.ConfigError` at construction, not a surprise mid-run.
"""

from __future__ import annotations

from collections.abc import Mapping
from string import Template

from orchestration import ConfigError

__all__ = [
    "CASCADE_PROMPTS",
    "FANOUT_PROMPTS",
    "ITERATIVE_PROMPTS",
    "SEQUENTIAL_PROMPTS",
    "SWARM_PROMPTS",
    "PromptSet",
]

_PLAN_JSON = 'Answer with JSON only, in this form: {"subtasks": [{"description": "..."}]}'

FANOUT_PROMPTS: Mapping[str, str] = {
    "decompose": (
        "Break the task below into exactly $count subtasks that can be worked on independently "
        "and in parallel. Each subtask must be self-contained.\n"
        "Task: $task\n\n" + _PLAN_JSON
    ),
    "execute": "Subtask: $subtask\nOverall task: $task\n\nDo this subtask thoroughly and report the result.",
    "synthesize": (
        "Synthesize the results below into one complete, well-structured answer to the task.\n"
        "Task: $task\n\n$results"
    ),
}

CASCADE_PROMPTS: Mapping[str, str] = {
    "decompose": (
        "You plan research for a team of $count quick research agents. Break the research task "
        "below into exactly $count subtasks, each a focused question one agent can answer on its own.\n"
        "Task: $task\n\n" + _PLAN_JSON
    ),
    "belter": (
        "Subtask: $subtask\nOverall research task: $task\n\n"
        "You are a fast tier-1 research agent. Answer this subtask with concrete findings: "
        "key facts, examples and caveats, as short paragraphs or bullet points."
    ),
    "drummer": (
        "You are a tier-2 analyst. Synthesize the findings of the $count research agents below "
        "into one analysis: what they agree on, where they differ, and what it means.\n"
        "Research task: $task\n\n$results"
    ),
    "camina": (
        "You write the final report. Synthesize the analyses below into $perspective.\n"
        "Research task: $task\n$gaps\n$results"
    ),
}

SWARM_PROMPTS: Mapping[str, str] = {
    "decompose": (
        "Plan a parallel search for a swarm of $count agents. Break the task below into exactly "
        "$count subtasks and give each one the best-suited search domain, one of: $domains.\n"
        "Task: $task\n\n"
        'Answer with JSON only, in this form: {"subtasks": [{"description": "...", "domain": "..."}]}'
    ),
    "search": (
        "Subtask: $subtask\nOverall task: $task\n\n"
        "You are the $domain specialist of a search swarm: answer from what $domain sources "
        "would say. List your findings as short bullet points, each one self-contained."
    ),
    "synthesize": (
        "Synthesize the findings of a multi-domain search into one report on the task. Keep one "
        "section per domain (## domain), then a short overall conclusion.\n"
        "Task: $task\n\n$sections"
    ),
}

SEQUENTIAL_PROMPTS: Mapping[str, str] = {
    "decompose": (
        "Plan the task below as a pipeline of exactly $count subtasks that run in order; each "
        "step works on the previous step's output.\n"
        "Task: $task\n\n" + _PLAN_JSON
    ),
    "step": (
        "Subtask: $step\nOverall task: $task\n"
        "You are step $index of $total in a pipeline.\n\n"
        "Output of the previous step:\n$previous\n\n"
        "Do this step and give its complete output (the next step only sees what you write)."
    ),
}

ITERATIVE_PROMPTS: Mapping[str, str] = {
    "draft": "Task: $task\n\nWrite the best answer you can.",
    "revise": (
        "Task: $task\n\nYour previous answer (iteration $iteration):\n$previous\n\n"
        "Reviewer feedback:\n$feedback\n\n"
        "Write an improved answer that addresses the feedback. Give the whole answer, not a diff."
    ),
    "judge": (
        "Rate how well the answer below accomplishes the task, as a score from 0 to 1 "
        "(1 = nothing left to improve).\nTask: $task\n\nAnswer:\n$output\n\n"
        'Reply with JSON only: {"score": 0.0, "feedback": "what to improve"}'
    ),
}


class PromptSet:
    """A pattern's prompts: defaults plus validated overrides, rendered by name."""

    def __init__(self, owner: str, defaults: Mapping[str, str], *overrides: Mapping[str, str] | None) -> None:
        self._owner = owner
        self._templates: dict[str, Template] = {}
        allowed = {name: set(Template(text).get_identifiers()) for name, text in defaults.items()}
        merged = dict(defaults)
        for layer in overrides:
            if not layer:
                continue
            if not isinstance(layer, Mapping):
                raise ConfigError(f"prompts for {owner} must be a dict of name -> template, got {layer!r}")
            for name, text in layer.items():
                if name not in defaults:
                    raise ConfigError(
                        f"unknown prompt {name!r} for {owner}; known prompts: {sorted(defaults)}"
                    )
                if not isinstance(text, str) or not text.strip():
                    raise ConfigError(f"prompt {name!r} for {owner} must be a non-empty string")
                merged[name] = text
        for name, text in merged.items():
            template = Template(text)
            if not template.is_valid():
                raise ConfigError(f"prompt {name!r} for {owner} has a bad placeholder (write $$ for a '$')")
            unknown = set(template.get_identifiers()) - allowed[name]
            if unknown:
                raise ConfigError(
                    f"prompt {name!r} for {owner} uses unknown placeholder(s) {sorted(unknown)}; "
                    f"available: {sorted(allowed[name])}"
                )
            self._templates[name] = template

    def render(self, name: str, **values: object) -> str:
        """The prompt ``name`` with its placeholders filled in."""
        return self._templates[name].substitute({k: str(v) for k, v in values.items()})

    def __contains__(self, name: object) -> bool:
        return name in self._templates
