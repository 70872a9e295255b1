"""One exception tree for the whole framework.

Every error the framework raises derives from :class:`OrchestrationError`.  Provider
failures are mapped onto provider-agnostic classes that carry ``status_code``,
``retry_after`` and ``request_id`` so that retry decisions are made by class, never by
parsing vendor messages.  A model's answer that cannot be used as asked is a
:class:`ToolCallError`, not a provider failure: :class:`ToolArgumentsError` (a tool
call's arguments) or :class:`StructuredOutputError` (a structured answer).  No error message ever contains an API key or URL credentials:
providers pass messages through :func:`redact` before raising.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

from .text import valid_text

__all__ = [
    "AgentFailedError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CallbackError",
    "ConfigError",
    "ContextLengthError",
    "GraphError",
    "GraphMutationError",
    "LeaseLostError",
    "MalformedResponseError",
    "OrchestrationError",
    "OverloadedError",
    "PlanError",
    "ProviderError",
    "ProviderTimeoutError",
    "QuotaExceededError",
    "RateLimitError",
    "RunCancelledError",
    "RunLeasedError",
    "RunNotFoundError",
    "SequenceConflictError",
    "ServiceUnavailableError",
    "StoreError",
    "StepFailedError",
    "StoreUnavailableError",
    "StructuredOutputError",
    "ToolArgumentsError",
    "ToolCallError",
    "WorkflowError",
    "describe",
    "redact",
    "redact_urls",
]

_SECRET_PATTERNS = (
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"AIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"(?i)([?&](?:key|api_key|apikey|token|access_token|auth)=)[^&\s'\"]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.=]{8,}"),
    re.compile(r"(?i)(api[_-]?key[\"'=:\s]+)[A-Za-z0-9_\-\.]{8,}"),
    re.compile(r"(?i)(x-api-key[\"'=:\s]+)[A-Za-z0-9_\-\.]{8,}"),
)


#: ``scheme://user:password@``: everything between ``://`` and the authority's last ``@``
#: (a password may hold an unencoded ``@``, ``?`` or ``#``; the authority ends at ``/``).
#: Possessive and bounded, so any text costs linear time.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30}://)(?:[^\s/'\"<>\\@]*+@)++")
#: One ``name=value`` of a query string or fragment (also in text that is not a whole URL,
#: such as an access-log line ``"GET /runs?token=... HTTP/1.1"``).
_QUERY_PARAM = re.compile(r"([?&;#])([^=&;#\s'\"<>]{1,256})=([^&;#\s'\"<>]*)")
#: Query names that carry credentials, compared lower-cased without ``-``, ``_`` and ``.``.
_SECRET_NAMES = frozenset({"key", "sig", "code", "pass", "pwd", "jwt", "sid", "session", "xapikey"})
_SECRET_NAME_PARTS = ("token", "secret", "passw", "apikey", "accesskey", "credential", "signature", "auth")
#: Percent-decoding rounds before a query name counts as what it decodes to (``%2574oken``
#: is ``%74oken`` is ``token``); bounded so hostile input costs linear work.
_DECODE_ROUNDS = 8


def _decoded(text: str) -> str:
    """``text`` percent-decoded until it stops changing (at most ``_DECODE_ROUNDS`` times)."""
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


def _secret_name(name: str) -> bool:
    flat = re.sub(r"[\s_.\-\[\]]", "", _decoded(name).lower())
    return flat in _SECRET_NAMES or any(part in flat for part in _SECRET_NAME_PARTS)


def _redact_param(match: re.Match[str]) -> str:
    sep, name, value = match.group(1), match.group(2), match.group(3)
    if value and (_secret_name(name) or _URL_USERINFO.search(_decoded(value))):
        # A secret-looking name, or a value that is itself a URL with credentials
        # (``?next=http%3A%2F%2Fuser%3Apass%40host``): the whole value goes.
        return f"{sep}{name}=[REDACTED]"
    return match.group(0)


def redact_urls(text: str) -> str:
    """``text`` with URL credentials masked: userinfo (``user:password@``) and the values of
    query or fragment parameters whose (percent-decoded) names look like secrets."""
    if "@" in text:
        text = _URL_USERINFO.sub(lambda m: m.group(1) + "[REDACTED]@", text)
    if "=" in text:
        text = _QUERY_PARAM.sub(_redact_param, text)
    return text


def redact(text: str, *secrets: str | None) -> str:
    """Return ``text`` with the given secrets, URL credentials and anything shaped like an
    API key masked (see :func:`redact_urls`)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(form, "[REDACTED]")
    text = redact_urls(text)
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + "[REDACTED]", text)
        else:
            text = pattern.sub("[REDACTED]", text)
    return text


