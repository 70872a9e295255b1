"""Decorator workflows: ``@step`` methods wired by a builder, compiled to a graph.

```python
class Report(Workflow):
    @step
    async def outline(self, topic: str) -> list[str]:
        return [f"{topic}: causes", f"{topic}: effects"]

    @step
    async def research(self, outline: list[str]) -> str:
        return "; ".join(outline)

    @step
    async def critique(self, outline: list[str]) -> str:
        return f"{len(outline)} sections"

    @step
    async def write(self, research: str, critique: str) -> str:
        return f"{research} ({critique})"

    def build(self, flow: Flow) -> None:
        flow.start(self.outline).then([self.research, self.critique]).then(self.write)


result = await Report().run("tides", store=MemoryStore())
assert result.output == "tides: causes; tides: effects (2 sections)"
```

A workflow compiles to the graph runtime (one node per step; a SWITCH per branch or
condition), so it is stored, resumed and streamed like any graph run.  The rules:

- **Inputs.** The start step gets the run's input (if it takes a parameter).  A step
  with one upstream step gets that step's output.  A step that joins several gets them as
  keyword arguments named after the upstream steps (or in ``**inputs``), only those
  that ran: a step whose upstream never ran (a branch not taken, an OR join's late
  input) gets no ``None`` for it, so give such a parameter a default.  A parameter named
  ``ctx`` receives the :class:`~orchestration.graph.NodeContext`.
- **Joins.** ``.then(step)`` after several steps is an AND join: it runs once every live
  upstream finished (a branch not taken counts as finished).  ``join="any"`` makes it an
  OR join: it runs once, when the first upstream completes; later ones are recorded in
  the run, not run again.
- **Branches and conditions.** ``.branch({key: step}, selector)`` runs the step whose key
  ``selector(output)`` returns (a list of keys runs several); ``.then(step,
  when=predicate)`` runs it only if ``predicate(output)`` is true.  Steps reachable only
  through a route not taken are skipped, never waited for.
- **Result.** ``result.output`` is the output of the terminal step (one with nothing
  downstream) that completed; when several did, a dict of their outputs by step name,
  in the order the steps are defined in the class.  ``result.outputs`` has every step's.
- **Questions.** A step with a ``ctx`` parameter may ``await ctx.interrupt(question)``;
  ``@step(approve_before="...")`` asks for a yes first.  The run pauses (``status ==
  "paused"``, ``result.questions``); answer with :func:`orchestration.graph.answer` or
  ``orchestrate answer``, then ``run(run_id=...)`` again to continue.
- **Failure.** A step that raises fails the run: :meth:`Workflow.run` raises
  :class:`~orchestration.errors.StepFailedError` naming the step, with the result so far.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, overload

from .engine.core import Edge, Node, NodeKind, NodeState
from .engine.graphrun import GraphResult, NodeContext
from .errors import StepFailedError, WorkflowError
from .graph import Graph
from .usage import Usage

__all__ = ["Chain", "Flow", "StepSpec", "Workflow", "WorkflowResult", "step"]

F = TypeVar("F", bound=Callable[..., Any])
Join = Literal["all", "any"]
_MARK = "__orchestration_step__"


@dataclass(frozen=True)
class StepSpec:
    """A ``@step`` method: its name, join rule, and how it takes its inputs."""

    name: str
    function: Callable[..., Any]
    join: Join = "all"
    description: str = ""
    approve_before: str | None = None
    takes_input: bool = False  # a positional parameter after ``self``
    wants_ctx: bool = False
    keywords: frozenset[str] = frozenset()  # parameters that can be passed by name
    required: frozenset[str] = frozenset()  # of those, the ones without a default
    var_keywords: bool = False

    @classmethod
    def of(
        cls,
        function: Callable[..., Any],
        name: str | None,
        join: Join,
        description: str,
        approve_before: str | None = None,
    ) -> StepSpec:
        if join not in ("all", "any"):
            raise WorkflowError(f"@step(join=...) must be 'all' or 'any', not {join!r}")
        params = list(inspect.signature(function).parameters.values())[1:]  # after self
        kinds = inspect.Parameter
        named = [
            p
            for p in params
            if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY) and p.name != "ctx"
        ]
        positional = [p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
        doc = (inspect.getdoc(function) or "").strip().splitlines()
        return cls(
            name=name or function.__name__,
            function=function,
            join=join,
            description=description or (doc[0] if doc else ""),
            approve_before=approve_before,
            takes_input=bool(positional) and positional[0].name != "ctx",
            wants_ctx=any(p.name == "ctx" for p in params),
            keywords=frozenset(p.name for p in named),
            required=frozenset(p.name for p in named if p.default is inspect.Parameter.empty),
            var_keywords=any(p.kind is kinds.VAR_KEYWORD for p in params),
        )


@overload
def step(function: F, /) -> F: ...
@overload
def step(
    *, name: str | None = None, join: Join = "all", description: str = "", approve_before: str | None = None
) -> Callable[[F], F]: ...


def step(
    function: F | None = None,
    /,
    *,
    name: str | None = None,
    join: Join = "all",
    description: str = "",
    approve_before: str | None = None,
) -> F | Callable[[F], F]:
    """Mark a method of a :class:`Workflow` as a step (``@step`` or ``@step(join="any")``).

    ``approve_before="Publish?"`` pauses the run before the step until a person answers
    yes (no fails the step).  The method stays an ordinary method; the builder wires it
    into the flow.
    """

    def mark(fn: F) -> F:
        if not callable(fn):
            raise WorkflowError(f"@step decorates a method, not {type(fn).__name__}")
        setattr(fn, _MARK, StepSpec.of(fn, name, join, description, approve_before))
        return fn

    return mark(function) if function is not None else mark


@dataclass(frozen=True)
class _Switch:
    """A SWITCH node the builder inserted after ``source``: a branch or a condition."""

    source: str
    routes: Mapping[Hashable, str]  # key -> target step (a condition: {True: target})
    selector: Callable[[Any], Any] | None
    condition: bool = False


class Flow:
    """The builder a workflow's :meth:`Workflow.build` receives."""

    def __init__(self, workflow: Workflow) -> None:
        self._workflow = workflow
        self._defined = _defined_steps(type(workflow))
        self.entry: str | None = None
        self.placed: dict[str, StepSpec] = {}
        self.upstream: dict[str, list[str]] = {}  # step -> its upstream steps, in wiring order
        self.edges: list[tuple[str, str]] = []  # graph edges (step or switch ids)
        self.switches: dict[str, _Switch] = {}

    def start(self, first: Any) -> Chain:
        """The step the run begins with (it gets the run's input)."""
        if self.entry is not None:
            raise WorkflowError(f"the flow already starts at {self.entry!r}; call start() once in build()")
        spec = self._place(first)
        self.entry = spec.name
        return Chain(self, [spec.name])

    def after(self, *steps: Any) -> Chain:
        """Continue from steps already in the flow (for a second chain or a join across chains)."""
        if not steps:
            raise WorkflowError("after() needs at least one step")
        names = [self._spec(s).name for s in steps]
        for name in names:
            if name not in self.placed:
                raise WorkflowError(
                    f"after({name!r}): that step is not in the flow yet; wire it with start() or then() first"
                )
        return Chain(self, names)

    # -- used by Chain --------------------------------------------------------------

    def _spec(self, ref: Any) -> StepSpec:
        if isinstance(ref, str):
            spec = self._defined.get(ref)
        else:
            spec = getattr(getattr(ref, "__func__", ref), _MARK, None)
            if spec is not None and self._defined.get(spec.name) is not spec:
                spec = None  # a step of another workflow class
        if spec is None:
            label = ref if isinstance(ref, str) else getattr(ref, "__name__", repr(ref))
            raise WorkflowError(
                f"{label!r} is not a @step method of {type(self._workflow).__name__}; decorate it with @step"
            )
        return spec

    def _place(self, ref: Any) -> StepSpec:
        spec = self._spec(ref)
        self.placed.setdefault(spec.name, spec)
        self.upstream.setdefault(spec.name, [])
        return spec

    def _link(self, source: str, graph_source: str, target: str) -> None:
        if source in self.upstream[target]:
            raise WorkflowError(f"step {target!r} already follows {source!r}")
        self.upstream[target].append(source)
        self.edges.append((graph_source, target))


