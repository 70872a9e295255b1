"""How a planner run is configured: :class:`PlannerConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field
from string import Template

from ..config import OrchestratorConfig

__all__ = ["PROMPT_FIELDS", "PlannerConfig"]

#: The prompts a config may override, and the ``$placeholders`` each may use.
PROMPT_FIELDS: dict[str, frozenset[str]] = {
    "planner": frozenset({"max_nodes", "max_turns", "num_agents"}),
    "worker": frozenset({"task", "node_id", "description", "inputs"}),
    "synthesis": frozenset({"task", "results"}),
}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class PlannerConfig(OrchestratorConfig):
    """Configuration of :class:`~orchestration.planner.PlannerOrchestrator` (plus every
    :class:`~orchestration.config.OrchestratorConfig` field).

    - ``max_nodes``: how many worker nodes the planner may add over the whole run (parts of
      a split, joins and corrective nodes count).  A change that would pass it ends the
      planning: the nodes already added finish, then the answer is written from what
      completed (status ``partial``).
    - ``max_planning_turns``: how many times the planner model is asked (one call per
      turn); running out without ``finish`` ends the run the same way.
    - ``planner_model``: the planner's model (default ``primary_model``); workers and the
      synthesis use ``primary_model``.
    - ``result_chars``: how many characters of each node's result the planner is shown
      (the whole result still reaches the nodes that depend on it and the synthesis).
    - ``prompts``: overrides of the ``planner`` (system), ``worker`` and ``synthesis``
      prompts, as ``string.Template`` text (see :data:`PROMPT_FIELDS` for the
      placeholders each may use).

    ``num_agents`` is the number of parallel nodes the planner is asked to aim for;
    ``max_concurrent_agents`` caps the nodes that run at once; ``timeout_seconds`` limits
    each node (a node may set a shorter ``timeout``) and each planner call;
    ``max_total_cost`` is the budget that, once spent, ends the planning.
    """

    max_nodes: int = 12
    max_planning_turns: int = 6
    planner_model: str | None = None
    result_chars: int = 1500
    prompts: dict[str, str] = field(default_factory=dict)

    def validate(self) -> list[str]:
        """Every problem with this config, as messages naming the field."""
        errors = super().validate()
        for name in ("max_nodes", "max_planning_turns", "result_chars"):
            value = getattr(self, name)
            if not _is_int(value):
                errors.append(f"{name} must be an integer, got {value!r}")
            elif value < 1:
                errors.append(f"{name} must be >= 1, got {value}")
        model = self.planner_model
        if model is not None and (not isinstance(model, str) or not model.strip()):
            errors.append(f"planner_model must be a non-empty model id or None, got {model!r}")
        if not isinstance(self.prompts, dict):
            errors.append(f"prompts must be a dict of prompt name to text, got {self.prompts!r}")
            return errors
        for name, text in self.prompts.items():
            allowed = PROMPT_FIELDS.get(name)
            if allowed is None:
                errors.append(f"prompts: unknown prompt {name!r}; the prompts are {sorted(PROMPT_FIELDS)}")
                continue
            if not isinstance(text, str) or not text.strip():
                errors.append(f"prompts[{name!r}] must be non-empty text")
                continue
            template = Template(text)
            if not template.is_valid():
                errors.append(f"prompts[{name!r}] has a bad placeholder; write $$ for a literal $")
                continue
            unknown = sorted(set(template.get_identifiers()) - allowed)
            if unknown:
                errors.append(
                    f"prompts[{name!r}] uses unknown placeholder(s) {unknown}; it may use {sorted(allowed)}"
                )
        return errors
