"""Token authentication for the server (an ASGI middleware) and token-free logging.

A reading request (``GET``/``HEAD``) is let in when it carries the token as
``Authorization: Bearer <token>``, as the server's cookie, or as ``?token=<token>``
(browsers' EventSource cannot send headers).  A query token is turned into an
``HttpOnly; SameSite=Strict; Path=/`` cookie so the page's later requests carry it and
the URL can drop it.  The cookie's name includes the server's port
(``orchestration_token_8765``): browsers do not separate cookies by port, so two servers
on one host would otherwise overwrite each other's.

A write (``POST``...) needs more than the cookie, which the browser also attaches to
requests that pages on other local ports forge: the ``Authorization`` header, or the
cookie together with the page's CSRF token (``X-CSRF-Token``, an HMAC of the token that
only the served page carries).  A query token never authorises a write.

The ``Cookie`` header is read by a single linear scan, and only when it is at most
:data:`MAX_COOKIE_BYTES` long (``http.cookies`` is quadratic on hostile input).
Comparison is constant time.  The token never appears in a response, a log line or a repr.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs

from ..errors import redact_urls
from .guard import send_error

__all__ = [
    "COOKIE_PREFIX",
    "CSRF_HEADER",
    "MAX_COOKIE_BYTES",
    "RedactTokenFilter",
    "TokenAuthMiddleware",
    "cookie_name",
    "csrf_token",
    "read_cookie",
    "redact_query_token",
]

COOKIE_PREFIX = "orchestration_token"
CSRF_HEADER = "x-csrf-token"
#: A longer ``Cookie`` header is ignored (a browser's cookies for one host fit in far less).
MAX_COOKIE_BYTES = 8 * 1024
_QUERY_TOKEN = re.compile(r"([?&]token=)[^&\s#]*")
_SAFE_METHODS = frozenset({"GET", "HEAD"})

Scope = dict[str, Any]


def redact_query_token(text: str) -> str:
    """``text`` with any ``token=...`` query value masked (percent-encoded names too)."""
    return redact_urls(_QUERY_TOKEN.sub(r"\1[REDACTED]", text))


def csrf_token(token: str) -> str:
    """The CSRF token the live page sends with its writes: an HMAC of ``token``, not the token."""
    return hmac.new(token.encode("utf-8"), b"orchestration csrf v1", hashlib.sha256).hexdigest()


def cookie_name(scope: Scope) -> str:
    """The token cookie's name for the server that received ``scope`` (its port appended)."""
    server = scope.get("server")
    port = server[1] if server else None
    return f"{COOKIE_PREFIX}_{port}" if port is not None else COOKIE_PREFIX


def read_cookie(header: str, name: str) -> str | None:
    """The first value of cookie ``name`` in a ``Cookie`` header, by one linear scan.

    Headers longer than :data:`MAX_COOKIE_BYTES` are ignored.  Values are taken as sent
    (the server's own cookie never needs quoting).
    """
    if len(header) > MAX_COOKIE_BYTES:
        return None
    for pair in header.split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return None


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
    """Holds a secret; its repr never shows it."""

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


def _query_token(scope: Scope) -> str | None:
    query = scope.get("query_string", b"").decode("latin-1")
    if "token=" not in query:
        return None
    values = parse_qs(query).get("token")
    return values[0] if values else None


class TokenAuthMiddleware:
    """Refuses requests without the token (401) and writes without header or CSRF token (403)."""

    def __init__(self, app: Any, token: str) -> None:
        if not token:
            raise ValueError("the server needs a non-empty token")
        self.app = app
        self._secret = _Secret(token)
        self._csrf = _Secret(csrf_token(token))

    def __repr__(self) -> str:
        return "TokenAuthMiddleware(token=[REDACTED])"

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """ASGI entry point."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        authorization = _header(scope, b"authorization") or ""
        bearer = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
        if self._secret.matches(bearer):
            await self.app(scope, receive, send)
            return
        name = cookie_name(scope)
        cookie = read_cookie(_header(scope, b"cookie") or "", name)
        query = _query_token(scope)
        reading = scope["type"] == "http" and scope.get("method", "GET") in _SAFE_METHODS
        if not reading and scope["type"] == "http":
            if self._secret.matches(cookie) and self._csrf.matches(_header(scope, CSRF_HEADER.encode())):
                await self.app(scope, receive, send)
                return
            if self._secret.matches(cookie) or self._secret.matches(query):
                detail = "a write needs Authorization: Bearer <token> (the live page sends its X-CSRF-Token)"
                await send_error(send, 403, detail)
                return
        elif self._secret.matches(cookie):
            await self.app(scope, receive, send)
            return
        elif self._secret.matches(query):
            await self.app(scope, receive, self._with_cookie(send, name, query or ""))
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401})
            return
        await _refuse(scope, send, "missing" if not (bearer or query or cookie) else "invalid")

    @staticmethod
    def _with_cookie(send: Any, name: str, token: str) -> Any:
        cookie = f"{name}={token}; Path=/; HttpOnly; SameSite=Strict"

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
