"""One exception tree for the whole framework.

Every error the framework raises derives from :class:`OrchestrationError`.  Provider
failures are mapped onto provider-agnostic classes that carry ``status_code``,
``retry_after`` and ``request_id`` so that retry decisions are made by class, never by
parsing vendor messages.  No error message ever contains an API key: providers pass
messages through :func:`redact` before raising.
"""

from __future__ import annotations

import re

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CallbackError",
    "ConfigError",
    "ContextLengthError",
    "GraphError",
    "GraphMutationError",
    "MalformedResponseError",
    "OrchestrationError",
    "OverloadedError",
    "PlanError",
    "ProviderError",
    "ProviderTimeoutError",
    "QuotaExceededError",
    "RateLimitError",
    "RunCancelledError",
    "RunNotFoundError",
    "ServiceUnavailableError",
    "describe",
    "redact",
]

_SECRET_PATTERNS = (
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"AIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"(?i)([?&](?:key|api_key|apikey|token|access_token|auth)=)[^&\s'\"]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.=]{8,}"),
    re.compile(r"(?i)(api[_-]?key[\"'=:\s]+)[A-Za-z0-9_\-\.]{8,}"),
    re.compile(r"(?i)(x-api-key[\"'=:\s]+)[A-Za-z0-9_\-\.]{8,}"),
)


def redact(text: str, *secrets: str | None) -> str:
    """Return ``text`` with the given secrets and anything shaped like an API key masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[REDACTED]")
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + "[REDACTED]", text)
        else:
            text = pattern.sub("[REDACTED]", text)
    return text


def describe(error: BaseException) -> str:
    """``"ErrorClass: message"`` with secrets redacted (just the class when it has no message)."""
    text = redact(str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class OrchestrationError(Exception):
    """Base class of every error raised by the framework."""


class ConfigError(OrchestrationError, ValueError):
    """A configuration value is invalid; the message names the field and what to fix."""

    def __init__(self, errors: list[str] | str) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors))


class PlanError(OrchestrationError, ValueError):
    """A decomposition produced an unusable graph (no subtasks, duplicate ids, unknown ids, cycles)."""


class BudgetExceededError(OrchestrationError):
    """A model call would take the run past its ``max_total_cost``."""

    def __init__(self, message: str, *, cap: float, spent: float, requested: float = 0.0) -> None:
        super().__init__(message)
        self.cap = cap
        self.spent = spent
        self.requested = requested


class RunCancelledError(OrchestrationError):
    """The run was cancelled while the operation was waiting."""


class RunNotFoundError(OrchestrationError, KeyError):
    """No run with this id exists in the store."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else "run not found"


class CallbackError(OrchestrationError):
    """A user stream callback raised; reported as an event, never fatal to the run."""


class ProviderError(OrchestrationError):
    """A model provider call failed.

    Attributes are vendor-neutral: ``provider`` (its name), ``status_code`` (HTTP status
    when there was one), ``retry_after`` (seconds the server asked us to wait),
    ``request_id`` (the vendor's id for support tickets).
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        model: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after
        self.request_id = request_id
        self.model = model

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self)!r}, provider={self.provider!r}, "
            f"status_code={self.status_code!r}, request_id={self.request_id!r})"
        )


class RateLimitError(ProviderError):
    """HTTP 429 (or a vendor equivalent): too many requests or tokens; retry after a wait."""

    retryable = True


class QuotaExceededError(ProviderError):
    """A spend limit or insufficient quota (often also a 429): retrying will not help."""


class OverloadedError(ProviderError):
    """The vendor is overloaded (Anthropic 529, HTTP 503 with overload): retry later."""

    retryable = True


class ServiceUnavailableError(ProviderError):
    """5xx, 408, 409, refused or dropped connections: transient, retried."""

    retryable = True


class ProviderTimeoutError(ProviderError):
    """The provider did not answer in time."""

    retryable = True


class AuthenticationError(ProviderError):
    """401/403: the key is missing, wrong or lacks permission."""


class BadRequestError(ProviderError):
    """400/404/422: the request itself is wrong (unknown model, bad parameter)."""


class ContextLengthError(BadRequestError):
    """The prompt does not fit the model's context window."""


class MalformedResponseError(ProviderError):
    """The provider answered with something that is not its documented format."""


class GraphError(OrchestrationError, ValueError):
    """A graph is invalid: an unknown node, a cycle without a switch, a switch without routes."""


class GraphMutationError(GraphError):
    """A change to a running graph was refused (it touches an ACTIVE node, or the node is gone)."""
