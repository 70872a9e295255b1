"""Pure parsing and classification: lines, server-sent events, Retry-After, error classes."""

from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator, Iterable

import pytest

from orchestration.errors import (
    AuthenticationError,
    BadRequestError,
    ContextLengthError,
    OverloadedError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
)
from providers._errors import (
    VendorError,
    error_class,
    looks_like_html,
    parse_retry_after,
    request_id_of,
    snippet,
    vendor_error,
)
from providers._wire import parse_sse, split_lines


async def chunks(pieces: Iterable[str]) -> AsyncIterator[str]:
    for piece in pieces:
        yield piece


async def lines_of(pieces: Iterable[str]) -> list[str]:
    return [line async for line in split_lines(chunks(pieces))]


async def test_split_lines_handles_every_terminator_and_chunk_boundary() -> None:
    assert await lines_of(["a\nb\r\nc\rd\n"]) == ["a", "b", "c", "d"]
    assert await lines_of(["a\r", "\nb\n"]) == ["a", "b"]  # CRLF split across chunks
    assert await lines_of(["a\r"]) == ["a"]
    assert await lines_of(["par", "tial\nlast-without-newline"]) == ["partial"]  # a cut line is dropped
    assert await lines_of(['{"t": "x\u2028y"}\n']) == ['{"t": "x\u2028y"}']  # not a line break in JSON


async def test_parse_sse_events() -> None:
    text = (
        ": keep-alive comment\n"
        "event: message_start\n"
        'data: {"a": 1}\n'
        "\n"
        "id: 7\n"
        "data: first\n"
        "data:second\n"
        "\n"
        "\n"
        "data: [DONE]\n"
        "\n"
    )
    events = [e async for e in parse_sse(split_lines(chunks([text[:17], text[17:40], text[40:]])))]
    assert events == [("message_start", '{"a": 1}'), ("message", "first\nsecond"), ("message", "[DONE]")]


async def test_parse_sse_dispatches_a_final_event_without_blank_line() -> None:
    assert [e async for e in parse_sse(chunks(["data: x"]))] == [("message", "x")]


def test_parse_retry_after() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "-4"}) == 0.0
    date = email.utils.formatdate(now + 20, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(20.0)
    assert parse_retry_after({"retry-after": email.utils.formatdate(now - 50, usegmt=True)}, now=now) == 0.0
    assert parse_retry_after({"retry-after": "tomorrow"}) is None
    assert parse_retry_after({"retry-after-ms": "soon", "retry-after": "2"}) == 2.0
    assert parse_retry_after({}) is None


def test_request_id_headers() -> None:
    assert request_id_of({"x-request-id": "a"}) == "a"
    assert request_id_of({"request-id": "b"}) == "b"
    assert request_id_of({}) is None


def test_vendor_error_shapes() -> None:
    assert vendor_error({"error": {"message": "m", "type": "t", "code": 42}}) == VendorError("m", "t", "42")
    assert vendor_error(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    ) == (VendorError("Overloaded", "overloaded_error", None))
    assert vendor_error({"error": "model not found"}) == VendorError("model not found")
    assert vendor_error({"detail": "Not Found"}) == VendorError("Not Found")
    assert vendor_error(["not", "a", "dict"]) is None and vendor_error({"ok": True}) is None


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, VendorError("Rate limit reached for requests"), RateLimitError),
        (429, VendorError("Resource has been exhausted (e.g. check quota)."), RateLimitError),
        (429, VendorError("x", code="insufficient_quota"), QuotaExceededError),
        (429, VendorError("You exceeded your current quota, please check your plan"), QuotaExceededError),
        (400, VendorError("Your credit balance is too low"), QuotaExceededError),
        (529, None, OverloadedError),
        (503, VendorError("busy", type="overloaded_error"), OverloadedError),
        (500, None, ServiceUnavailableError),
        (502, None, ServiceUnavailableError),
        (408, None, ServiceUnavailableError),
        (409, None, ServiceUnavailableError),
        (401, None, AuthenticationError),
        (403, None, AuthenticationError),
        (400, VendorError("prompt is too long: 1 > 0"), ContextLengthError),
        (400, VendorError("x", code="context_length_exceeded"), ContextLengthError),
        (500, VendorError("too many tokens in flight"), ServiceUnavailableError),
        (400, None, BadRequestError),
        (404, None, BadRequestError),
        (422, None, BadRequestError),
        (None, VendorError("x", type="overloaded_error"), OverloadedError),
        (None, VendorError("x", type="rate_limit_error"), RateLimitError),
        (None, VendorError("x", type="invalid_request_error"), BadRequestError),
        (None, VendorError("mystery"), ServiceUnavailableError),
    ],
)
def test_error_class(status: int | None, error: VendorError | None, kind: type[ProviderError]) -> None:
    assert error_class(status, error) is kind


def test_html_detection_and_snippet() -> None:
    assert looks_like_html("  <!DOCTYPE html><html>")
    assert looks_like_html("oops", "text/html; charset=utf-8")
    assert not looks_like_html('{"a": 1}', "application/json")
    assert snippet("a\n  b\tc") == "a b c"
    assert len(snippet("x" * 1000)) == 200
