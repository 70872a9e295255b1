"""What travels between a Temporal workflow and its activities: JSON-ready dicts.

Graph events cross as their msgspec builtins (``kind`` is the tag) and come back as the
same frozen structs; nothing here imports temporalio, so both sides (and tests) share it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, cast

import msgspec

from ...engine.core import GraphEvent, Node
from ...engine.core.context import AttributedContext
from ...engine.core.events import _ALL, to_builtins

__all__ = [
    "ACTIVITY_APPEND",
    "ACTIVITY_NODE",
    "ACTIVITY_RELEASE",
    "ACTIVITY_START",
    "ACTIVITY_WATCH",
    "WORKFLOW_NAME",
    "decode_context",
    "decode_event",
    "decode_node",
    "encode",
]

WORKFLOW_NAME = "orchestration.run"
ACTIVITY_START = "orchestration.start"
ACTIVITY_APPEND = "orchestration.append"
ACTIVITY_NODE = "orchestration.node"
ACTIVITY_WATCH = "orchestration.watch"
ACTIVITY_RELEASE = "orchestration.release"

_UNION: Any = _ALL[0]
for _cls in _ALL[1:]:
    _UNION = _UNION | _cls


def encode(value: Any) -> Any:
    """``value`` (an event, a node, a context, a user output) as JSON-ready builtins.

    Fields left at their defaults are left out (a node is usually just its id), so a
    10,000-node graph stays well under Temporal's payload limit; decoding fills them in.
    """
    return to_builtins(_slim(value))


def _slim(value: Any) -> Any:
    if isinstance(value, msgspec.Struct) and type(value).__module__.startswith("orchestration."):
        out: dict[str, Any] = {}
        kind, fields = _layout(type(value))
        if kind is not None:
            out[kind[0]] = kind[1]
        for name, key, default in fields:
            item = getattr(value, name)
            if default is not msgspec.NODEFAULT and _same(item, default):
                continue
            out[key] = _slim(item)
        return out
    if isinstance(value, tuple | list):
        return [_slim(item) for item in value]
    return value


@functools.cache
def _layout(cls: type[msgspec.Struct]) -> tuple[tuple[str, Any] | None, tuple[tuple[str, str, Any], ...]]:
    """A struct type's tag and ``(name, encoded name, default)`` per field (read once per type)."""
    config = cls.__struct_config__
    tag = (str(config.tag_field), config.tag) if config.tag is not None else None
    return tag, tuple((f.name, f.encode_name, f.default) for f in msgspec.structs.fields(cls))


def _same(item: Any, default: Any) -> bool:
    return item is default or (type(item) is type(default) and item == default)


def decode_event(data: Mapping[str, Any]) -> GraphEvent:
    """The graph event :func:`encode` wrote."""
    return cast(GraphEvent, msgspec.convert(dict(data), _UNION))


def decode_events(items: Sequence[Mapping[str, Any]]) -> list[GraphEvent]:
    """:func:`decode_event` for each."""
    return [decode_event(item) for item in items]


def decode_node(data: Mapping[str, Any]) -> Node:
    """The node :func:`encode` wrote."""
    return msgspec.convert(dict(data), Node)


def decode_context(data: Mapping[str, Any] | None) -> AttributedContext:
    """The attributed context :func:`encode` wrote (empty for None)."""
    return AttributedContext() if data is None else msgspec.convert(dict(data), AttributedContext)
