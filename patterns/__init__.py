"""The built-in orchestration patterns.

Each is a :class:`~orchestration.BaseOrchestrator` subclass with its prompts kept as
data (override them with ``prompts={...}``), and the same events, retries, budget,
cancellation and cost accounting as any orchestrator.  The five from the README are
also importable from ``orchestration`` directly.
"""

from __future__ import annotations

from ._base import PatternOrchestrator
from ._prompts import PromptSet
from .cascade import DreamCascadeConfig, DreamCascadeOrchestrator
from .conditional import BranchError, ConditionalOrchestrator
from .fanout import FanOutOrchestrator
from .iterative import ConvergenceError, IterationResult, IterativeOrchestrator
from .sequential import SequentialOrchestrator, Step
from .swarm import DreamSwarmConfig, DreamSwarmOrchestrator, classify_domain

__all__ = [
    "BranchError",
    "ConditionalOrchestrator",
    "ConvergenceError",
    "DreamCascadeConfig",
    "DreamCascadeOrchestrator",
    "DreamSwarmConfig",
    "DreamSwarmOrchestrator",
    "FanOutOrchestrator",
    "IterationResult",
    "IterativeOrchestrator",
    "PatternOrchestrator",
    "PromptSet",
    "SequentialOrchestrator",
    "Step",
    "classify_domain",
]
