"""Where runs live: the :class:`RunStore` protocol and its implementations."""

from __future__ import annotations

from .base import RunStore, RunSummary
from .memory import MemoryStore

__all__ = ["MemoryStore", "RunStore", "RunSummary"]
