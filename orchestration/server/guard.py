"""Request limits and cross-origin protection for the server (ASGI middleware).

:class:`RequestGuardMiddleware` runs before authentication, so everything it does is
cheap and linear in what the client sent; :class:`BodyLimitMiddleware` runs after it:

- the request line and headers together are capped (``431``); a client cannot make the
  server parse an unbounded ``Cookie`` or query string;
- a write (any method but ``GET``/``HEAD``/``OPTIONS``) is refused with ``403`` when the
  browser says it comes from another origin (``Sec-Fetch-Site`` or ``Origin``): another
  port on 127.0.0.1 is the same *site* for cookies, but not the same origin;
- a write's body must be exactly the ``application/json`` media type (``415``; the
  header is parsed, so ``text/plain; x=application/json`` is not JSON);
- a body is read only up to ``max_body_bytes`` (``413`` as soon as it is exceeded, from
  ``Content-Length`` or while the body streams in, never after buffering it all).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_HEADER_BYTES",
    "BodyLimitMiddleware",
    "RequestGuardMiddleware",
    "is_json_media_type",
]

#: Request line plus headers, in bytes (browsers send a few KB; h11's own default is 16 KiB).
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
#: A ``POST /runs`` body, in bytes.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})

Scope = dict[str, Any]


def is_json_media_type(value: str | None) -> bool:
    """True when a ``Content-Type`` value is ``application/json`` (optionally ``charset=utf-8``).

    The value is parsed as ``type/subtype *(; name=value)``: a parameter that merely
    mentions ``application/json`` does not count.
    """
    if value is None:
        return False
    media, *parameters = value.split(";")
    if media.strip().lower() != "application/json":
        return False
    for parameter in parameters:
        name, sep, raw = parameter.partition("=")
        if (
            not sep
            or name.strip().lower() != "charset"
            or raw.strip().strip('"').lower() not in {"utf-8", "utf8"}
        ):
            return False
    return True


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by lower-case name (the first of repeated ones)."""
    found: dict[bytes, bytes] = {}
    for key, value in scope.get("headers", ()):
        found.setdefault(bytes(key).lower(), bytes(value))
    return found


def _own_origin(scope: Scope, host: bytes | None) -> str | None:
    if host is None:
        server = scope.get("server")
        if not server or server[1] is None:
            return None
        host = f"{server[0]}:{server[1]}".encode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host.decode('latin-1').strip().lower()}"


async def send_error(
    send: Any, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send a complete JSON ``{"error": message}`` response."""
    body = json.dumps({"error": message}).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuardMiddleware:
    """Caps header sizes and refuses cross-origin or non-JSON writes (before authentication)."""

    def __init__(self, app: Any, *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> None:
        if max_header_bytes < 1024:
            raise ValueError("max_header_bytes must be at least 1024")
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """ASGI entry point."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
        for key, value in scope.get("headers", ()):
            size += len(key) + len(value) + 4
        if size > self.max_header_bytes:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1009})
                return
            await send_error(send, 431, f"request headers too large: at most {self.max_header_bytes} bytes")
            return
        if scope["type"] != "http" or scope.get("method", "GET") in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        refusal = self._refuse_write(scope, _headers(scope))
        if refusal is not None:
            await send_error(send, *refusal)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _refuse_write(scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        fetch_site = headers.get(b"sec-fetch-site")
        if fetch_site is not None and fetch_site.decode("latin-1").strip().lower() not in _SAME_ORIGIN_FETCH:
            return 403, "cross-origin writes are refused (Sec-Fetch-Site is not same-origin)"
        origin = headers.get(b"origin")
        if origin is not None and origin.decode("latin-1").strip().lower() != _own_origin(
            scope, headers.get(b"host")
        ):
            return 403, "cross-origin writes are refused (Origin is not this server)"
        content_type = headers.get(b"content-type")
        if not is_json_media_type(content_type.decode("latin-1") if content_type is not None else None):
            return 415, "send the request as JSON (Content-Type: application/json)"
        return None


class BodyLimitMiddleware:
    """Reads a write's body up to ``max_body_bytes`` and hands it on; 413 beyond (after authentication)."""

    def __init__(self, app: Any, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """ASGI entry point."""
        if scope["type"] != "http" or scope.get("method", "GET") in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        headers = _headers(scope)
        too_large = f"the request body is larger than {limit} bytes (the server's --max-body-bytes)"
        declared = headers.get(b"content-length")
        if declared is not None and (
            not declared.strip().isdigit() or len(declared) > 18 or int(declared) > limit
        ):
            await send_error(send, 413, too_large, [(b"connection", b"close")])
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await send_error(send, 413, too_large, [(b"connection", b"close")])
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return dict(await receive())

        await self.app(scope, replay, send)
