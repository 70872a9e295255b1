"""Running the tools a model asked for: :class:`ToolBox`.

A tool box maps tool names to Python functions (sync or async, called with the
arguments as keyword arguments) and their :class:`~orchestration.toolcalls.ToolSpec`.
:meth:`ToolBox.run` answers a completion's tool calls, in parallel, with one tool
message each, in the order of the calls, ready to append to the conversation::

    messages.append(completion.message())
    messages.extend(await box.run(completion.tool_calls))

Whatever the model got wrong comes back to it as an error result it can correct: an
unknown tool, arguments that are not JSON or do not match the schema, a tool that
raised or timed out.  Cancellation is never swallowed.

Each :class:`ToolResult` says when its call started and how long it took;
:meth:`ToolResult.event_data` is what a run records of it (a ``tool_call`` event,
``NodeContext.run_tools``): the tool, the call's id, timing, ok or the kind of error,
never the arguments, the result or an error's text (any of them may hold secrets).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import time
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ConfigError, ToolArgumentsError, describe
from .toolcalls import ToolCall, ToolSpec, load_jsonschema_async, tool_result_message

__all__ = ["Tool", "ToolBox", "ToolResult"]

F = TypeVar("F", bound=Callable[..., Any])

_JSON_TYPES: Mapping[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    tuple: "array",
    dict: "object",
}


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool: its spec and the function that does the work.

    ``handler`` is called with the arguments as keyword arguments; a sync one runs in a
    worker thread (``thread=False`` runs it on the event loop: only for quick ones).
    """

    spec: ToolSpec
    handler: Callable[..., Any]
    thread: bool = True


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The answer to one tool call: what the model is sent, and what the handler returned.

    ``is_error`` marks a failed call (``content`` then says what went wrong, for the
    model, and ``error_type`` what kind of failure it was: ``unknown_tool``,
    ``invalid_arguments``, ``timeout`` or the class of what the tool raised); ``value``
    is the handler's return value (None on error).  ``started_at`` (seconds since the
    epoch) and ``duration`` (seconds) time the call.
    """

    call: ToolCall
    content: str
    is_error: bool = False
    value: Any = None
    error_type: str | None = None
    started_at: float = 0.0
    duration: float = 0.0

    def message(self) -> dict[str, Any]:
        """The tool message to append to the conversation."""
        return tool_result_message(self.call, self.content, error=self.is_error)

    def event_data(self) -> dict[str, Any]:
        """What a run's ``tool_call`` event records of this call (no arguments, result or
        error text: they may hold secrets)."""
        data: dict[str, Any] = {
            "tool": self.call.name[:_NAME_CHARS],
            "call_id": self.call.id[:_NAME_CHARS],
            "started_at": self.started_at,
            "duration_s": self.duration,
            "ok": not self.is_error,
        }
        if self.error_type is not None:
            data["error_type"] = self.error_type
        return data


#: How much of a tool's name or a call's id an event keeps (the model chose them).
_NAME_CHARS = 128


def _description(handler: Callable[..., Any]) -> str:
    doc = inspect.getdoc(handler) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip()


def _json_type(annotation: Any) -> dict[str, Any]:
    """A JSON schema for a simple type hint (``str``, ``int | None``, ``list[str]``...)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _json_type(options[0]) if len(options) == 1 else {}
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(annotation))}
    base = origin or annotation
    name = _JSON_TYPES.get(base)
    if name is None:
        return {}
    schema: dict[str, Any] = {"type": name}
    args = typing.get_args(annotation)
    if name == "array" and len(args) == 1:
        schema["items"] = _json_type(args[0])
    return schema


def parameters_of(handler: Callable[..., Any]) -> dict[str, Any]:
    """A JSON schema of ``handler``'s keyword parameters, from its type hints
    (parameters without a default are required)."""
    try:
        hints = typing.get_type_hints(handler)
    except Exception:  # hints that do not resolve: describe the names only
        hints = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, parameter in inspect.signature(handler).parameters.items():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ConfigError(
                f"tool {getattr(handler, '__name__', handler)!r}: parameter {name!r} is positional-only; "
                "tools are called with keyword arguments"
            )
        properties[name] = _json_type(hints.get(name, Any))
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


