"""Shared type aliases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

JSON: TypeAlias = Any
"""A value that ``json.dumps`` accepts."""

JSONDict: TypeAlias = dict[str, Any]

Message: TypeAlias = Mapping[str, Any]
"""A chat message: ``{"role": "user" | "system" | "assistant", "content": str}``."""

MaybeAwaitable: TypeAlias = Any | Awaitable[Any]

StreamCallback: TypeAlias = Callable[[Any], Any]
"""Called with each :class:`~orchestration.events.StreamEvent`; may be sync or async."""
