"""Finding orchestrators and providers by name (for the CLI and the server)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .base import BaseOrchestrator

__all__ = ["PATTERNS", "resolve_orchestrator", "resolve_provider"]

#: Built-in pattern names and where their classes live.
PATTERNS: dict[str, str] = {
    "cascade": "patterns.cascade:DreamCascadeOrchestrator",
    "dream-cascade": "patterns.cascade:DreamCascadeOrchestrator",
    "swarm": "patterns.swarm:DreamSwarmOrchestrator",
    "dream-swarm": "patterns.swarm:DreamSwarmOrchestrator",
    "sequential": "patterns.sequential:SequentialOrchestrator",
    "conditional": "patterns.conditional:ConditionalOrchestrator",
    "iterative": "patterns.iterative:IterativeOrchestrator",
    "fanout": "patterns.fanout:FanOutOrchestrator",
    "planner": "orchestration.planner:PlannerOrchestrator",
}


def _load(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{spec!r} is not of the form 'module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"cannot import module {module_name!r} for {spec!r}: {error}") from error
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError as error:
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from error
    return obj


def resolve_orchestrator(name: str) -> type[BaseOrchestrator]:
    """A built-in pattern's class by name, or a user's class from ``'module:Class'``."""
    from .base import BaseOrchestrator

    spec = PATTERNS.get(name.lower()) if ":" not in name else name
    if spec is None:
        raise ConfigError(
            f"unknown pattern {name!r}; choose one of {sorted(set(PATTERNS))} or give 'module:Class'"
        )
    cls = _load(spec)
    if not (isinstance(cls, type) and issubclass(cls, BaseOrchestrator)):
        raise ConfigError(f"{name!r} is not a BaseOrchestrator subclass")
    return cls


def resolve_provider(name: str, model: str | None = None) -> Any:
    """A provider by name (``scripted``, ``openai``, ``anthropic:claude-...``...).

    Names come from the ``orchestration.providers`` entry-point group; a ``vendor:model``
    id selects the vendor and passes the model on.
    """
    vendor, _, model_part = name.partition(":")
    model = model or (model_part or None)
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group="orchestration.providers")}
    if vendor not in found:
        raise ConfigError(
            f"unknown provider {vendor!r}; available: {sorted(found) or ['scripted']} "
            "(choose with --provider NAME)"
        )
    factory = found[vendor].load()
    return factory(model=model)
