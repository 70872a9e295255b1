"""A planner model that builds and revises the graph with tool calls: :class:`PlannerOrchestrator`.

``orchestrate run planner "TASK"`` runs it from the command line.  The parts:
:mod:`.orchestrator` (the front end and its hooks), :mod:`.run` (the planning loop on
the graph runtime), :mod:`.nodes` (the nodes the planner adds, the answer and the
verdict), :mod:`.tools` and :mod:`.specs` (the planner's tools, as changes to the
running graph), :mod:`.prompts` and :mod:`.config`.
"""

from __future__ import annotations

from .config import PlannerConfig
from .orchestrator import PlannerOrchestrator
from .specs import TOOL_SPECS

__all__ = ("TOOL_SPECS", "PlannerConfig", "PlannerOrchestrator")