def describe(error: BaseException) -> str:
    """``"ErrorClass: message"`` with secrets redacted (just the class when it has no message),
    as valid UTF-8 (a message may quote a vendor's or a model's text)."""
    text = valid_text(redact(str(error)))
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


class StoreError(OrchestrationError):
    """The run store cannot be used: a damaged file, a file that is not a store, or a
    database that stayed unreachable.  The message is one line naming the store."""


class LeaseLostError(StoreError):
    """A write from a run's driver that no longer holds the run's lease was refused (another
    process took the run over): the old driver must stop; nothing it sends is stored."""


class SequenceConflictError(OrchestrationError):
    """An append did not continue the run's log: another writer appended first.

    Read the new events and decide again (a board does this by itself)."""


class StoreUnavailableError(StoreError):
    """The store's database cannot be reached right now (refused, dropped or shut down
    connections): transient; ``append`` retries it for the store's ``outage_timeout``."""


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
        super().__init__(valid_text(message))  # it may quote the vendor's error body
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


class ToolCallError(OrchestrationError, ValueError):
    """What a model answered cannot be used as asked: a tool call's arguments, or a
    structured answer.  Not a provider failure: the model can be shown the error and
    asked again (``ToolBox`` and structured output do so)."""


class ToolArgumentsError(ToolCallError):
    """A tool call's arguments are not a JSON object, or do not match the tool's schema.

    ``tool`` and ``call_id`` name the call, ``errors`` lists what is wrong."""

    def __init__(
        self, message: str, *, tool: str, call_id: str = "", errors: list[str] | None = None
    ) -> None:
        super().__init__(valid_text(message))  # it quotes the model's text
        self.tool = tool
        self.call_id = call_id
        self.errors = list(errors or ())


class StructuredOutputError(ToolCallError):
    """An answer is not JSON that follows the requested schema (after its retries).

    ``errors`` lists what is wrong, ``content`` is the answer, ``attempts`` how many
    answers were asked for."""

    def __init__(
        self, message: str, *, errors: list[str] | None = None, content: str = "", attempts: int = 1
    ) -> None:
        super().__init__(valid_text(message))
        self.errors = list(errors or ())
        self.content = content
        self.attempts = attempts


class GraphError(OrchestrationError, ValueError):
    """A graph is invalid: an unknown node, a cycle without a switch, a switch without routes."""


class GraphMutationError(GraphError):
    """A change to a running graph was refused (it touches an ACTIVE node, or the node is gone)."""


class RunLeasedError(ConfigError):
    """Another live process is driving this run (it holds the run's lease in the store).

    ``holder`` is that process's lease owner id (``host:pid:start:nonce:boot:pidns:kind``),
    ``lease_seconds`` how long its lease lasts unless renewed, ``waited`` whether this waited for it to expire
    (``wait=True``); an interface words its own advice from them."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        holder: str | None = None,
        lease_seconds: float | None = None,
        waited: bool = False,
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.waited = waited


class WorkflowError(GraphError):
    """A workflow is built wrongly: an undecorated step, a second start, a branch with no routes."""


class AgentFailedError(OrchestrationError):
    """An agent reported that its task failed (a planner worker's ``execute_subtask``
    returned a failed :class:`~orchestration.models.AgentResult`); the message is its error."""


class StepFailedError(OrchestrationError):
    """A workflow step raised; the run failed.  ``step`` names it, ``result`` keeps what ran."""

    def __init__(self, message: str, *, step: str, result: Any = None) -> None:
        super().__init__(message)
        self.step = step
        self.result = result
