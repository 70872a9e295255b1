"""Mapping vendor failures onto the framework's provider-agnostic error classes.

Vendors differ in how they say what went wrong (OpenAI ``{"error": {"message", "type",
"code"}}``, Anthropic ``{"type": "error", "error": {"type", "message"}}``, Ollama
``{"error": "..."}``, proxies an HTML page); the class we raise is decided by the HTTP
status first and the vendor's error type second, never by a retry loop here: the core
retries by class.  ``retry_after`` comes from ``retry-after-ms`` or ``retry-after``
(seconds or an HTTP date).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
from orchestration.ratelimit import parse_number, parse_rate_limit_headers

from ._wire import str_or_none

__all__ = [
    "VendorError",
    "error_class",
    "looks_like_html",
    "parse_json_body",
    "parse_retry_after",
    "rate_limit_wait",
    "request_id_of",
    "snippet",
    "vendor_error",
]

# Codes and phrases that mean "pay or raise your limit": a retry cannot help.
_QUOTA_CODES = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active", "billing_error"}
)
_QUOTA_PHRASES = (
    "exceeded your current quota",
    "credit balance is too low",
    "spend limit",
    "spending limit",
    "billing",
)
_CONTEXT_PHRASES = (
    "context_length_exceeded",
    "context length",
    "context window",
    "prompt is too long",
    "maximum context",
    "too many tokens",
    "exceeds the available context",
)
_RETRYABLE_TYPES = {
    "rate_limit_error": RateLimitError,
    "rate_limit_exceeded": RateLimitError,
    "overloaded_error": OverloadedError,
    "overloaded": OverloadedError,
    "api_error": ServiceUnavailableError,
    "server_error": ServiceUnavailableError,
    "internal_error": ServiceUnavailableError,
    "timeout_error": ServiceUnavailableError,
    "service_unavailable": ServiceUnavailableError,
}
_FATAL_TYPES: dict[str, type[ProviderError]] = {
    "authentication_error": AuthenticationError,
    "permission_error": AuthenticationError,
    "invalid_api_key": AuthenticationError,
    "invalid_request_error": BadRequestError,
    "not_found_error": BadRequestError,
    "request_too_large": BadRequestError,
    "model_not_found": BadRequestError,
}


@dataclass(frozen=True, slots=True)
class VendorError:
    """The parts of a vendor's error object that we use."""

    message: str | None = None
    type: str | None = None
    code: str | None = None

    @property
    def text(self) -> str:
        """Type, code and message, lower-cased, for phrase matching."""
        return " ".join(part for part in (self.type, self.code, self.message) if part).lower()


def vendor_error(data: Any) -> VendorError | None:
    """Extract the error object from a parsed vendor body, or None when it holds none."""
    if not isinstance(data, Mapping):
        return None
    error = data.get("error")
    if isinstance(error, Mapping):
        code = error.get("code")
        return VendorError(
            message=str_or_none(error.get("message")),
            type=str_or_none(error.get("type")),
            code=str(code) if code is not None else None,
        )
    if isinstance(error, str):  # Ollama, llama.cpp and many proxies
        return VendorError(message=error)
    detail = data.get("detail") or data.get("message")  # FastAPI-style servers
    if isinstance(detail, str):
        return VendorError(message=detail)
    return None


def error_class(status: int | None, error: VendorError | None) -> type[ProviderError]:
    """The error class for an HTTP ``status`` (None inside a 200 stream) and vendor error."""
    text = error.text if error else ""
    kind = (error.type or error.code or "").lower() if error else ""
    if (
        (error and error.code in _QUOTA_CODES)
        or kind in _QUOTA_CODES
        or any(phrase in text for phrase in _QUOTA_PHRASES)
    ):
        return QuotaExceededError
    if status == 429:
        return RateLimitError
    if status == 529 or kind in ("overloaded_error", "overloaded"):
        return OverloadedError
    if status in (401, 403):
        return AuthenticationError
    if (status is None or 400 <= status < 500) and any(phrase in text for phrase in _CONTEXT_PHRASES):
        return ContextLengthError
    if status is not None:
        if status in (408, 409, 425) or status >= 500:
            return ServiceUnavailableError
        if status >= 400:
            return _FATAL_TYPES.get(kind, BadRequestError)
    if kind in _FATAL_TYPES:
        return _FATAL_TYPES[kind]
    # An unknown error inside a stream: treat as transient (the stream rule still forbids
    # retrying once content was delivered).
    return _RETRYABLE_TYPES.get(kind, ServiceUnavailableError)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    value = headers.get("retry-after-ms")
    if value is not None:
        milliseconds = parse_number(value)
        if milliseconds is not None:
            return milliseconds / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = parse_number(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """For a 429 without Retry-After: the reset time of whichever limit the rate-limit
    headers say is exhausted, or None."""
    limits = parse_rate_limit_headers(headers)
    if limits is None:
        return None
    waits = [
        reset
        for remaining, reset in (
            (limits.requests_remaining, limits.requests_reset),
            (limits.tokens_remaining, limits.tokens_reset),
        )
        if remaining == 0 and reset is not None
    ]
    return max(waits) if waits else None


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The vendor's request id (``x-request-id``, Anthropic's ``request-id``)."""
    return headers.get("x-request-id") or headers.get("request-id")


def looks_like_html(text: str, content_type: str | None = None) -> bool:
    """True for an HTML page (a proxy's or a web server's error page, a wrong base URL)."""
    if content_type and "html" in content_type.lower():
        return True
    head = text.lstrip()[:100].lower()
    return head.startswith(("<!doctype html", "<html", "<head", "<body"))


def snippet(text: str, limit: int = 200) -> str:
    """A short single-line excerpt of a body for an error message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def parse_json_body(body: bytes) -> Any:
    """``json.loads``, or None when the body is not JSON (for error bodies)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
