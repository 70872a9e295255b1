"""Tool calls on the wire: the framework's messages in each vendor's format, and the
vendors' tool calls (whole or streamed in fragments) back as :class:`ToolCall` objects.

The framework's messages are in the OpenAI Chat Completions shape (an assistant turn with
``tool_calls``, then one ``{"role": "tool", "tool_call_id", "content"}`` message per
call).  Anthropic wants ``tool_use`` blocks in the assistant turn and ``tool_result``
blocks in the next user turn; Ollama wants argument objects and the tool's name on each
result.  Tool-call arguments are parsed where they arrive; arguments that are not a JSON
object stay in the :class:`ToolCall` as sent (``problem`` says why), never a silent ``{}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from orchestration.completions import CompletionRequest
from orchestration.toolcalls import (
    OutputSchema,
    ToolCall,
    call_fields,
    content_text,
    openai_tool_choice,
)

__all__ = [
    "OpenAIToolDeltas",
    "anthropic_messages",
    "anthropic_tool_fields",
    "anthropic_output",
    "ollama_messages",
    "openai_tool_fields",
    "tool_call",
]

#: The key a non-object output schema is wrapped in, for Anthropic (a tool's input is an object).
WRAPPED = "value"


def tool_call(name: Any, arguments: Any, call_id: Any, fallback_id: str) -> ToolCall | None:
    """A :class:`ToolCall` from a vendor's fields, or None when it has no name (the
    caller reports that as a malformed answer).  Arguments that are neither text nor an
    object (a hostile vendor's list or number) are kept as JSON text: malformed."""
    if not isinstance(name, str) or not name:
        return None
    if arguments is not None and not isinstance(arguments, (str, Mapping)):
        arguments = json.dumps(arguments)
    return ToolCall(name, arguments, id=call_id if isinstance(call_id, str) and call_id else fallback_id)


def _argument_object(arguments: Any) -> dict[str, Any]:
    """Arguments as an object for vendors that want one ({} for text that is not an
    object: the model is told so by the tool's error result)."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if isinstance(arguments, str) and arguments.strip():
        try:
            value = json.loads(arguments)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


# -- OpenAI ---------------------------------------------------------------------------------


def openai_tool_fields(request: CompletionRequest) -> dict[str, Any]:
    """``tools``, ``tool_choice``, ``parallel_tool_calls`` and ``response_format`` for
    Chat Completions (only those the request sets)."""
    fields: dict[str, Any] = {}
    if request.tools:
        fields["tools"] = [tool.to_openai() for tool in request.tools]
        if request.parallel_tool_calls is not None:
            fields["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None and (request.tools or request.tool_choice == "none"):
        fields["tool_choice"] = openai_tool_choice(request.tool_choice)
    if request.response_format is not None:
        fields["response_format"] = request.response_format.to_openai()
    return fields


class OpenAIToolDeltas:
    """Assembles the ``tool_calls`` deltas of a Chat Completions stream.

    Each call's first delta carries its ``index``, ``id`` and name; its argument text
    follows in fragments with the same index (parallel calls may interleave).  A server
    that sends no index gets one from the id (or the last call).
    """

    def __init__(self) -> None:
        self._calls: dict[int, list[Any]] = {}  # index -> [id, name, argument fragments]
        self._by_id: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(self, entries: Any) -> None:
        """Take one delta's ``tool_calls`` list."""
        if not isinstance(entries, list):
            return
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            call_id = entry.get("id") if isinstance(entry.get("id"), str) else ""
            index = entry.get("index")
            if not isinstance(index, int) or isinstance(index, bool):
                if call_id and call_id in self._by_id:
                    index = self._by_id[call_id]
                elif call_id or not self._calls:
                    index = len(self._calls)
                else:
                    index = max(self._calls)
            slot = self._calls.get(index)
            if slot is None:
                slot = self._calls[index] = ["", "", []]
            if call_id and not slot[0]:
                slot[0] = call_id
                self._by_id[call_id] = index
            function = entry.get("function")
            if isinstance(function, Mapping):
                name = function.get("name")
                if isinstance(name, str) and name and name != slot[1]:
                    slot[1] = slot[1] + name if slot[1] and not name.startswith(slot[1]) else name
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    slot[2].append(arguments)
                elif isinstance(arguments, Mapping):
                    slot[2].append(json.dumps(arguments))

    def calls(self) -> tuple[ToolCall | None, ...]:
        """The assembled calls in index order (None for one that never got a name)."""
        return tuple(
            tool_call(name, "".join(parts), call_id, f"call_{index}")
            for index, (call_id, name, parts) in sorted(self._calls.items())
        )


# -- Anthropic ------------------------------------------------------------------------------


def anthropic_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages for the Messages API (system messages go to ``system``, not here):
    assistant calls become ``tool_use`` blocks, and the tool results that follow them
    ``tool_result`` blocks of one user turn."""
    out: list[dict[str, Any]] = []
    results: list[dict[str, Any]] | None = None  # the blocks of the user turn being filled
    for message in messages:
        role = message.get("role")
        if role == "system":
            continue
        if role == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": content_text(message.get("content")),
            }
            if message.get("is_error"):
                block["is_error"] = True
            if results is None:
                results = []
                out.append({"role": "user", "content": results})
            results.append(block)
            continue
        results = None
        if role == "assistant" and message.get("tool_calls"):
            blocks: list[dict[str, Any]] = []
            text = message.get("content")
            if isinstance(text, str) and text:
                blocks.append({"type": "text", "text": text})
            for entry in message["tool_calls"]:
                call_id, name, arguments = call_fields(entry)
                blocks.append(
                    {"type": "tool_use", "id": call_id, "name": name, "input": _argument_object(arguments)}
                )
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": role, "content": message.get("content")})
    return out


def _anthropic_choice(choice: str | None, parallel: bool | None) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    if choice in (None, "auto"):
        picked: dict[str, Any] = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        picked = {"type": "any"}
    else:
        picked = {"type": "tool", "name": choice}
    if parallel is False:
        picked["disable_parallel_tool_use"] = True
    return picked


def _output_tool(schema: OutputSchema) -> dict[str, Any]:
    """The tool structured output is asked for with (its input is the answer)."""
    input_schema = (
        dict(schema.schema)
        if schema.is_object
        else {
            "type": "object",
            "properties": {WRAPPED: dict(schema.schema)},
            "required": [WRAPPED],
        }
    )
    return {
        "name": schema.name,
        "description": schema.description or "Give your final answer with this tool, in this structure.",
        "input_schema": input_schema,
    }


def anthropic_tool_fields(request: CompletionRequest) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` for the Messages API.  Structured output is a tool
    of its own, forced (or, beside the request's tools, required: the model may call
    one of them first)."""
    fields: dict[str, Any] = {}
    tools = [
        {"name": tool.name, "description": tool.description, "input_schema": dict(tool.parameters)}
        for tool in request.tools
    ]
    choice = _anthropic_choice(request.tool_choice, request.parallel_tool_calls if tools else None)
    schema = request.response_format
    if schema is not None:
        tools.append(_output_tool(schema))
        if request.tool_choice is None or request.tool_choice == "auto":
            choice = {"type": "any"} if request.tools else {"type": "tool", "name": schema.name}
            if request.parallel_tool_calls is False:
                choice["disable_parallel_tool_use"] = True
    if tools:
        fields["tools"] = tools
    if choice is not None and (tools or choice["type"] == "none"):
        fields["tool_choice"] = choice
    return fields


def anthropic_output(schema: OutputSchema, value: Any) -> str:
    """The structured answer's text from the output tool's input (unwrapped)."""
    if not schema.is_object and isinstance(value, Mapping) and WRAPPED in value:
        value = value[WRAPPED]
    return json.dumps(value, ensure_ascii=False)


# -- Ollama ---------------------------------------------------------------------------------


def ollama_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages for ``/api/chat``: call arguments as objects, and each tool result with
    the name of its tool (``tool_name``, looked up by call id when the message has none)."""
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for entry in message["tool_calls"]:
                call_id, name, arguments = call_fields(entry)
                names[call_id] = name
                calls.append({"function": {"name": name, "arguments": _argument_object(arguments)}})
            content = message.get("content")
            out.append(
                {
                    "role": "assistant",
                    "content": content if isinstance(content, str) else "",
                    "tool_calls": calls,
                }
            )
        elif role == "tool":
            call_id = str(message.get("tool_call_id") or "")
            result: dict[str, Any] = {"role": "tool", "content": content_text(message.get("content"))}
            tool_name = message.get("name") or names.get(call_id)
            if tool_name:
                result["tool_name"] = tool_name
            if call_id:
                result["tool_call_id"] = call_id
            out.append(result)
        else:
            out.append(dict(message))
    return out
