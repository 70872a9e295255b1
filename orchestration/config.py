"""Run configuration.

Every field changes behaviour; none is silently ignored.  Construction validates and
raises :class:`~orchestration.errors.ConfigError` naming each bad field;
:meth:`OrchestratorConfig.validate` returns the same messages as a list (useful after
changing fields in place).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ConfigError

__all__ = ["DOCUMENT_FORMATS", "OrchestratorConfig"]

DOCUMENT_FORMATS = ("markdown", "pdf")


@dataclass
class OrchestratorConfig:
    """How an orchestrator runs.

    - ``num_agents``: how many subtasks an LLM decomposition asks for.
    - ``primary_model`` / ``fallback_model``: model ids; the fallback (one id or a list,
      tried in order) answers when the primary fails for good.  ``None`` uses the
      provider's default model.
    - ``max_retries``: retries after the first attempt, for retryable errors only, with
      exponential backoff and jitter from ``retry_base_delay`` up to ``retry_max_delay``.
    - ``timeout_seconds``: limit for one attempt of one subtask (and of one model call).
    - ``parallel_execution`` / ``max_concurrent_agents``: independent subtasks run in
      parallel up to the cap; ``parallel_execution=False`` runs one at a time.
    - ``enable_cost_tracking``: price every call; off means tokens are still recorded
      but every cost is 0 and no budget can be set.
    - ``max_total_cost``: hard cap in USD for the whole run (reserve before, settle after).
    - ``max_tokens``: output token limit sent with every model call (also the
      worst case a budget reservation prices).
    - ``temperature``: sent with every model call when set.
    - ``generate_documents`` / ``document_formats`` / ``output_directory``: reports.
    - ``lease_seconds``: with a durable store, how long a run's lease lasts without
      renewal (the driving process renews it); a crashed process's runs can be resumed
      by another process once it expires.
    - ``callback_timeout_seconds`` / ``callback_queue_size``: each stream callback gets
      its own queue of events; one that takes longer than the timeout on an event, raises,
      or stays more than ``callback_queue_size`` events behind for longer than the timeout
      is dropped from the run (a ``callback_error`` event says why), and at the end of a
      run the callbacks get at most the timeout to take what is left.
    """

    num_agents: int = 3
    primary_model: str | None = None
    fallback_model: str | Sequence[str] | None = None
    max_retries: int = 2
    timeout_seconds: float = 300.0
    parallel_execution: bool = True
    max_concurrent_agents: int = 5
    enable_cost_tracking: bool = True
    generate_documents: bool = False
    document_formats: Sequence[str] = field(default_factory=lambda: ["markdown"])
    output_directory: str = "reports"
    max_total_cost: float | None = None
    max_tokens: int = 4096
    temperature: float | None = None
    retry_base_delay: float = 1.0
    retry_max_delay: float = 30.0
    lease_seconds: float = 30.0
    callback_timeout_seconds: float = 10.0
    callback_queue_size: int = 10_000

    def __post_init__(self) -> None:
        errors = self.validate()
        if errors:
            raise ConfigError(errors)

    @property
    def fallback_models(self) -> tuple[str, ...]:
        """The fallback chain as a tuple (empty when there is none)."""
        if self.fallback_model is None:
            return ()
        if isinstance(self.fallback_model, str):
            return (self.fallback_model,)
        return tuple(self.fallback_model)

    @property
    def concurrency(self) -> int:
        """How many subtasks may run at once."""
        return self.max_concurrent_agents if self.parallel_execution else 1

    def validate(self) -> list[str]:
        """Return every problem with this config as a message naming the field."""
        errors: list[str] = []

        def check_int(name: str, minimum: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                errors.append(f"{name} must be an integer, got {value!r}")
            elif value < minimum:
                errors.append(f"{name} must be >= {minimum}, got {value}")

        def check_number(name: str, *, positive: bool, optional: bool = False) -> None:
            value = getattr(self, name)
            if value is None and optional:
                return
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                errors.append(f"{name} must be a number, got {value!r}")
            elif not math.isfinite(value):
                errors.append(f"{name} must be a finite number, got {value!r}")
            elif positive and value <= 0:
                errors.append(f"{name} must be > 0, got {value}")
            elif value < 0:
                errors.append(f"{name} must be >= 0, got {value}")

        check_int("num_agents", 1)
        check_int("max_retries", 0)
        check_int("max_concurrent_agents", 1)
        check_int("max_tokens", 1)
        check_number("timeout_seconds", positive=True)
        check_number("max_total_cost", positive=True, optional=True)
        check_number("temperature", positive=False, optional=True)
        check_number("retry_base_delay", positive=False)
        check_number("retry_max_delay", positive=False)
        check_number("lease_seconds", positive=True)
        check_number("callback_timeout_seconds", positive=True)
        if isinstance(self.callback_timeout_seconds, float) and math.isinf(self.callback_timeout_seconds):
            errors.append(
                "callback_timeout_seconds must be a finite number of seconds (a stuck callback "
                f"would hold the run forever), got {self.callback_timeout_seconds}"
            )
        check_int("callback_queue_size", 1)
        for name in ("parallel_execution", "enable_cost_tracking", "generate_documents"):
            if not isinstance(getattr(self, name), bool):
                errors.append(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("primary_model",):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                errors.append(f"{name} must be a non-empty model id or None, got {value!r}")
        fallback = self.fallback_model
        if fallback is not None:
            chain = [fallback] if isinstance(fallback, str) else fallback
            if not isinstance(chain, Sequence) or not all(isinstance(m, str) and m.strip() for m in chain):
                errors.append(f"fallback_model must be a model id or a list of ids, got {fallback!r}")
        formats = self.document_formats
        if isinstance(formats, str) or not isinstance(formats, Sequence):
            errors.append(f"document_formats must be a list such as ['markdown', 'pdf'], got {formats!r}")
        else:
            unknown = [f for f in formats if f not in DOCUMENT_FORMATS]
            if unknown:
                errors.append(
                    f"document_formats has unknown format(s) {unknown}; choose from {list(DOCUMENT_FORMATS)}"
                )
            if self.generate_documents is True and not formats:
                errors.append("document_formats must name at least one format when generate_documents=True")
        if not isinstance(self.output_directory, str) or not self.output_directory:
            errors.append(f"output_directory must be a non-empty path, got {self.output_directory!r}")
        if self.max_total_cost is not None and self.enable_cost_tracking is False:
            errors.append("max_total_cost needs enable_cost_tracking=True (a cap needs prices)")
        if (
            isinstance(self.retry_base_delay, (int, float))
            and isinstance(self.retry_max_delay, (int, float))
            and self.retry_max_delay < self.retry_base_delay
        ):
            errors.append("retry_max_delay must be >= retry_base_delay")
        return errors

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["document_formats"] = list(self.document_formats)
        if self.fallback_model is not None and not isinstance(self.fallback_model, str):
            data["fallback_model"] = list(self.fallback_model)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OrchestratorConfig:
        """Build from a mapping; unknown keys are an error that lists the known ones."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"unknown config field(s) {unknown} for {cls.__name__}; known fields: {sorted(names)}"
            )
        return cls(**data)
