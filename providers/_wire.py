"""Wire-level helpers shared by the adapters: line splitting, server-sent events, JSON
field checks, offline usage estimates, and the "do not retry" mark for streams that
delivered content.

The parsers work on any async iterator of text, so they are tested without a server.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeGuard

from orchestration.completions import output_text
from orchestration.errors import ProviderError
from orchestration.llm import CompletionRequest, ToolCall
from orchestration.tokens import count_message_tokens, count_tokens
from orchestration.usage import Usage

__all__ = [
    "estimate_usage",
    "is_number",
    "mark_no_retry",
    "no_retry_once_delivered",
    "parse_sse",
    "split_lines",
    "str_or_none",
]

_NEWLINE = re.compile(r"\r\n|\r|\n")


async def split_lines(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """Lines of a text stream split on CRLF, LF or CR (only those: JSON may hold U+2028).

    A final line without a terminator is dropped: the stream was cut inside it, and the
    caller notices the missing end marker.
    """
    buffer = ""
    async for text in chunks:
        buffer += text
        tail = ""
        if buffer.endswith("\r"):  # maybe half of a CRLF split across chunks
            buffer, tail = buffer[:-1], "\r"
        parts = _NEWLINE.split(buffer)
        buffer = parts.pop() + tail
        for line in parts:
            yield line
    if buffer.endswith("\r"):  # the last line was complete after all
        yield buffer[:-1]


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """Server-sent events as ``(event, data)``; comments, ids and retry fields are skipped."""
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", []
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
    if data:
        yield event or "message", "\n".join(data)


def is_number(value: Any) -> TypeGuard[int | float]:
    """True for a JSON number (``bool`` is an ``int`` in Python, but not a count)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def str_or_none(value: Any) -> str | None:
    """``value`` if it is a string, else None (for optional string fields of a vendor body)."""
    return value if isinstance(value, str) else None


def estimate_usage(
    request: CompletionRequest, model: str | None, content: str, tool_calls: Sequence[ToolCall] = ()
) -> Usage:
    """Usage counted with the offline tokenizer, marked estimated (the server gave none):
    the prompt with its tool definitions, the answer with its tool calls."""
    return Usage(
        input_tokens=count_message_tokens(request.counted_messages, model).tokens,
        output_tokens=count_tokens(output_text(content, tool_calls), model).tokens,
        calls=1,
        estimated=True,
    )


def mark_no_retry(error: BaseException) -> BaseException:
    """Flag ``error`` so the core does not retry it (a stream already delivered content,
    and a retry would bill and show those tokens twice)."""
    setattr(error, "no_retry", True)  # noqa: B010 - ProviderError declares no such attribute
    return error


@contextmanager
def no_retry_once_delivered(parts: Sequence[str]) -> Iterator[None]:
    """Around a stream's parsing: a :class:`ProviderError` raised after text was delivered
    (``parts`` is not empty) is marked with :func:`mark_no_retry`."""
    try:
        yield
    except ProviderError as error:
        if parts:
            raise mark_no_retry(error) from None
        raise