class ToolBox:
    """Tools by name, and the code that runs a model's calls to them.

    Args:
        tools: :class:`Tool` objects or plain functions (named after the function,
            described by its docstring's first paragraph, its schema read from its
            type hints).
        timeout: seconds one call may take (then the model is told it timed out).
    """

    def __init__(
        self, tools: Iterable[Tool | Callable[..., Any]] = (), *, timeout: float | None = None
    ) -> None:
        self._tools: dict[str, Tool] = {}
        self.timeout = timeout
        for tool in tools:
            if isinstance(tool, Tool):
                self._register(tool)
            else:
                self.add(tool)

    def _register(self, tool: Tool) -> Tool:
        if tool.spec.name in self._tools:
            raise ConfigError(f"tool box: a tool named {tool.spec.name!r} is already in it")
        self._tools[tool.spec.name] = tool
        return tool

    def add(
        self,
        handler: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        thread: bool = True,
    ) -> Tool:
        """Add ``handler`` as a tool (see the class docstring for the defaults)."""
        spec = ToolSpec(
            name=name or str(getattr(handler, "__name__", "")),
            description=description if description is not None else _description(handler),
            parameters=parameters if parameters is not None else parameters_of(handler),
        )
        return self._register(Tool(spec, handler, thread))

    def tool(
        self,
        name: str | None = None,
        *,
        description: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        thread: bool = True,
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`add` (the function is returned unchanged)."""

        def register(handler: F) -> F:
            self.add(handler, name=name, description=description, parameters=parameters, thread=thread)
            return handler

        return register

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        """The tools' specs, to pass as ``CompletionRequest(tools=...)``."""
        return tuple(tool.spec for tool in self._tools.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"ToolBox({', '.join(self._tools)})"

    async def execute(self, call: ToolCall) -> ToolResult:
        """Run one call; what went wrong becomes an error result for the model."""
        started, clock = time.time(), time.perf_counter()
        result = await self._answer(call)
        return dataclasses.replace(result, started_at=started, duration=time.perf_counter() - clock)

    async def _answer(self, call: ToolCall) -> ToolResult:
        tool = self._tools.get(call.name)
        if tool is None:
            offered = ", ".join(self._tools) or "none"
            return ToolResult(
                call,
                f"Error: there is no tool named {call.name!r}; the tools are: {offered}.",
                True,
                error_type="unknown_tool",
            )
        try:
            await load_jsonschema_async()
            arguments = call.checked_arguments(tool.spec)
        except ToolArgumentsError as error:
            problems = "; ".join(error.errors)
            return ToolResult(
                call,
                f"Error: the arguments of {call.name!r} are wrong: {problems}. Call it again, corrected.",
                True,
                error_type="invalid_arguments",
            )
        try:
            async with asyncio.timeout(self.timeout):
                value = await self._invoke(tool, arguments)
        except TimeoutError:
            return ToolResult(
                call,
                f"Error: {call.name!r} did not finish within {self.timeout} s.",
                True,
                error_type="timeout",
            )
        except Exception as error:  # the model is told; cancellation (BaseException) is not caught
            return ToolResult(
                call, f"Error: {call.name!r} failed: {describe(error)}", True, error_type=type(error).__name__
            )
        return ToolResult(call, value if isinstance(value, str) else _json(value), False, value)

    async def _invoke(self, tool: Tool, arguments: dict[str, Any]) -> Any:
        handler = tool.handler
        if inspect.iscoroutinefunction(handler):
            return await handler(**arguments)
        if tool.thread:
            value = await asyncio.to_thread(handler, **arguments)
        else:
            value = handler(**arguments)
        return await value if inspect.isawaitable(value) else value

    async def results(self, calls: Iterable[ToolCall]) -> list[ToolResult]:
        """Run ``calls`` concurrently; their results in the order of the calls."""
        calls = list(calls)
        if len(calls) == 1:
            return [await self.execute(calls[0])]
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self.execute(call)) for call in calls]
        return [task.result() for task in tasks]

    async def run(self, calls: Iterable[ToolCall]) -> list[dict[str, Any]]:
        """Run ``calls`` concurrently: one tool message each, in the order of the calls."""
        return [result.message() for result in await self.results(calls)]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
