"""Shared httpx plumbing for the HTTP providers.

:class:`HttpProvider` owns one pooled ``httpx.AsyncClient`` (created on first use, per
event loop), applies the optional shared :class:`~orchestration.ratelimit.RateLimiter`,
reads bodies with a size cap, and turns every failure into a provider-agnostic
:class:`~orchestration.errors.ProviderError` whose message names the provider and what
to fix, and never contains the API key.  It never retries: the core does, by class.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ClassVar, NoReturn, Self

import httpx

from orchestration.errors import (
    AuthenticationError,
    ConfigError,
    ContextLengthError,
    MalformedResponseError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    redact,
)
from orchestration.llm import CompletionRequest, Provider
from orchestration.ratelimit import RateLimiter, RateLimiterPool, RateLimiting
from orchestration.utils import install_redaction

from ._errors import (
    error_class,
    looks_like_html,
    parse_json_body,
    parse_retry_after,
    rate_limit_wait,
    request_id_of,
    snippet,
    vendor_error,
)
from ._limits import Slot, limited_call
from ._wire import parse_sse, split_lines

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "HttpProvider",
]

logger = logging.getLogger("providers")

DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
"""Per attempt: 10 s to connect, 120 s between bytes (reads, writes, pool waits)."""
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""Bodies (and whole streams) larger than this are refused as malformed."""
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)