class Chain:
    """Where the builder stands: the steps the next ``then`` or ``branch`` follows."""

    def __init__(self, flow: Flow, frontier: Sequence[str]) -> None:
        self._flow = flow
        self.frontier = tuple(frontier)

    def then(
        self, steps: Any, *, when: Callable[[Any], Any] | None = None, join: Join | None = None
    ) -> Chain:
        """Run ``steps`` (one, or a list in parallel) after the current steps.

        After several steps this is a join (AND; ``join="any"`` for OR).  ``when`` runs
        the step only if ``when(output)`` is true (after one step only).
        """
        flow = self._flow
        targets = [flow._place(s) for s in (steps if isinstance(steps, list | tuple) else [steps])]
        if not targets:
            raise WorkflowError("then([]) needs at least one step")
        for spec in targets:
            if join is not None and join != spec.join:
                if flow.upstream[spec.name] and spec.join != "all":
                    raise WorkflowError(f"step {spec.name!r} is already an {spec.join!r} join")
                spec = _with_join(flow, spec, join)
            if when is not None:
                if len(self.frontier) != 1:
                    raise WorkflowError(
                        f"then({spec.name!r}, when=...) must follow one step, not {list(self.frontier)}; "
                        "join them first"
                    )
                self._switch_to(self.frontier[0], {True: spec.name}, when, condition=True, suffix=spec.name)
            else:
                for source in self.frontier:
                    flow._link(source, source, spec.name)
        return Chain(flow, [t.name for t in targets])

    def branch(self, routes: Mapping[Hashable, Any], selector: Callable[[Any], Any] | None = None) -> Chain:
        """Run the step whose key ``selector(output)`` returns (default: the output itself)."""
        if len(self.frontier) != 1:
            raise WorkflowError(f"branch() must follow one step, not {list(self.frontier)}; join them first")
        if not routes:
            raise WorkflowError(f"branch() after {self.frontier[0]!r} needs at least one route")
        targets = {key: self._flow._place(ref).name for key, ref in routes.items()}
        self._switch_to(self.frontier[0], targets, selector, condition=False, suffix="branch")
        return Chain(self._flow, list(dict.fromkeys(targets.values())))

    def _switch_to(
        self,
        source: str,
        routes: Mapping[Hashable, str],
        selector: Callable[[Any], Any] | None,
        *,
        condition: bool,
        suffix: str,
    ) -> None:
        flow = self._flow
        switch_id = f"{source}?{suffix}"
        if switch_id in flow.switches:
            raise WorkflowError(f"step {source!r} already has a {suffix!r} branch; give it one branch() call")
        flow.switches[switch_id] = _Switch(source, dict(routes), selector, condition)
        flow.edges.append((source, switch_id))
        for target in dict.fromkeys(routes.values()):
            flow._link(source, switch_id, target)


