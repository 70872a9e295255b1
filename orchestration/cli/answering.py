"""Answering questions from the command line: ``orchestrate answer`` and ``resume --answer``.

``orchestrate answer RUN NODE VALUE`` reaches the run wherever it is: recorded in the
store for a run nobody drives, delivered to the process driving it otherwise.
``orchestrate resume RUN --answer NODE=VALUE ...`` answers and continues a graph run in
one step: a workflow run is rebuilt from the class its run records (``module:Class``);
a run another process drives takes the answers there and goes on by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Any, TextIO

from ..engine.answers import AnswerRoute
from ..engine.leases import is_dead_here
from ..errors import ConfigError, StepFailedError
from ..stores.base import RunStore

__all__ = ["answer_all", "answer_from_cli", "parse_value", "resume_graph"]


def parse_value(text: str) -> Any:
    """A command-line answer: JSON (``true``, ``3``, ``{...}``) or else the text itself."""
    with contextlib.suppress(ValueError):
        return json.loads(text)
    return text


def _said(route: AnswerRoute, run_id: str, node: str) -> str:
    if route == "delivered":
        return f"answer delivered to the process driving run {run_id}: {node!r} goes on there"
    if route == "queued":
        return (
            f"answer queued for {node!r} of run {run_id}: the process driving it has not taken it yet "
            "and will (or the next resume does)"
        )
    return (
        f"answer recorded for {node!r} of run {run_id}; continue it with orchestrate resume {run_id} "
        f"(or run it again with run_id={run_id!r})"
    )


async def answer_from_cli(store: RunStore, run_id: str, node: str, value: Any, *, by: str = "") -> str:
    """Answer, and say in one line where the answer went."""
    from ..engine.answers import answer

    return _said(await answer(store, run_id, node, value, by=by), run_id, node)


def _answers(pairs: list[str]) -> list[tuple[str, Any]]:
    parsed = []
    for pair in pairs:
        node, sep, value = pair.partition("=")
        if not sep or not node.strip():
            raise ConfigError(f"--answer {pair!r}: write NODE=VALUE (e.g. --answer approve=true)")
        parsed.append((node.strip(), parse_value(value)))
    return parsed


async def answer_all(
    store: RunStore, args: argparse.Namespace, err: TextIO, answers: list[tuple[str, Any]] | None = None
) -> None:
    """Give each ``--answer NODE=VALUE`` of ``orchestrate resume``, saying where it went."""
    for node, value in answers if answers is not None else _answers(args.answer):
        print(await answer_from_cli(store, args.run_id, node, value, by="orchestrate resume"), file=err)


async def _workflow_of(store: RunStore, run_id: str) -> Any:
    """The Workflow class a stored graph run names, or ConfigError saying how to go on instead."""
    from ..registry import _load
    from ..workflow import Workflow

    first = (await store.events(run_id))[0]
    target = str(first.data.get("orchestrator") or "")
    how = (
        f"answer with orchestrate answer {run_id} NODE VALUE and continue it from your code "
        f"with graph.run(handlers, run_id={run_id!r})"
    )
    if ":" not in target or target.startswith("__main__:"):
        raise ConfigError(f"run {run_id} is a graph run whose handlers are in your code; {how}")
    cls = _load(target)
    if not (isinstance(cls, type) and issubclass(cls, Workflow)):
        raise ConfigError(f"run {run_id} names {target!r}, which is not a Workflow; {how}")
    return cls


async def _driven_elsewhere(store: RunStore, run_id: str) -> bool:
    holder = await store.lease_holder(run_id)
    return holder is not None and not is_dead_here(holder)


async def resume_graph(store: RunStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``orchestrate resume`` for a graph or workflow run, answering ``--answer`` first."""
    from ..registry import resolve_provider

    run_id = args.run_id
    answers = _answers(args.answer)
    live = await _driven_elsewhere(store, run_id)
    workflow = None if live else await _workflow_of(store, run_id)  # before answering anything
    await answer_all(store, args, err, answers)
    if live:
        if not answers:
            raise ConfigError(f"run {run_id} is being driven by another process; it goes on there")
        return 0
    provider = resolve_provider(args.provider) if args.provider else None
    assert workflow is not None  # not live: rebuilt above
    try:
        result = await workflow().run(
            store=store, run_id=run_id, provider=provider, guardrails=_policies(args)
        )
    except StepFailedError as error:
        print(f"error: {error}", file=err)
        return 1
    if args.json:
        shown = {
            "run_id": run_id,
            "status": result.status,
            "output": result.output,
            "questions": dict(result.questions),
        }
        json.dump(shown, out, indent=2, default=repr)
        out.write("\n")
    else:
        print(f"run {run_id}: {result.status}", file=out)
        for node, question in result.questions.items():
            print(f"  waiting: {node}: {question}", file=out)
        if result.status == "completed":
            print(json.dumps(result.output, default=repr, ensure_ascii=False), file=out)
    return 0 if result.status in ("completed", "paused") else 1


def _policies(args: argparse.Namespace) -> Any:
    from .common import guardrails_from

    return guardrails_from(args)