class HttpProvider(Provider):
    """Base of the HTTP adapters: client lifecycle, rate limiting, error mapping.

    Use as ``async with provider:`` or call :meth:`aclose` when done.  Subclasses set
    the class attributes and implement ``complete`` (and ``stream``).
    """

    name: str = "http"
    default_base_url: ClassVar[str] = ""
    default_model: ClassVar[str | None] = None
    key_env: ClassVar[str | None] = None
    base_url_env: ClassVar[str | None] = None

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        name: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        rate_limiter: RateLimiting | RateLimiterPool | None = None,
        headers: Mapping[str, str] | None = None,
        limits: httpx.Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if name:
            self.name = name
        self.base_url = self._check_base_url(base_url) if base_url else ""
        self._api_key = api_key or None
        self.model = model or self.default_model
        if timeout is None:
            self.timeout = DEFAULT_TIMEOUT
        elif isinstance(timeout, httpx.Timeout):
            self.timeout = timeout
        else:
            self.timeout = httpx.Timeout(timeout)
        self.max_response_bytes = max_response_bytes
        # By default each provider adapts to the rate-limit headers its server sends (and
        # pauses everyone on a 429 with Retry-After); pass a shared RateLimiter with limits
        # to cap requests/tokens per minute across providers and runs, or a pool to share
        # one limiter with every provider of the same vendor, endpoint and key.
        if isinstance(rate_limiter, RateLimiterPool):
            rate_limiter = rate_limiter.limiter_for(self.name, self.base_url, self._api_key)
        self.rate_limiter: RateLimiting = rate_limiter if rate_limiter is not None else RateLimiter()
        self._extra_headers = dict(headers or {})
        self._limits = limits or DEFAULT_LIMITS
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # -- configuration -------------------------------------------------------------

    def _endpoint_from_env(self, base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
        """``base_url`` defaulting to ``$base_url_env`` or the vendor's URL; ``api_key``
        defaulting to ``$key_env`` only when no ``base_url`` was given, so a key from the
        environment is never sent to a server the caller chose."""
        if base_url is None:
            base_url = os.environ.get(self.base_url_env or "") or self.default_base_url
            if api_key is None and self.key_env:
                api_key = os.environ.get(self.key_env) or None
        return base_url, api_key

    def _missing_key(self, name: str | None, alternatives: str) -> ConfigError:
        """The error for a required key that is not set, naming the other ``--provider`` choices."""
        return ConfigError(
            f"{name or self.name}: {self.key_env} is not set; export it, or choose another provider "
            f"(--provider {alternatives})"
        )

    def _check_base_url(self, base_url: str) -> str:
        where = f" (check {self.base_url_env})" if self.base_url_env else ""
        try:
            url = httpx.URL(base_url)
        except (httpx.InvalidURL, TypeError):
            raise ConfigError(f"{self.name}: base_url {redact(base_url)!r} is not a URL{where}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(
                f"{self.name}: base_url {redact(base_url)!r} must look like http(s)://host[:port]/path{where}"
            )
        return base_url.rstrip("/")

    def _auth_headers(self) -> dict[str, str]:
        """Headers that carry the credentials (overridden per vendor)."""
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _model(self, request: CompletionRequest) -> str:
        model = request.model or self.model
        if not model:
            raise ConfigError(f"{self.name}: no model given; pass model=... or set primary_model")
        prefix = self.name + ":"
        return model[len(prefix) :] if model.startswith(prefix) else model

    def __repr__(self) -> str:
        shown = redact(self.base_url, self._api_key)
        return f"{type(self).__name__}(name={self.name!r}, base_url={shown!r}, model={self.model!r})"

    # -- lifecycle -------------------------------------------------------------------

    def _get_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # A client's pooled connections belong to one event loop; a new loop (e.g.
            # one run_sync per call) gets a new client.
            install_redaction("httpx", "httpcore")  # their log lines carry request URLs
            base_url, auth = _split_userinfo(self.base_url)
            self._client = httpx.AsyncClient(
                base_url=base_url,
                auth=auth,
                headers={**self._auth_headers(), **self._extra_headers},
                timeout=self.timeout,
                limits=self._limits,
                transport=self._transport,
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the pooled connections (the provider can be used again afterwards)."""
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- rate limiting ---------------------------------------------------------------

    def _limited(self, request: CompletionRequest, model: str) -> AbstractAsyncContextManager[Slot]:
        """A place for one call in the shared rate limiter, if there is one."""
        return limited_call(self.rate_limiter, self.name, request, model)

    # -- requests --------------------------------------------------------------------

    async def _post_json(
        self, path: str, payload: Mapping[str, Any], model: str, slot: Slot
    ) -> tuple[Any, httpx.Headers]:
        """POST ``payload``; return the parsed JSON body and the response headers."""
        async with self._open_stream(path, payload, model, slot) as response:
            body = await self._read_capped(response, model)
        try:
            return json.loads(body), response.headers
        except (ValueError, UnicodeDecodeError):
            raise self._not_json(response, body, model) from None

    @asynccontextmanager
    async def _open_stream(
        self, path: str, payload: Mapping[str, Any], model: str, slot: Slot
    ) -> AsyncIterator[httpx.Response]:
        """POST ``payload`` and yield the response, body unread, once its status is known good."""
        client = self._get_client()
        # The trace tells the rate limiter when the request is really written (after any
        # connection set-up), which is when the vendor counts it.
        request = client.build_request("POST", path, json=payload, extensions={"trace": slot.trace})
        slot.sending()
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, model) from exc
        finally:
            slot.sent()  # transports that do not trace: the request is out by now
        try:
            slot.observe(response.headers)
            if response.status_code >= 400:
                body = await self._read_capped(response, model)
                raise self._status_error(response, body, model)
            yield response
        finally:
            await response.aclose()

    async def _read_capped(self, response: httpx.Response, model: str) -> bytes:
        limit = self.max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            self._too_large(response, model)
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    self._too_large(response, model)
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, model) from exc
        return b"".join(chunks)

    def _lines(self, response: httpx.Response, model: str) -> AsyncIterator[str]:
        """The lines of a streaming body, size-capped, transport errors mapped."""

        async def text() -> AsyncIterator[str]:
            try:
                async for piece in response.aiter_text():
                    if response.num_bytes_downloaded > self.max_response_bytes:
                        self._too_large(response, model)
                    yield piece
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, model) from exc

        return split_lines(text())

    def _sse(self, response: httpx.Response, model: str) -> AsyncIterator[tuple[str, str]]:
        """The server-sent events of a streaming body as ``(event, data)``."""
        return parse_sse(self._lines(response, model))

    def _json_object(self, text: str, what: str, model: str, response: httpx.Response) -> Mapping[str, Any]:
        """One JSON object of a stream (``what``: an SSE event's data, an NDJSON line)."""
        try:
            value = json.loads(text)
        except ValueError:
            raise self._malformed(f"{what} is not JSON: {text[:200]!r}", model, response) from None
        if not isinstance(value, Mapping):
            raise self._malformed(f"{what} is not a JSON object", model, response)
        return value

    # -- error construction ----------------------------------------------------------

    def _error(
        self,
        kind: type[ProviderError],
        message: str,
        model: str | None,
        response: httpx.Response | None = None,
        **fields: Any,
    ) -> ProviderError:
        """``kind`` with the provider's name first, the key redacted, the response's ids."""
        if response is not None:
            fields.setdefault("status_code", response.status_code)
            fields.setdefault("request_id", request_id_of(response.headers))
        text = redact(f"{self.name}: {message}", self._api_key)
        return kind(text, provider=self.name, model=model, **fields)

    @property
    def _where(self) -> str:
        return f" ({self.base_url_env})" if self.base_url_env else ""

    def _hint(self, kind: type[ProviderError], status: int | None) -> str:
        if kind is AuthenticationError:
            return f"; check the API key{f' ({self.key_env})' if self.key_env else ''}"
        if kind is QuotaExceededError:
            return "; check the account's plan, billing or spend limit (retrying will not help)"
        if kind is ContextLengthError:
            return "; shorten the prompt or lower max_tokens"
        if status == 404:
            return f"; check the model name and the base URL{self._where}"
        return ""

    def _status_error(self, response: httpx.Response, body: bytes, model: str) -> ProviderError:
        status = response.status_code
        text = body.decode("utf-8", "replace")
        vendor = vendor_error(parse_json_body(body))
        kind = error_class(status, vendor)
        if vendor is not None and vendor.message:
            detail = vendor.message
        elif looks_like_html(text, response.headers.get("content-type")):
            detail = f"an HTML page instead of an API answer; is the base URL{self._where} the API root?"
        else:
            detail = snippet(text) or "(empty body)"
        message = f"HTTP {status} from {response.request.url}: {detail}{self._hint(kind, status)}"
        retry_after = parse_retry_after(response.headers)
        if retry_after is None and kind is RateLimitError:
            retry_after = rate_limit_wait(response.headers)
        return self._error(kind, message, model, response, retry_after=retry_after)

    def _stream_error(self, data: Any, model: str, response: httpx.Response) -> ProviderError:
        """An error object sent inside a 200 stream."""
        vendor = vendor_error(data)
        kind = error_class(None, vendor)
        detail = vendor.message if vendor and vendor.message else snippet(json.dumps(data, default=str))
        return self._error(
            kind, f"error inside the stream: {detail}{self._hint(kind, None)}", model, response
        )

    def _not_json(self, response: httpx.Response, body: bytes, model: str) -> ProviderError:
        text = body.decode("utf-8", "replace")
        if looks_like_html(text, response.headers.get("content-type")):
            detail = f"an HTML page, not JSON; is the base URL{self._where} the API root?"
        else:
            detail = f"a body that is not JSON: {snippet(text) or '(empty)'}"
        message = f"HTTP {response.status_code} from {response.request.url} returned {detail}"
        return self._error(MalformedResponseError, message, model, response)

    def _malformed(self, what: str, model: str, response: httpx.Response | None = None) -> ProviderError:
        return self._error(MalformedResponseError, f"malformed response: {what}", model, response)

    def _cut(self, model: str, response: httpx.Response, marker: str) -> ProviderError:
        message = f"the stream from {response.request.url} ended before {marker}; the connection was cut"
        return self._error(ServiceUnavailableError, message, model, response)

    def _too_large(self, response: httpx.Response, model: str) -> NoReturn:
        message = (
            f"the response from {response.request.url} is larger than {self.max_response_bytes} bytes; "
            "check the base URL, or raise max_response_bytes if this is expected"
        )
        raise self._error(MalformedResponseError, message, model, response)

    def _transport_error(self, exc: httpx.HTTPError, model: str) -> ProviderError:
        url = self.base_url or "(no base URL)"
        if isinstance(exc, httpx.TimeoutException):
            phase = type(exc).__name__.replace("Timeout", "").lower() or "read"
            limit = getattr(self.timeout, phase, None) or self.timeout.read
            error = self._error(
                ProviderTimeoutError,
                f"no answer from {url} within {limit}s ({phase} timeout); "
                "raise the provider's timeout or check the server",
                model,
            )
        elif isinstance(exc, httpx.ConnectError):
            error = self._error(
                ServiceUnavailableError,
                f"cannot connect to {url}: {exc or type(exc).__name__}; is the server running and "
                f"the base URL right{self._where}?",
                model,
            )
        else:
            error = self._error(
                ServiceUnavailableError,
                f"the connection to {url} failed: {exc or type(exc).__name__}",
                model,
            )
        logger.debug("%s", error)
        return error


def _split_userinfo(base_url: str) -> tuple[str, httpx.BasicAuth | None]:
    """``http://user:pass@host/v1`` as ``(http://host/v1, BasicAuth(user, pass))``.

    httpx would send the same Basic credentials for a URL with userinfo, but would also
    keep them in every request URL, and so in its log lines and in our error messages.
    """
    if not base_url:
        return base_url, None
    url = httpx.URL(base_url)
    if not url.userinfo:
        return base_url, None
    return str(url.copy_with(userinfo=b"")), httpx.BasicAuth(url.username, url.password)