def _with_join(flow: Flow, spec: StepSpec, join: Join) -> StepSpec:
    changed = StepSpec(**{**spec.__dict__, "join": join})
    flow.placed[spec.name] = changed
    return changed


def _defined_steps(cls: type) -> dict[str, StepSpec]:
    """The class's ``@step`` methods by step name, in definition order (bases first)."""
    found: dict[str, StepSpec] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            spec = getattr(value, _MARK, None)
            if isinstance(spec, StepSpec):
                if spec.name in found and found[spec.name].function.__name__ != spec.function.__name__:
                    raise WorkflowError(f"two steps of {cls.__name__} are named {spec.name!r}")
                found[spec.name] = spec
    return found


@dataclass(frozen=True)
class WorkflowResult:
    """How a workflow run ended."""

    run_id: str
    status: str
    output: Any
    outputs: Mapping[str, Any]
    skipped: tuple[str, ...] = ()
    graph: GraphResult | None = field(default=None, repr=False)
    #: Tokens and cost of the steps' model calls.
    usage: Usage = field(default_factory=Usage)
    #: A paused run's open questions by step (answer them, then run again with run_id).
    questions: Mapping[str, str] = field(default_factory=dict)


class Workflow:
    """Subclass it: ``@step`` methods, and :meth:`build` wiring them with the :class:`Flow`."""

    def build(self, flow: Flow) -> None:
        """Wire the steps: ``flow.start(self.first).then(...)``."""
        raise NotImplementedError(f"{type(self).__name__} must define build(self, flow)")

    def flow(self) -> Flow:
        """The wired flow (built once per instance and checked)."""
        built: Flow | None = self.__dict__.get("_built_flow")
        if built is None:
            built = Flow(self)
            self.build(built)
            _check(built)
            self.__dict__["_built_flow"] = built
        return built

    def graph(self) -> Graph:
        """The graph this workflow compiles to (one node per step, a switch per branch)."""
        flow = self.flow()
        nodes = [
            Node(
                id=spec.name,
                kind=NodeKind.AGGREGATE if spec.join == "any" else NodeKind.TASK,
                quorum="any" if spec.join == "any" else "all",
                description=spec.description,
                approve_before=spec.approve_before,
            )
            for spec in flow.placed.values()
        ]
        nodes += [Node(id=switch_id, kind=NodeKind.SWITCH) for switch_id in flow.switches]
        edges = [Edge(source=source, target=target) for source, target in flow.edges]
        return Graph(nodes=nodes, edges=edges, entry=flow.entry)

    def handlers(self) -> dict[str, Callable[[NodeContext], Any]]:
        """The graph's handlers: one per step and per inserted switch."""
        flow = self.flow()
        handlers: dict[str, Callable[[NodeContext], Any]] = {
            name: _step_handler(self, flow, spec) for name, spec in flow.placed.items()
        }
        handlers.update({sid: _switch_handler(sid, sw) for sid, sw in flow.switches.items()})
        return handlers

    async def run(
        self,
        input: Any = None,
        *,
        store: Any = None,
        run_id: str | None = None,
        stream_callback: Any = None,
        concurrency: int = 100,
        title: str = "",
        provider: Any = None,
        config: Any = None,
        prices: Any = None,
        guardrails: Any = None,
        wait_for_answers: float = 0.0,
    ) -> WorkflowResult:
        """Run the workflow (or resume the stored run ``run_id``) to its end.

        With a ``provider`` (and optionally ``config``, ``prices``) steps that take ``ctx``
        call models through the framework (``await ctx.call_llm(...)``): the run's budget,
        retries and fallbacks apply and the bill is per step; ``guardrails`` are enforced
        on those calls (a pause asks whether to go on).  ``wait_for_answers``: seconds the
        run stays live for answers once only questions are left, before it pauses.
        """
        graph = self.graph()
        cls = type(self)
        outcome = await graph.run(
            self.handlers(),
            payload=input,
            store=store,
            stream_callback=stream_callback,
            run_id=run_id,
            concurrency=concurrency,
            title=title or cls.__name__,
            provider=provider,
            config=config,
            prices=prices,
            guardrails=guardrails,
            wait_for_answers=wait_for_answers,
            orchestrator=f"{cls.__module__}:{cls.__qualname__}",
        )
        result = _result(self.flow(), outcome)
        if outcome.status == "failed":
            failed = [name for name in self.flow().placed if outcome.states.get(name) == NodeState.FAILED]
            switches = [sid for sid in self.flow().switches if outcome.states.get(sid) == NodeState.FAILED]
            culprit = (failed or [self.flow().switches[s].source for s in switches] or ["?"])[0]
            reason = outcome.errors.get(culprit) or next(
                iter(outcome.errors.values()), outcome.error or "failed"
            )
            raise StepFailedError(f"step {culprit!r} failed: {reason}", step=culprit, result=result)
        return result

    def run_sync(self, input: Any = None, **options: Any) -> WorkflowResult:
        """:meth:`run` from synchronous code (not inside a running event loop)."""
        return asyncio.run(self.run(input, **options))


