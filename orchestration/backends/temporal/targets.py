"""What a Temporal run executes, found by import path on every worker (no temporalio here).

A run names its *target*; each worker imports it and builds the same :class:`Program`
(the graph, its handlers, and the provider and config its model calls use):

- ``module:NAME`` naming a :class:`~orchestration.graph.Graph`: the module also defines
  ``handlers`` (a mapping, as for ``graph.run``), and may define ``provider`` and
  ``config`` (objects, or zero-argument callables that build them on the worker);
  ``NAME_handlers``, ``NAME_provider`` and ``NAME_config`` win over those, so one module
  can hold several graphs;
- ``module:Class`` naming a :class:`~orchestration.workflow.Workflow` subclass (built with
  no arguments): its steps are the handlers;
- a built-in pattern name (``fanout``, ``cascade``...) or ``module:Class`` naming a
  :class:`~orchestration.base.BaseOrchestrator` subclass: its three hooks become a
  planner node, subtask nodes and a synthesizer node
  (:mod:`orchestration.backends.temporal.orchestrator`).

Workers cache programs by their :class:`TargetSpec`, so a run's nodes do not import and
build the target once each.  Provider secrets stay on the workers: a target names a
provider (``--provider openai``), it never carries a key.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...config import OrchestratorConfig
from ...engine.core import Edge, Node, NodeKind
from ...errors import ConfigError

__all__ = ["Program", "TargetSpec", "load_program"]

Handler = Callable[..., Any]


@dataclass(frozen=True)
class TargetSpec:
    """A run's target as it travels in the workflow's input (JSON-ready, no secrets).

    ``target``: an import path or a pattern name; ``provider``: a provider name resolved
    on the worker (``scripted``, ``openai``, ``vendor:model``...); ``options``: config
    fields and an orchestrator's constructor options (``-o KEY=VALUE``); ``handlers``:
    for a graph, the import path of its handlers (default: the module's ``handlers``).
    """

    target: str
    provider: str | None = None
    model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    handlers: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "target": self.target,
            "provider": self.provider,
            "model": self.model,
            "options": dict(self.options),
            "handlers": self.handlers,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetSpec:
        """The spec :meth:`to_dict` wrote."""
        return cls(
            target=str(data["target"]),
            provider=data.get("provider"),
            model=data.get("model"),
            options=dict(data.get("options") or {}),
            handlers=data.get("handlers"),
        )

    def key(self) -> str:
        """A cache key: equal specs build equal programs."""
        import json

        return json.dumps(self.to_dict(), sort_keys=True, default=str)


@dataclass
class Program:
    """A target built on a worker: the graph it runs and how its nodes run."""

    kind: str  # "graph", "workflow" or "orchestrator"
    name: str  # recorded as the run's orchestrator in listings
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    entry: str | None
    handlers: Mapping[Any, Handler]
    provider: Any = None
    config: OrchestratorConfig | None = None
    #: For orchestrators: the adapter that turns hooks into nodes (see .orchestrator).
    adapter: Any = None

    def handler(self, node: Node) -> Handler | None:
        """The handler of ``node`` (by its ``handler`` name, its id, then its kind), as a
        local run finds it; TERMINAL and AGGREGATE nodes pass their input on by default."""
        found = self.handlers.get(node.handler or node.id) or self.handlers.get(node.kind)
        if found is None and node.kind in (NodeKind.TERMINAL, NodeKind.AGGREGATE):
            return _passthrough
        return found


def _passthrough(context: Any) -> Any:
    return context.input


def _load(path: str) -> Any:
    from ...registry import PATTERNS

    if ":" not in path and path.lower() in PATTERNS:
        path = PATTERNS[path.lower()]
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"target {path!r} is not a pattern name or 'module:name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"cannot import module {module_name!r} for target {path!r}: {error}") from error
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r} (target {path!r})") from None
    return obj


def _built(value: Any) -> Any:
    """A module's ``provider``/``config``: the object, or what a zero-argument callable builds."""
    builds = callable(value) and not hasattr(value, "complete") and not isinstance(value, OrchestratorConfig)
    if builds and (inspect.isclass(value) or not inspect.signature(value).parameters):
        return value()
    return value


def load_program(spec: TargetSpec) -> Program:
    """Import ``spec.target`` and build its :class:`Program` (ConfigError saying what is wrong)."""
    from ...base import BaseOrchestrator
    from ...graph import Graph
    from ...workflow import Workflow

    obj = _load(spec.target)
    if isinstance(obj, Graph):
        obj.validate()
        module_name, _, name = spec.target.partition(":")
        module = importlib.import_module(module_name)

        def beside(what: str) -> Any:  # ``NAME_what``, else the module's ``what``
            return getattr(module, f"{name}_{what}", getattr(module, what, None))

        handlers = _load(spec.handlers) if spec.handlers else beside("handlers")
        if not isinstance(handlers, Mapping):
            raise ConfigError(
                f"target {spec.target!r} is a graph: its module needs `handlers` (or `{name}_handlers`: "
                "a dict of node id or NodeKind -> function), or name them with handlers='module:name'"
            )
        provider = _built(beside("provider"))
        config = _built(beside("config"))
        if provider is None and spec.provider:
            provider = _provider(spec, config)
        if config is None and spec.options:
            config = OrchestratorConfig.from_dict(dict(spec.options))
        return Program("graph", "graph", obj.nodes, obj.edges, obj.entry, handlers, provider, config)
    if isinstance(obj, type) and issubclass(obj, Workflow):
        workflow = obj()
        graph = workflow.graph()
        config = OrchestratorConfig.from_dict(dict(spec.options)) if spec.options else None
        provider = _provider(spec, config) if spec.provider else None
        return Program(
            "workflow",
            obj.__name__,
            graph.nodes,
            graph.edges,
            graph.entry,
            workflow.handlers(),
            provider,
            config,
        )
    if isinstance(obj, type) and issubclass(obj, BaseOrchestrator):
        from .orchestrator import orchestrator_program

        return orchestrator_program(obj, spec)
    raise ConfigError(
        f"target {spec.target!r} is a {type(obj).__name__}; name a Graph, a Workflow subclass, "
        "a BaseOrchestrator subclass or a built-in pattern"
    )


def _provider(spec: TargetSpec, config: OrchestratorConfig | None) -> Any:
    from ...registry import resolve_provider

    assert spec.provider is not None
    model = spec.model or (config.primary_model if config is not None else None)
    return resolve_provider(spec.provider, model)
