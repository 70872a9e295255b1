"""The ``orchestrate`` command.

``orchestrate run PATTERN "TASK"`` runs a built-in pattern (or ``module:Class``) with a
live progress display on stderr and the result on stdout (``--json`` for machines);
``orchestrate demo`` does the same offline with the scripted provider; ``runs``,
``show``, ``resume``, ``replay`` and ``cancel`` work on stored runs.  Exit status is 0
only when the run completed; errors are one line, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ..base import BaseOrchestrator
from ..errors import ConfigError, OrchestrationError, redact
from ..models import OrchestratorResult, TaskStatus
from .common import (
    add_display_options,
    add_store_option,
    guardrails_from,
    open_cli_store,
    print_result,
    run_with_display,
)
from .history import COMMANDS, add_commands, handle
from .options import LABEL, constructor_options, split_options
from .worker import add_temporal_options, add_worker_command, run_on_temporal, run_worker_command

__all__ = ["main"]

DEMO_TASK = "Research quantum computing applications"

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrate", description="Run multi-agent LLM workflows from the terminal."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a pattern on a task")
    run.add_argument(
        "pattern",
        help="built-in pattern (cascade, swarm, sequential, conditional, iterative, fanout, planner) or module:Class",
    )
    run.add_argument("task", help="what to do")
    _add_run_options(run)
    run.add_argument("--provider", help="scripted, openai, anthropic, ollama, local (or vendor:model)")
    add_temporal_options(run)

    demo = commands.add_parser("demo", help="run offline with the scripted provider")
    demo.add_argument("task", nargs="?", default=DEMO_TASK)
    demo.add_argument("--pattern", default="cascade")
    _add_run_options(demo)

    add_commands(commands)
    add_worker_command(commands)

    serve = commands.add_parser("serve", help="serve the JSON/SSE API and the live run page")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--token", help="access token (default: $ORCHESTRATION_TOKEN or a generated one)")
    serve.add_argument(
        "--allow-pattern",
        action="append",
        metavar="PATTERN",
        help="a pattern requests may run: a built-in name or module:Class (repeatable; default: the built-ins)",
    )
    serve.add_argument(
        "--resume-workflow",
        action="append",
        metavar="MODULE:CLASS",
        help="a Workflow class whose paused runs go on in the server once answered (repeatable)",
    )
    serve.add_argument("--max-body-bytes", type=int, metavar="N", help="largest POST body (default: 1048576)")
    serve.add_argument("--max-task-chars", type=int, metavar="N", help="longest task (default: 100000)")
    serve.add_argument("--reports-dir", default="reports", help="where run reports go (default: reports)")
    return parser


def _version() -> str:
    from .._version import __version__

    return __version__


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="primary model id")
    parser.add_argument("--budget", type=float, metavar="USD", help="hard cost cap for the run")
    parser.add_argument("--report", metavar="FORMATS", help="write reports, e.g. md,pdf")
    parser.add_argument("--output-dir", default="reports", help="where reports go (default: reports)")
    parser.add_argument("--title", help="a title for the run")
    parser.add_argument("--policies", metavar="FILE", help="guardrail policies (YAML) to enforce")
    parser.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config field or a pattern option, e.g. -o num_agents=5 -o max_iterations=2 (values are JSON)",
    )
    parser.add_argument(
        "--condition",
        metavar="EXPR",
        help="conditional: the branch test over the context, e.g. \"complexity > 0.7 and 'legal' in task\"",
    )
    parser.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a context entry the run's hooks see, e.g. --context complexity=0.9 (values are JSON)",
    )
    add_display_options(parser)
    add_store_option(parser)


def _pairs(items: Sequence[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` items as a dict; a value that is not JSON is kept as text."""
    pairs: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r} is not KEY=VALUE")
        try:
            pairs[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            pairs[key.strip()] = raw
    return pairs


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options = _pairs(args.option, "--option")
    if args.condition is not None:
        options["condition"] = args.condition
    if args.model:
        options["primary_model"] = args.model
    if args.budget is not None:
        options["max_total_cost"] = args.budget
    if args.report:
        aliases = {"md": "markdown", "markdown": "markdown", "pdf": "pdf"}
        formats = []
        for name in args.report.split(","):
            if name.strip().lower() not in aliases:
                raise ConfigError(f"--report format {name!r} is unknown; use md, pdf or md,pdf")
            formats.append(aliases[name.strip().lower()])
        options.update(generate_documents=True, document_formats=formats, output_directory=args.output_dir)
    return options


def _default_provider_name() -> str:
    if os.environ.get("OPENAI_API_KEY"):
        return "openai"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic"
    raise ConfigError(
        "no provider chosen and no OPENAI_API_KEY or ANTHROPIC_API_KEY set: set one, or pass "
        "--provider scripted (offline), --provider ollama or --provider local"
    )


def _build(pattern: str, provider_name: str, args: argparse.Namespace) -> BaseOrchestrator:
    from ..registry import resolve_orchestrator, resolve_provider

    cls = resolve_orchestrator(pattern)
    if args.condition is not None and "condition" not in constructor_options(cls):
        raise ConfigError(f"--condition is for the conditional pattern; {cls.__name__} takes no condition")
    fields, kwargs = split_options(cls, _options(args))
    config = cls.config_class.from_dict(fields)
    provider = resolve_provider(provider_name, config.primary_model)
    if kwargs:  # recorded in the run's labels, so resume and replay rebuild the same orchestrator
        kwargs["labels"] = {LABEL: json.dumps(kwargs, ensure_ascii=False)}
    try:
        return cls(config, provider, store=open_cli_store(args), guardrails=guardrails_from(args), **kwargs)
    except TypeError as error:
        raise ConfigError(f"cannot construct {cls.__name__} from the command line: {error}") from error


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``orchestrate`` console script."""
    args = _parser().parse_args(argv)
    out, err = sys.stdout, sys.stderr
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command in COMMANDS:
            return asyncio.run(handle(args, out, err))
        if args.command == "worker":
            return run_worker_command(args, err)
        if not args.task.strip():
            raise ConfigError("TASK is empty; say what the orchestration should do")
        if getattr(args, "temporal", None):  # submitted to Temporal workers, not run here
            return asyncio.run(
                run_on_temporal(args, _options(args), _pairs(args.context, "--context"), out, err)
            )
        provider = "scripted" if args.command == "demo" else args.provider or _default_provider_name()
        orchestrator = _build(args.pattern, provider, args)
        result = asyncio.run(_run_and_close(orchestrator, args, err))
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return EXIT_INTERRUPTED
    except (OrchestrationError, ValueError, KeyError) as error:
        message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        print(f"error: {redact(message)}", file=err)
        return EXIT_USAGE
    except Exception as error:  # a bug: still one line; ORCHESTRATION_DEBUG=1 shows the traceback
        if os.environ.get("ORCHESTRATION_DEBUG"):
            raise
        print(f"error: unexpected {type(error).__name__}: {redact(str(error))}", file=err)
        return EXIT_RUN_FAILED
    print_result(result, args, out)
    return EXIT_OK if result.status is TaskStatus.COMPLETED else EXIT_RUN_FAILED


async def _run_and_close(
    orchestrator: BaseOrchestrator, args: argparse.Namespace, err: TextIO
) -> OrchestratorResult:
    try:
        return await run_with_display(
            lambda cb: orchestrator.execute_workflow(
                args.task, title=args.title, context=_pairs(args.context, "--context"), stream_callback=cb
            ),
            orchestrator.cancel,
            args,
            err,
        )
    finally:
        await orchestrator.store.close()


def _workflow_class(spec: str) -> Any:
    """The Workflow class ``--resume-workflow MODULE:CLASS`` names (imported at start-up)."""
    from ..registry import _load
    from ..workflow import Workflow

    try:
        cls = _load(spec)
    except ConfigError as error:
        raise ConfigError(f"--resume-workflow {spec!r}: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, Workflow)):
        raise ConfigError(f"--resume-workflow {spec!r}: not a Workflow subclass")
    return cls


def _serve(args: argparse.Namespace) -> int:
    from ..server import ServerDependencyError, serve

    for name in ("max_body_bytes", "max_task_chars"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive number, not {value}")
    workflows = [_workflow_class(spec) for spec in args.resume_workflow or ()]
    try:
        serve(
            host=args.host,
            workflows=workflows,
            port=args.port,
            token=args.token or os.environ.get("ORCHESTRATION_TOKEN"),
            allow_patterns=args.allow_pattern,
            max_body_bytes=args.max_body_bytes,
            max_task_chars=args.max_task_chars,
            reports_dir=args.reports_dir,
        )
    except ServerDependencyError as error:  # a missing extra is a set-up step, not a bug
        raise ConfigError(str(error)) from None
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