def _check(flow: Flow) -> None:
    if flow.entry is None:
        raise WorkflowError("build() must call flow.start(step) to say where the run begins")
    unwired = [name for name in flow._defined if name not in flow.placed]
    if unwired:
        raise WorkflowError(
            f"steps {unwired} are defined but not wired into the flow; wire them or drop @step"
        )
    for name, spec in flow.placed.items():
        ups = flow.upstream[name]
        if len(ups) < 2 and spec.join == "all":
            continue
        if spec.var_keywords:
            continue
        unknown = [u for u in ups if u not in spec.keywords]
        if unknown:
            raise WorkflowError(
                f"step {name!r} joins {ups}: name its parameters after those steps (missing {unknown}) "
                "or take **inputs"
            )


def _step_handler(workflow: Workflow, flow: Flow, spec: StepSpec) -> Callable[[NodeContext], Any]:
    """The node handler calling ``spec``'s method; it returns what the method returns (a
    coroutine for an async step, which the runtime awaits).  The common shapes get a
    handler without the general join logic: this is the whole per-step overhead."""
    function, name = spec.function, spec.name
    ups = flow.upstream[name]
    if not spec.wants_ctx and spec.join == "all" and len(ups) <= 1:
        if not ups:
            if spec.takes_input:
                return lambda ctx: function(workflow, ctx.payload)
            return lambda ctx: function(workflow)
        # One upstream step (directly or through its branch's switch): the node has one
        # input edge, so ``ctx.input`` is that step's output.
        if spec.takes_input:
            return lambda ctx: function(workflow, ctx.input)
        if ups[0] in spec.keywords:
            keyword = ups[0]
            return lambda ctx: function(workflow, **{keyword: ctx.input})
        return lambda ctx: function(workflow)  # a step that takes nothing: it only follows
    owners = {sid: sw.source for sid, sw in flow.switches.items()}

    def handler(ctx: NodeContext) -> Any:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        arrived = {owners.get(source, source): value for source, value in ctx.inputs().items()} if ups else {}
        if not arrived:  # the start step (also when a loop leads back to it: its first visit)
            if spec.takes_input:
                args.append(ctx.payload)
        elif len(ups) >= 2 or spec.join == "any":
            kwargs = {up: arrived[up] for up in ups if up in arrived}
            missing = sorted((spec.required & set(ups)) - set(kwargs))
            if missing:
                raise WorkflowError(
                    f"step {name!r} needs {missing}, which did not run (a branch not taken or an "
                    "OR join); give those parameters a default"
                )
        elif spec.takes_input:
            args.append(arrived[ups[0]])
        elif ups[0] in spec.keywords:
            kwargs[ups[0]] = arrived[ups[0]]
        if spec.wants_ctx:
            kwargs["ctx"] = ctx
        return function(workflow, *args, **kwargs)

    return handler


