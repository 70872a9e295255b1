"""Runs started through the server: building orchestrators, running and cancelling them.

``POST /runs`` bodies become a :class:`RunRequest`; an orchestrator factory turns one into
an orchestrator that writes to the server's store; :class:`RunManager` runs it as a task
of the server's event loop with the broadcaster as its stream callback.

The default factory builds only patterns registered when the server starts
(:func:`register_patterns`): a request names one of them and never makes the server
import a module (importing runs the module's top-level code).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..engine.answers import goes_on
from ..errors import ConfigError, StepFailedError
from ..models import TaskStatus
from ..stores.base import RunStore
from .broadcast import EventBroadcaster
from .resuming import Resume, Resumers

__all__ = [
    "DEFAULT_MAX_TASK_CHARS",
    "OrchestratorFactory",
    "RunManager",
    "RunRequest",
    "default_orchestrator_factory",
    "register_patterns",
]

#: The longest task ``POST /runs`` accepts, in characters.
DEFAULT_MAX_TASK_CHARS = 100_000

logger = logging.getLogger("orchestration.server")

_RUN_OPTIONS = {"title", "context"}


@dataclass(frozen=True)
class RunRequest:
    """What ``POST /runs`` asks for.

    ``pattern`` names a pattern the server registered (a built-in name, or the
    ``module:Class`` it was started with); ``provider`` a provider
    name (``scripted``, ``openai``...); ``model`` the primary model; ``options`` holds
    ``title``, ``context`` and any :class:`~orchestration.config.OrchestratorConfig` field
    (or a pattern config's field).
    """

    pattern: str
    task: str
    provider: str = "scripted"
    model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: Any) -> RunRequest:
        """Validate a decoded JSON body; ConfigError names what is wrong."""
        if not isinstance(body, Mapping):
            raise ConfigError("the body must be a JSON object with pattern, task, provider, model, options")
        unknown = sorted(set(body) - {"pattern", "task", "provider", "model", "options"})
        if unknown:
            raise ConfigError(f"unknown field(s) {unknown}; allowed: pattern, task, provider, model, options")
        pattern, task = body.get("pattern"), body.get("task")
        if not isinstance(pattern, str) or not pattern.strip():
            raise ConfigError("pattern must name a pattern this server runs, e.g. 'cascade'")
        if not isinstance(task, str) or not task.strip():
            raise ConfigError("task must be a non-empty string")
        provider = body.get("provider") or "scripted"
        model = body.get("model")
        options = body.get("options") or {}
        if not isinstance(provider, str):
            raise ConfigError("provider must be a provider name such as 'scripted' or 'openai'")
        if model is not None and not isinstance(model, str):
            raise ConfigError("model must be a model id string")
        if not isinstance(options, Mapping):
            raise ConfigError("options must be a JSON object")
        return cls(pattern=pattern.strip(), task=task, provider=provider, model=model, options=dict(options))


OrchestratorFactory = Callable[[RunRequest, RunStore], Any]


def register_patterns(specs: Sequence[str] | None = None) -> Mapping[str, Any]:
    """The patterns a server may run, by the name a request gives: ``{name: class}``.

    ``specs`` are built-in names or ``module:Class`` (imported now, at start-up, and
    checked to be :class:`~orchestration.BaseOrchestrator` subclasses); None registers
    every built-in (loaded when first used).  Raises ConfigError naming a bad spec.
    """
    from ..registry import PATTERNS, resolve_orchestrator

    if specs is None:
        return {name: None for name in PATTERNS}
    registered: dict[str, Any] = {}
    for spec in specs:
        name = spec.strip()
        if ":" not in name and name.lower() not in PATTERNS:
            raise ConfigError(
                f"--allow-pattern {spec!r}: not a built-in pattern ({', '.join(sorted(PATTERNS))}) "
                "nor module:Class"
            )
        try:
            cls = resolve_orchestrator(name)
        except ConfigError as error:
            raise ConfigError(f"--allow-pattern {spec!r}: {error}") from error
        registered[name if ":" in name else name.lower()] = cls
    if not registered:
        raise ConfigError("--allow-pattern: register at least one pattern")
    return registered


def _registered_class(pattern: str, patterns: Mapping[str, Any]) -> Any:
    from ..registry import resolve_orchestrator

    key = pattern if ":" in pattern else pattern.lower()
    if key not in patterns:
        raise ConfigError(
            f"pattern {pattern!r} is not one this server runs; choose one of {sorted(patterns)} "
            "(start the server with --allow-pattern module:Class to add one)"
        )
    cls = patterns[key]
    return cls if cls is not None else resolve_orchestrator(key)  # a built-in, by its fixed name


def default_orchestrator_factory(
    request: RunRequest,
    store: RunStore,
    *,
    reports_dir: Path | None = None,
    patterns: Mapping[str, Any] | None = None,
) -> Any:
    """Build the orchestrator a request names, writing to ``store``.

    The pattern must be one of ``patterns`` (from :func:`register_patterns`; default:
    the built-ins).  Options that are fields of the pattern's config class configure it;
    reports, when asked for, go under ``reports_dir/<run>`` (a request cannot choose
    where files go).
    """
    from ..config import OrchestratorConfig
    from ..registry import resolve_provider

    cls = _registered_class(request.pattern, patterns if patterns is not None else register_patterns())
    config_cls = getattr(cls, "config_class", None) or OrchestratorConfig
    names = {f.name for f in fields(config_cls)}
    config_options = {k: v for k, v in request.options.items() if k not in _RUN_OPTIONS}
    unknown = sorted(set(config_options) - names)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for {config_cls.__name__}")
    if "output_directory" in config_options:
        raise ConfigError("output_directory cannot be set through the server; reports go to its reports dir")
    if request.model:
        config_options["primary_model"] = request.model
    if config_options.get("generate_documents"):
        config_options["output_directory"] = str((reports_dir or Path("reports")) / uuid.uuid4().hex[:12])
    config = config_cls(**config_options)
    provider = resolve_provider(request.provider, request.model)
    return cls(config, provider, store=store)


class RunManager:
    """Starts, tracks and cancels the runs of one server process."""

    def __init__(
        self,
        store: RunStore,
        factory: OrchestratorFactory,
        broadcaster: EventBroadcaster,
        resumers: Resumers | None = None,
    ) -> None:
        self.store = store
        self.factory = factory
        self.broadcaster = broadcaster
        self.resumers = resumers if resumers is not None else Resumers(store)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._orchestrators: dict[str, Any] = {}

    def start(self, request: RunRequest) -> str:
        """Build the orchestrator and start the run; returns its id (raises ConfigError)."""
        orchestrator = self.factory(request, self.store)
        if getattr(orchestrator, "store", self.store) is not self.store:
            raise ConfigError(
                "the orchestrator factory must build orchestrators with store=<the server's store>"
            )
        run_id = uuid.uuid4().hex[:16]
        options = request.options
        title = options.get("title")
        context = options.get("context")
        if title is not None and not isinstance(title, str):
            raise ConfigError("options.title must be a string")
        if context is not None and not isinstance(context, Mapping):
            raise ConfigError("options.context must be a JSON object")
        self.broadcaster.mark_live(run_id)
        self._orchestrators[run_id] = orchestrator
        coroutine = self._run(orchestrator, run_id, request.task, title, dict(context) if context else None)
        self._tasks[run_id] = asyncio.get_running_loop().create_task(coroutine, name=f"run-{run_id}")
        return run_id

    async def _run(
        self, orchestrator: Any, run_id: str, task: str, title: str | None, context: dict[str, Any] | None
    ) -> None:
        try:
            await orchestrator.execute_workflow(
                task, title=title, context=context, stream_callback=self.broadcaster, run_id=run_id
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("run %s failed outside the workflow", run_id)
        finally:
            self.broadcaster.mark_done(run_id)
            self._tasks.pop(run_id, None)
            self._orchestrators.pop(run_id, None)
        summary = await self.store.get_run(run_id)
        if summary is not None and summary.status is TaskStatus.PAUSED and hasattr(orchestrator, "resume"):
            self.resumers.paused[run_id] = orchestrator  # an answer continues it here
            await self.go_on(run_id, summary.orchestrator)  # answered as it paused

    async def go_on(self, run_id: str, orchestrator: str) -> bool:
        """Continue the paused run ``run_id`` once answers let it go on, when this server can
        rebuild it (:mod:`.resuming`); True if it goes on here (or already runs here)."""
        if run_id in self._tasks:
            return True
        resume = self.resumers.for_run(run_id, orchestrator)
        if resume is None or not await goes_on(self.store, run_id):
            return False
        if run_id in self._tasks:  # another answer started it meanwhile
            return True
        self.resumers.paused.pop(run_id, None)
        self.broadcaster.mark_live(run_id)
        self._tasks[run_id] = asyncio.get_running_loop().create_task(
            self._resume(run_id, orchestrator, resume), name=f"resume-{run_id}"
        )
        return True

    async def _resume(self, run_id: str, orchestrator: str, resume: Resume) -> None:
        """Run ``resume`` until the run stops; then go on again if answers recorded as it
        stopped taking them let it (an answer arriving later starts it itself)."""
        stopped = False
        try:
            await resume(self.broadcaster)
            stopped = True
        except asyncio.CancelledError:
            raise
        except StepFailedError:
            pass  # a workflow's failed step: in the run's log already
        except Exception:  # never again by itself: it would fail the same way
            logger.exception("run %s failed outside the workflow after an answer", run_id)
        finally:
            self.broadcaster.mark_done(run_id)
            self._tasks.pop(run_id, None)
        if stopped:
            await self.go_on(run_id, orchestrator)

    def is_running(self, run_id: str) -> bool:
        """True while the run executes in this process."""
        return run_id in self._tasks

    async def cancel(self, run_id: str) -> bool:
        """Cancel a run of this process (or ask the store to, for another process's run)."""
        orchestrator = self._orchestrators.get(run_id)
        if orchestrator is not None:
            return bool(orchestrator.cancel(run_id))
        request_cancel = getattr(self.store, "request_cancel", None)
        if request_cancel is not None:
            return bool(await request_cancel(run_id))
        return False

    async def wait(self, run_id: str) -> None:
        """Wait until the run ends (no-op when it is not running here)."""
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.wait([task])

    async def shutdown(self, grace: float = 5.0) -> None:
        """Cancel every run and wait (up to ``grace`` seconds) for their final events."""
        for run_id in list(self._orchestrators):
            self._orchestrators[run_id].cancel(run_id)
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)
