"""What a graph node receives as input: a pure reading of the run's state.

A node without inputs gets the run's payload; one input, that input's output; several,
``{source: output}`` of those that completed (out of a switch, only its chosen routes).
A switch passes on its own input; a node re-entered by a loop gets what triggered it.
"""

from __future__ import annotations

from typing import Any

from .spec import NodeKind, NodeState
from .state import GraphState, NodeRecord

__all__ = ["inputs_of", "node_input", "passed_from"]

_DONE_STATE = NodeState.COMPLETED


def node_input(state: GraphState, rec: NodeRecord) -> Any:
    """What the node gets as input (see ``NodeContext.input``)."""
    nodes = state.nodes
    if rec.trigger is not None and rec.trigger in nodes:
        return passed_from(state, nodes[rec.trigger])
    inn = rec.inn
    if not inn:
        return state.payload
    node_id = rec.spec.id
    if len(inn) == 1:
        source = nodes[inn[0].source]
        if source.state == _DONE_STATE and (source.routes is None or node_id in source.routes):
            if source.spec.kind is not NodeKind.SWITCH and source.completions:
                return source.completions[-1].output  # what passed_from gives, without the call
            return passed_from(state, source)
        return {}
    sources = [nodes[e.source] for e in inn]
    done = [s for s in sources if s.state == _DONE_STATE and (s.routes is None or node_id in s.routes)]
    if len(done) == 1:
        return passed_from(state, done[0])
    return {s.spec.id: passed_from(state, s) for s in done}


def inputs_of(state: GraphState, node_id: str) -> dict[str, Any]:
    """What each completed input passed to ``node_id``, by source id (see ``NodeContext.inputs``)."""
    nodes = state.nodes
    found: dict[str, Any] = {}
    for edge in nodes[node_id].inn:
        source = nodes[edge.source]
        if source.state == _DONE_STATE and (source.routes is None or node_id in source.routes):
            found[edge.source] = passed_from(state, source)
    return found


def passed_from(state: GraphState, rec: NodeRecord) -> Any:
    """What a completed node passes on: its output, or for a switch, its own input."""
    if rec.spec.kind is NodeKind.SWITCH:
        return _passed_on(state, rec)
    return rec.completions[-1].output if rec.completions else None


def _passed_on(state: GraphState, switch: NodeRecord) -> Any:
    """A switch's input as it ran: its sources' latest outputs (a loop may have reset a
    source to PENDING since, e.g. the node a back-edge re-enters: its last output stays)."""
    if switch.trigger is not None and switch.trigger in state.nodes:
        return passed_from(state, state.nodes[switch.trigger])
    if not switch.inn:
        return state.payload
    nodes = state.nodes
    sources = [nodes[e.source] for e in switch.inn]
    done = [s for s in sources if s.completions and (s.routes is None or switch.spec.id in s.routes)]
    if len(switch.inn) == 1:
        return passed_from(state, done[0]) if done else {}
    if len(done) == 1:
        return passed_from(state, done[0])
    return {s.spec.id: passed_from(state, s) for s in done}
