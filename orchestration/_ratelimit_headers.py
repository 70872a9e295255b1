"""Reading the rate-limit headers vendors send (OpenAI's ``x-ratelimit-*``, Anthropic's
``anthropic-ratelimit-*``) into :class:`ServerLimits`, for :mod:`orchestration.ratelimit`.

A header's number is believed only when it is finite: ``inf`` as a reset time would pause
every caller forever, and ``int(float("inf"))`` raises.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

__all__ = ["ServerLimits", "parse_duration", "parse_number", "parse_rate_limit_headers"]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What a response's rate-limit headers said (``*_reset`` in seconds from now)."""

    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset: float | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset: float | None = None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_number(text: str) -> float | None:
    """A header's plain number, at least 0 (a negative one is 0); None when ``text`` is not
    a finite number (``"nan"``, ``"inf"``, ``"soon"``)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return max(0.0, value) if math.isfinite(value) else None


def parse_duration(text: str) -> float | None:
    """Seconds in an OpenAI-style reset duration (``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m"``)."""
    text = text.strip()
    if not text:
        return None
    seconds = parse_number(text)
    if seconds is not None:
        return seconds
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    seconds = sum(float(number) * scale[unit] for number, unit in parts)
    return seconds if math.isfinite(seconds) else None  # 400 digits of "s" are infinite too


def _reset_seconds(text: str | None, wall_now: float) -> float | None:
    if text is None:
        return None
    seconds = parse_duration(text)
    if seconds is not None:
        return seconds
    try:  # Anthropic: an RFC 3339 timestamp
        stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    return max(0.0, stamp.timestamp() - wall_now)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    number = parse_number(value) if value is not None else None
    return None if number is None else int(number)


def parse_rate_limit_headers(
    headers: Mapping[str, str], wall_now: float | None = None
) -> ServerLimits | None:
    """Read ``x-ratelimit-*`` (OpenAI and compatibles) or ``anthropic-ratelimit-*`` headers.

    ``headers`` must look names up case-insensitively (``httpx.Headers`` does).  Returns
    None when the response carried none of them.
    """
    wall = time.time() if wall_now is None else wall_now
    if (
        headers.get("x-ratelimit-limit-requests") is not None
        or headers.get("x-ratelimit-limit-tokens") is not None
    ):
        return ServerLimits(
            requests_limit=_int_header(headers, "x-ratelimit-limit-requests"),
            requests_remaining=_int_header(headers, "x-ratelimit-remaining-requests"),
            requests_reset=_reset_seconds(headers.get("x-ratelimit-reset-requests"), wall),
            tokens_limit=_int_header(headers, "x-ratelimit-limit-tokens"),
            tokens_remaining=_int_header(headers, "x-ratelimit-remaining-tokens"),
            tokens_reset=_reset_seconds(headers.get("x-ratelimit-reset-tokens"), wall),
        )
    prefix = "anthropic-ratelimit-"
    if headers.get(prefix + "requests-limit") is None and headers.get(prefix + "tokens-limit") is None:
        return None
    # Anthropic reports total tokens and, separately, input tokens; we reserve input + output.
    tokens = "tokens" if headers.get(prefix + "tokens-limit") is not None else "input-tokens"
    return ServerLimits(
        requests_limit=_int_header(headers, prefix + "requests-limit"),
        requests_remaining=_int_header(headers, prefix + "requests-remaining"),
        requests_reset=_reset_seconds(headers.get(prefix + "requests-reset"), wall),
        tokens_limit=_int_header(headers, f"{prefix}{tokens}-limit"),
        tokens_remaining=_int_header(headers, f"{prefix}{tokens}-remaining"),
        tokens_reset=_reset_seconds(headers.get(f"{prefix}{tokens}-reset"), wall),
    )
