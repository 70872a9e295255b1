"""Multi-agent LLM orchestration: decompose, fan out, synthesize, with an honest bill.

``from orchestration import X`` is the public API.  The built-in pattern classes are
loaded on first access, so importing this package stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
from .base import BaseOrchestrator, RunContext
from .budget import Budget
from .config import OrchestratorConfig
from .engine.graph import Plan, Scheduler, build_plan
from .engine.state import RunState
from .errors import (
    AgentFailedError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CallbackError,
    ConfigError,
    ContextLengthError,
    GraphError,
    MalformedResponseError,
    OrchestrationError,
    OverloadedError,
    PlanError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    RunCancelledError,
    RunNotFoundError,
    ServiceUnavailableError,
    StepFailedError,
    StructuredOutputError,
    ToolArgumentsError,
    ToolCallError,
    WorkflowError,
)
from .events import EventType, StreamEvent
from .llm import (
    Completion,
    CompletionChunk,
    CompletionRequest,
    OutputSchema,
    Provider,
    ToolCall,
    ToolSpec,
    as_provider,
)
from .models import (
    AgentResult,
    AgentType,
    GeneratedDocument,
    OrchestratorResult,
    SubTask,
    SynthesisResult,
    TaskStatus,
)
from .pricing import ModelPrice, PriceTable
from .registry import resolve_orchestrator, resolve_provider
from .retry import RetryPolicy, is_retryable, retry_async
from .scripted import ScriptedProvider
from .stores import MemoryStore, RunStore, RunSummary
from .tokens import count_message_tokens, count_tokens
from .usage import Usage
from .utils import (
    CostTracker,
    ProgressTracker,
    calculate_progress,
    chunk_list,
    deduplicate_by_key,
    format_cost,
    format_duration,
)

if TYPE_CHECKING:
    from patterns.cascade import DreamCascadeConfig, DreamCascadeOrchestrator
    from patterns.conditional import ConditionalOrchestrator
    from patterns.fanout import FanOutOrchestrator
    from patterns.iterative import IterationResult, IterativeOrchestrator
    from patterns.sequential import SequentialOrchestrator
    from patterns.swarm import DreamSwarmConfig, DreamSwarmOrchestrator

    from .graph import Contract, Edge, Graph, GraphResult, Node, NodeContext, NodeKind, NodeOutput, NodeState
    from .planner import PlannerConfig, PlannerOrchestrator
    from .structured import complete_structured
    from .toolbox import Tool, ToolBox, ToolResult
    from .workflow import Flow, Workflow, WorkflowResult, step

# name -> module that defines it; imported on first attribute access.
_LAZY = {
    "DreamCascadeOrchestrator": "patterns.cascade",
    "DreamCascadeConfig": "patterns.cascade",
    "DreamSwarmOrchestrator": "patterns.swarm",
    "DreamSwarmConfig": "patterns.swarm",
    "SequentialOrchestrator": "patterns.sequential",
    "ConditionalOrchestrator": "patterns.conditional",
    "IterativeOrchestrator": "patterns.iterative",
    "IterationResult": "patterns.iterative",
    "FanOutOrchestrator": "patterns.fanout",
    "PlannerOrchestrator": "orchestration.planner",
    "PlannerConfig": "orchestration.planner",
    "create_sse_callback": "orchestration.streaming",
    "create_websocket_callback": "orchestration.streaming",
    "create_progress_bar_callback": "orchestration.streaming",
    "write_reports": "orchestration.reports",
    "Graph": "orchestration.graph",
    "Node": "orchestration.graph",
    "Edge": "orchestration.graph",
    "NodeKind": "orchestration.graph",
    "NodeState": "orchestration.graph",
    "Contract": "orchestration.graph",
    "NodeContext": "orchestration.graph",
    "NodeOutput": "orchestration.graph",
    "GraphResult": "orchestration.graph",
    "Workflow": "orchestration.workflow",
    "Flow": "orchestration.workflow",
    "WorkflowResult": "orchestration.workflow",
    "step": "orchestration.workflow",
    "Tool": "orchestration.toolbox",
    "ToolBox": "orchestration.toolbox",
    "ToolResult": "orchestration.toolbox",
    "complete_structured": "orchestration.structured",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestration' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = (
    "AgentFailedError",
    "AgentResult",
    "AgentType",
    "AuthenticationError",
    "BadRequestError",
    "BaseOrchestrator",
    "Budget",
    "BudgetExceededError",
    "CallbackError",
    "Completion",
    "CompletionChunk",
    "CompletionRequest",
    "ConditionalOrchestrator",
    "ConfigError",
    "ContextLengthError",
    "Contract",
    "CostTracker",
    "DreamCascadeConfig",
    "DreamCascadeOrchestrator",
    "DreamSwarmConfig",
    "DreamSwarmOrchestrator",
    "Edge",
    "EventType",
    "FanOutOrchestrator",
    "Flow",
    "GeneratedDocument",
    "Graph",
    "GraphError",
    "GraphResult",
    "IterationResult",
    "IterativeOrchestrator",
    "MalformedResponseError",
    "MemoryStore",
    "ModelPrice",
    "Node",
    "NodeContext",
    "NodeKind",
    "NodeOutput",
    "NodeState",
    "OrchestrationError",
    "OrchestratorConfig",
    "OrchestratorResult",
    "OutputSchema",
    "OverloadedError",
    "Plan",
    "PlanError",
    "PlannerConfig",
    "PlannerOrchestrator",
    "PriceTable",
    "ProgressTracker",
    "Provider",
    "ProviderError",
    "ProviderTimeoutError",
    "QuotaExceededError",
    "RateLimitError",
    "RetryPolicy",
    "RunCancelledError",
    "RunContext",
    "RunNotFoundError",
    "RunState",
    "RunStore",
    "RunSummary",
    "Scheduler",
    "ScriptedProvider",
    "SequentialOrchestrator",
    "ServiceUnavailableError",
    "StepFailedError",
    "StreamEvent",
    "StructuredOutputError",
    "SubTask",
    "SynthesisResult",
    "TaskStatus",
    "Tool",
    "ToolArgumentsError",
    "ToolBox",
    "ToolCall",
    "ToolCallError",
    "ToolResult",
    "ToolSpec",
    "Usage",
    "Workflow",
    "WorkflowError",
    "WorkflowResult",
    "as_provider",
    "build_plan",
    "calculate_progress",
    "chunk_list",
    "complete_structured",
    "count_message_tokens",
    "count_tokens",
    "create_progress_bar_callback",
    "create_sse_callback",
    "create_websocket_callback",
    "deduplicate_by_key",
    "format_cost",
    "format_duration",
    "is_retryable",
    "resolve_orchestrator",
    "resolve_provider",
    "retry_async",
    "step",
    "write_reports",
    "__version__",
)
