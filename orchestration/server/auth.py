"""Token authentication for the server (an ASGI middleware) and token-free logging.

A request is let in when it carries the token as ``Authorization: Bearer <token>``, as
the ``orchestration_token`` cookie, or as ``?token=<token>`` (browsers' EventSource
cannot send headers).  A query token is turned into an HttpOnly, SameSite=Strict cookie
so the page's later requests carry it and the URL can drop it.  Comparison is constant
time.  The token never appears in a response, a log line or a repr.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from ..errors import redact_urls

__all__ = ["COOKIE_NAME", "RedactTokenFilter", "TokenAuthMiddleware", "redact_query_token"]

COOKIE_NAME = "orchestration_token"
_QUERY_TOKEN = re.compile(r"([?&]token=)[^&\s#]*")

Scope = dict[str, Any]


def redact_query_token(text: str) -> str:
    """``text`` with any ``token=...`` query value masked (percent-encoded names too)."""
    return redact_urls(_QUERY_TOKEN.sub(r"\1[REDACTED]", text))


class RedactTokenFilter(logging.Filter):
    """A logging filter that masks ``?token=`` in access-log lines (uvicorn's included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message arguments in place; always keeps the record."""
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query_token(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_query_token(record.msg)
        return True


class _Secret:
    """Holds the token; its repr never shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value.encode("utf-8")

    def matches(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(self._value, candidate.encode("utf-8"))

    def __repr__(self) -> str:
        return "<token [REDACTED]>"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _cookie(scope: Scope) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(raw)
    except Exception:
        return None
    morsel = cookie.get(COOKIE_NAME)
    return morsel.value if morsel is not None else None


def _query_token(scope: Scope) -> str | None:
    query = scope.get("query_string", b"").decode("latin-1")
    values = parse_qs(query).get("token")
    return values[0] if values else None


class TokenAuthMiddleware:
    """Refuses HTTP and WebSocket requests without the token (401, JSON or a short HTML page)."""

    def __init__(self, app: Any, token: str) -> None:
        if not token:
            raise ValueError("the server needs a non-empty token")
        self.app = app
        self._secret = _Secret(token)

    def __repr__(self) -> str:
        return "TokenAuthMiddleware(token=[REDACTED])"

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """ASGI entry point."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        authorization = _header(scope, b"authorization") or ""
        bearer = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
        query = _query_token(scope)
        if self._secret.matches(bearer) or self._secret.matches(_cookie(scope)):
            await self.app(scope, receive, send)
            return
        if self._secret.matches(query):
            await self.app(scope, receive, self._with_cookie(send, query or ""))
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401})
            return
        await _refuse(scope, send, "missing" if not (bearer or query or _cookie(scope)) else "invalid")

    @staticmethod
    def _with_cookie(send: Any, token: str) -> Any:
        cookie = f"{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict"

        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((b"set-cookie", cookie.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped


async def _refuse(scope: Scope, send: Any, why: str) -> None:
    accept = _header(scope, b"accept") or ""
    if "text/html" in accept:
        body = (
            b"<!doctype html><meta charset=utf-8><title>Token required</title>"
            b"<p>This server needs its access token. Open the address <code>orchestrate serve</code> "
            b"printed (it ends in <code>?token=...</code>).</p>"
        )
        content_type = b"text/html; charset=utf-8"
    else:
        body = json.dumps({"error": f"{why} token", "detail": "send Authorization: Bearer <token>"}).encode()
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="orchestration"'),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
