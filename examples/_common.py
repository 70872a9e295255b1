"""What the examples share: their command line, the provider choice and the closing lines.

Not an example itself.  Each example still runs on its own (``python examples/cascade.py``):
Python puts the script's folder first on ``sys.path``, so ``from _common import ...`` finds
this file.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from orchestration import (
    OrchestrationError,
    OrchestratorResult,
    ScriptedProvider,
    TaskStatus,
    resolve_provider,
)
from orchestration.errors import redact
from orchestration.scripted import demo_responder


def parse_args(
    doc: str, default_task: str, add_options: Callable[[argparse.ArgumentParser], object] | None = None
) -> argparse.Namespace:
    """``task``, the example's own options (``add_options(parser)``), ``--provider`` and ``--model``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("task", nargs="?", default=default_task)
    if add_options is not None:
        add_options(parser)
    parser.add_argument("--provider", help="a provider name (default: the offline scripted provider)")
    parser.add_argument("--model", help="the primary model id")
    return parser.parse_args()


def choose_provider(args: argparse.Namespace, offline: Callable[[], Any] | None = None) -> Any:
    """The provider ``--provider`` names, else ``offline()`` (default: the scripted demo answers)."""
    if args.provider:
        return resolve_provider(args.provider, args.model)
    return offline() if offline is not None else ScriptedProvider(demo_responder)


def print_status(result: OrchestratorResult) -> None:
    """The run's status, and its error if it has one."""
    print(f"status: {result.status}" + (f" ({result.error})" if result.error else ""))


def finish(result: OrchestratorResult, *, cost_by_agent: bool = False) -> int:
    """Print the answer and the cost (per agent too if asked); the exit code: 0 if completed."""
    print(f"\n{result.final_synthesis}\n")
    if cost_by_agent:
        for agent, usage in result.cost_by_agent.items():
            print(f"  {agent:<16} {usage.calls} call(s) ${usage.cost_usd:.6f}")
    print(f"Cost: ${result.total_cost:.6f} ({result.usage.calls} calls)")
    return 0 if result.status is TaskStatus.COMPLETED else 1


def run_example(main: Callable[[], Any]) -> int:
    """Run ``main()`` (sync or async) and return its exit code.

    Mistakes (a missing API key, an unknown provider, a bad option) and a missing optional
    package print one line on stderr, like the ``orchestrate`` command, and exit 2;
    ``ORCHESTRATION_DEBUG=1`` shows the traceback instead.
    """
    try:
        outcome = main()
        code = asyncio.run(outcome) if inspect.iscoroutine(outcome) else outcome
        return int(code or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OrchestrationError, ValueError, KeyError, ImportError) as error:
        if os.environ.get("ORCHESTRATION_DEBUG"):
            raise
        if isinstance(error, ImportError):
            missing = error.name or str(error)
            message = f"{error}; install it first (pip install {missing.split('.')[0]})"
        else:
            message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        print(f"error: {redact(message)}", file=sys.stderr)
        return 2
