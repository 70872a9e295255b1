"""BaseOrchestrator runs on Temporal (placeholder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...events import StreamEvent

__all__ = ["is_orchestrator_run", "orchestrator_program", "orchestrator_result"]


def is_orchestrator_run(events: Sequence[StreamEvent]) -> bool:
    return False


def orchestrator_program(cls: Any, spec: Any) -> Any:
    raise NotImplementedError


def orchestrator_result(run_id: str, events: Sequence[StreamEvent]) -> Any:
    raise NotImplementedError
