"""What a graph node's handler receives: its :class:`NodeContext`, the run's
:class:`CancellationToken`, and :class:`NodeOutput` to fill the attributed-context channels.

Questions a handler asks (:meth:`NodeContext.interrupt`) stop it with :class:`_Interrupt`,
which the run (:mod:`orchestration.engine.graphrun`) records as a durable question.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import ConfigError, GraphError
from ..events import EventType
from ..llm import Completion
from .core import AttributedContext, Node, attributed_context, resolve
from .core.context import ArtifactRef
from .graphhandle import GraphHandle

if TYPE_CHECKING:
    from ..toolbox import ToolBox
    from ..toolcalls import ToolCall
    from .graphcalls import ModelAccess
    from .graphrun import GraphRun

__all__ = ["CancellationToken", "NodeContext", "NodeOutput"]


@dataclass(frozen=True, slots=True)
class NodeOutput:
    """What a handler returns to fill the attributed-context channels as well.

    ``output`` is the node's result (what its consumers get as input); ``summary`` reaches
    two hops, ``critical`` and ``artifacts`` every descendant (artifacts by reference).
    """

    output: Any = None
    summary: str | None = None
    critical: Mapping[str, Any] | None = None
    artifacts: Mapping[str, Any] | None = None


class CancellationToken:
    """The run's cancellation, for handlers: check :attr:`cancelled` or ``await wait()``."""

    __slots__ = ("_event", "reason")

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        """True once the run was cancelled."""
        return self.reason is not None

    def raise_if_cancelled(self) -> None:
        """Raise RunCancelledError once the run was cancelled."""
        if self.reason is not None:
            from ..errors import RunCancelledError

            raise RunCancelledError(self.reason)

    async def wait(self) -> str:
        """Return (the reason) once the run is cancelled."""
        if self.reason is None:
            if self._event is None:
                self._event = asyncio.Event()
            await self._event.wait()
        return self.reason or ""

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel (the first reason wins)."""
        if self.reason is None:
            self.reason = reason
            if self._event is not None:
                self._event.set()


class NodeContext(Mapping[str, Any]):
    """What a handler receives.  As a mapping it reads the node's input (seed 003's shape).

    Attributes: ``node`` (the Node), ``node_id``, ``visit`` (1 for the first), ``input``
    (the run payload for a node without inputs; one input's output; or ``{source:
    output}`` for several), ``payload`` (the run's payload), ``context`` (the attributed
    context, computed on first access), ``cancel`` (the run's token), ``graph`` (a handle
    to change the running graph), ``run_id``.
    """

    __slots__ = ("_asks", "_context", "_graph", "_run", "input", "node", "visit")

    def __init__(self, run: GraphRun, node: Node, visit: int, value: Any) -> None:
        self._run = run
        self._asks = 0
        self._context: AttributedContext | None = None
        self._graph: GraphHandle | None = None
        self.node = node
        self.visit = visit
        self.input = value

    @property
    def node_id(self) -> str:
        """The node's id."""
        return self.node.id

    @property
    def payload(self) -> Any:
        """The run's payload."""
        return self._run.state.payload

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._run.run_id

    @property
    def context(self) -> AttributedContext:
        """One entry per contributing ancestor, in three channels, with provenance."""
        if self._context is None:
            self._context = attributed_context(self._run.state, self.node.id)
        return self._context

    async def call_llm(
        self,
        prompt: str | Sequence[Mapping[str, Any]],
        *,
        system: str | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stream: bool = False,
        **options: Any,
    ) -> Completion:
        """Call a model through the framework (budget, retries, fallbacks), billed to this node.

        ``model`` defaults to the node's ``model``, then the run's ``config.primary_model``.
        The run needs a provider: ``graph.run(handlers, provider=..., config=...)``.
        """
        models = self._run.models
        if models is None:
            raise ConfigError(
                f"node {self.node.id!r} called a model, but the run has no provider: "
                "pass provider= (and config=) to graph.run(...)"
            )
        from .guard import RunPausedError

        while True:
            try:
                return await models.call(
                    self.node,
                    prompt,
                    system=system,
                    model=model,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stream=stream,
                    **options,
                )
            except RunPausedError as error:
                await self._ask_about_pause(models, str(error))

    async def run_tools(self, box: ToolBox, calls: Iterable[ToolCall]) -> list[dict[str, Any]]:
        """Run a model's tool calls with ``box`` (see :meth:`ToolBox.run
        <orchestration.toolbox.ToolBox.run>`): one tool message each, in the order of the calls.

        Each call is recorded as a ``tool_call`` event of this node (the tool, the call's id,
        its timing, ok or the kind of error; never its arguments or result), which traces
        show as an ``execute_tool {name}`` span under the node's.
        """
        results = await box.results(calls)
        for result in results:
            self._run.emit_stream(EventType.TOOL_CALL, result.event_data(), self.node.id)
        return [result.message() for result in results]

    async def ask_about_pause(self, error: Exception) -> None:
        """A guardrail paused a model call this node made another way than :meth:`call_llm`
        (an orchestrator's hook calling ``self.call_llm``): ask whether to go on, as
        :meth:`call_llm` does.  Returns once a person said go on (make the call again);
        raises when they said stop, or when ``error`` is not a pause these guardrails decided."""
        models = self._run.models
        if models is None:
            raise error
        await self._ask_about_pause(models, str(error))

    async def _ask_about_pause(self, models: ModelAccess, reason: str) -> None:
        """A guardrail paused the run before this call: ask whether to go on (see engine/pauses.py)."""
        from . import pauses

        decision = pauses.paused(models, reason)
        if decision is None:  # not a pause these guardrails decided: nothing to ask about
            raise GraphError(f"the run was paused: {reason}")
        text, schema = pauses.question(decision)
        if await self.interrupt(text, schema) is True:
            pauses.waive(models, decision.policy)
            return
        stop = f"stopped at guardrail {decision.policy!r} (answered false): {decision.reason}"
        self._run.abort(stop)
        raise GraphError(stop)

    async def interrupt(self, question: str, schema: Any = None) -> Any:
        """Ask ``question`` and wait, durably, for the answer; returns it.

        The first time, the node stops here and the run goes on with other work, then
        pauses (the process may exit).  Once the answer arrives (``GraphRun.answer``,
        :func:`answer`, ``orchestrate answer``, the HTTP API), the node runs this visit
        again from the start and each question it already asked returns its recorded
        answer at once: code before an ``interrupt`` may run more than once.

        ``schema``: a type the answer must convert to (``bool``, ``int``, a dataclass, a
        msgspec Struct...) or a JSON-schema dict shown to whoever answers.  An answer that
        does not fit the type asks again, saying why.
        """
        if not isinstance(question, str) or not question.strip():
            raise GraphError("interrupt() needs a question: a non-empty string")
        answers = self._run.state.nodes[self.node.id].answers
        while True:
            index = self._asks
            self._asks += 1
            if index >= len(answers):
                raise _Interrupt(question, _json_schema(schema))
            answer = answers[index]
            if schema is None or isinstance(schema, dict):
                return answer
            try:
                return msgspec.convert(answer, schema, strict=False)
            except msgspec.ValidationError as error:
                question = (
                    f"{question.split(' (the answer ')[0]} (the answer {answer!r} did not fit: {error})"
                )

    def inputs(self) -> dict[str, Any]:
        """Each completed input's contribution by source node id (always a dict, unlike
        :attr:`input`); out of a switch only the routes it chose count."""
        return self._run.inputs_of(self.node.id)

    def artifact(self, ref: ArtifactRef) -> Any:
        """The value an artifact reference in :attr:`context` points at."""
        return resolve(self._run.state, ref)

    @property
    def cancel(self) -> CancellationToken:
        """The run's cancellation token."""
        return self._run.token

    @property
    def graph(self) -> GraphHandle:
        """A handle to change the run's graph; the changes are recorded as this node's.

        When this visit runs again (after a crash, or once a question is answered), the
        changes it made the first time are already in the graph: each is skipped instead of
        being made twice, so a handler need not check what it did before.
        """
        if self._graph is None:
            self._graph = GraphHandle(self._run, self.node.id)
        return self._graph

    def _mapping(self) -> Mapping[str, Any]:
        return self.input if isinstance(self.input, Mapping) else {}

    def __getitem__(self, key: str) -> Any:
        return self._mapping()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def __repr__(self) -> str:
        return f"NodeContext(node={self.node.id!r}, visit={self.visit})"


class _Interrupt(BaseException):
    """Stops a handler at :meth:`NodeContext.interrupt` (a BaseException, so a handler's
    ``except Exception`` cannot swallow it)."""

    def __init__(self, question: str, schema: dict[str, Any] | None) -> None:
        super().__init__(question)
        self.question = question
        self.schema = schema


def _interrupt_in(caught: BaseException) -> _Interrupt | None:
    """The question a handler asked, also from inside its own TaskGroup (an exception group)."""
    if isinstance(caught, _Interrupt):
        return caught
    if isinstance(caught, BaseExceptionGroup):
        group = caught.subgroup(_Interrupt)
        if group is not None:
            first = group.exceptions[0]
            return _interrupt_in(first)
    return None


def _json_schema(schema: Any) -> dict[str, Any] | None:
    if schema is None or isinstance(schema, dict):
        return schema
    try:
        return dict(msgspec.json.schema(schema))
    except (TypeError, ValueError) as error:
        raise GraphError(f"interrupt(schema=...) must be a type or a JSON-schema dict: {error}") from None
