"""How a graph run ended: :class:`GraphResult`, built from the run's fold."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..usage import Usage
from .core import GraphState, NodeState

__all__ = ["GraphResult"]


@dataclass(frozen=True)
class GraphResult:
    """How a graph run ended: per node its outputs by visit and final state."""

    run_id: str
    status: str
    outputs: Mapping[str, Mapping[int, Any]]
    states: Mapping[str, NodeState]
    errors: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    total_cost: float = 0.0
    #: For a paused run: the question each waiting node asks (answer them to go on).
    questions: Mapping[str, str] = field(default_factory=dict)
    #: Tokens and cost of the nodes' model calls (``ctx.call_llm``), the whole run.
    usage: Usage = field(default_factory=Usage)

    def output(self, node_id: str) -> Any:
        """The node's last output (None if it never completed)."""
        visits = self.outputs.get(node_id) or {}
        return visits[max(visits)] if visits else None

    @property
    def visits(self) -> Mapping[str, int]:
        """How many visits each node completed."""
        return {node_id: len(v) for node_id, v in self.outputs.items()}


def build_result(run_id: str, state: GraphState, usage: Usage | None = None) -> GraphResult:
    outputs: dict[str, dict[int, Any]] = {}
    errors: dict[str, str] = {}
    for node_id, rec in state.nodes.items():
        completions = rec.completions
        if len(completions) == 1:  # most nodes: one visit (no comprehension to run)
            outputs[node_id] = {completions[0].visit: completions[0].output}
        else:
            outputs[node_id] = {c.visit: c.output for c in completions}
        if rec.error is not None:
            errors[node_id] = rec.error
    questions = {node_id: asked.question for node_id, asked in state.waiting().items()}
    return GraphResult(
        run_id,
        state.status or "in_progress",
        outputs,
        state.states(),
        errors,
        state.error,
        total_cost=usage.cost_usd if usage is not None else 0.0,
        questions=questions,
        usage=usage if usage is not None else Usage(),
    )