def _switch_handler(switch_id: str, switch: _Switch) -> Callable[[NodeContext], Any]:
    async def route(ctx: NodeContext) -> list[str]:
        value = ctx.input
        choice = switch.selector(value) if switch.selector is not None else value
        if inspect.isawaitable(choice):
            choice = await choice
        if switch.condition:
            return [switch.routes[True]] if choice else []
        keys = list(choice) if isinstance(choice, list | set | frozenset) else [choice]
        unknown = [k for k in keys if k not in switch.routes]
        if unknown:
            raise WorkflowError(
                f"branch after {switch.source!r} chose {unknown[0]!r}; its routes are {list(switch.routes)}"
            )
        return list(dict.fromkeys(switch.routes[k] for k in keys))

    route.__name__ = f"route_{switch_id}"
    return route


def _result(flow: Flow, outcome: GraphResult) -> WorkflowResult:
    outputs = {name: outcome.output(name) for name in flow.placed if outcome.outputs.get(name)}
    downstream = {source for source, _ in flow.edges}
    terminals = [name for name in flow._defined if name in flow.placed and name not in downstream]
    done = [name for name in terminals if name in outputs]
    output = outputs[done[0]] if len(done) == 1 else ({n: outputs[n] for n in done} if done else None)
    skipped = tuple(n for n in flow.placed if outcome.states.get(n) == NodeState.SKIPPED)
    return WorkflowResult(
        outcome.run_id,
        outcome.status,
        output,
        outputs,
        skipped,
        outcome,
        usage=outcome.usage,
        questions=outcome.questions,
    )
