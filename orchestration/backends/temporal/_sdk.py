"""The Temporal SDK, imported once, with an error naming the extra when it is missing."""

from __future__ import annotations

from ...errors import ConfigError

try:
    from temporalio import activity, workflow
    from temporalio.client import Client, WorkflowHandle
    from temporalio.common import RetryPolicy
    from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
    from temporalio.worker import Worker
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ConfigError(
        f"the Temporal backend needs the temporal extra ({error}): pip install -e '.[temporal]'"
    ) from None

__all__ = [
    "ActivityError",
    "ApplicationError",
    "CancelledError",
    "Client",
    "RetryPolicy",
    "Worker",
    "WorkflowHandle",
    "activity",
    "workflow",
]
