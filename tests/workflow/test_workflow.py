"""Decorator workflows (``orchestration.workflow``): wiring, joins, branches, failures, resume.

The regression tests at the end are the decorator PR's reviewed bugs (seed 002): OR-joined
steps ran twice, upstreams that never ran arrived as ``None``, exceptions were swallowed,
and the result of a workflow with several terminal steps was whichever finished last.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orchestration import EventType, MemoryStore, StreamEvent
from orchestration.errors import GraphError, StepFailedError, WorkflowError
from orchestration.graph import NodeContext, NodeKind, NodeState
from orchestration.stores.sqlite import SQLiteStore
from orchestration.workflow import Flow, Workflow, step


class Report(Workflow):
    @step
    async def outline(self, topic: str) -> list[str]:
        return [f"{topic}: causes", f"{topic}: effects"]

    @step
    async def research(self, outline: list[str]) -> str:
        return "; ".join(outline)

    @step
    def critique(self, outline: list[str]) -> str:  # sync steps work too
        return f"{len(outline)} sections"

    @step
    async def write(self, research: str, critique: str) -> str:
        return f"{research} ({critique})"

    def build(self, flow: Flow) -> None:
        flow.start(self.outline).then([self.research, self.critique]).then(self.write)


async def test_parallel_steps_join_and_the_terminal_output_is_the_result() -> None:
    result = await Report().run("tides", store=MemoryStore())
    assert result.status == "completed"
    assert result.output == "tides: causes; tides: effects (2 sections)"
    assert result.outputs["critique"] == "2 sections"


def test_it_compiles_to_a_graph_of_one_node_per_step() -> None:
    graph = Report().graph()
    assert [n.id for n in graph.nodes] == ["outline", "research", "critique", "write"]
    assert {(e.source, e.target) for e in graph.edges} == {
        ("outline", "research"),
        ("outline", "critique"),
        ("research", "write"),
        ("critique", "write"),
    }
    assert graph.entry == "outline"


class Triage(Workflow):
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @step
    async def classify(self, text: str) -> str:
        return "bug" if "crash" in text else "question"

    @step
    async def fix(self, classify: str) -> str:
        self.calls.append(("fix", {"classify": classify}))
        return "patched"

    @step
    async def answer(self, classify: str) -> str:
        self.calls.append(("answer", {"classify": classify}))
        return "answered"

    @step
    async def reply(self, fix: str = "-", answer: str = "-") -> str:
        self.calls.append(("reply", {"fix": fix, "answer": answer}))
        return f"fix={fix} answer={answer}"

    def build(self, flow: Flow) -> None:
        flow.start(self.classify).branch({"bug": self.fix, "question": self.answer}).then(self.reply)


class TwoChains(Workflow):
    @step
    async def fetch(self, url: str) -> str:
        return f"page of {url}"

    @step
    async def summary(self, fetch: str) -> str:
        return f"summary of {fetch}"

    @step
    async def links(self, fetch: str) -> list[str]:
        return [f"link in {fetch}"]

    @step
    async def index(self, summary: str, links: list[str]) -> str:
        return f"{summary} + {len(links)} link(s)"

    def build(self, flow: Flow) -> None:
        flow.start(self.fetch).then(self.summary)
        flow.after(self.fetch).then(self.links)  # a second chain from a step already wired
        flow.after(self.summary, self.links).then(self.index)  # a join across the chains


async def test_after_starts_a_second_chain_and_joins_across_chains() -> None:
    workflow = TwoChains()
    edges = {(e.source, e.target) for e in workflow.graph().edges}
    assert edges == {("fetch", "summary"), ("fetch", "links"), ("summary", "index"), ("links", "index")}
    result = await workflow.run("a.org", store=MemoryStore())
    assert result.output == "summary of page of a.org + 1 link(s)"
    with pytest.raises(WorkflowError, match=r"after\('index'\): that step is not in the flow yet"):

        class Early(TwoChains):
            def build(self, flow: Flow) -> None:
                flow.start(self.fetch)
                flow.after(self.index)

        Early().flow()


async def test_a_branch_runs_one_route_skips_the_other_and_the_join_gets_no_none() -> None:
    flow = Triage()
    result = await flow.run("it crashes on start", store=MemoryStore())
    assert result.output == "fix=patched answer=-"
    assert result.skipped == ("answer",)
    assert [name for name, _ in flow.calls] == ["fix", "reply"]
    assert flow.calls[-1] == ("reply", {"fix": "patched", "answer": "-"})  # the default, not None


async def test_a_selector_returning_an_unknown_key_fails_naming_the_branch() -> None:
    class Bad(Triage):
        def build(self, flow: Flow) -> None:
            flow.start(self.classify).branch({"bug": self.fix, "other": self.answer}).then(self.reply)

    with pytest.raises(StepFailedError, match=r"branch after 'classify' chose 'question'") as caught:
        await Bad().run("how do I?", store=MemoryStore())
    assert caught.value.step == "classify"
    assert caught.value.result.outputs == {"classify": "question"}


class Gated(Workflow):
    def __init__(self, go: bool) -> None:
        self.go = go
        self.ran: list[str] = []

    @step
    async def draft(self, text: str) -> str:
        return text.upper()

    @step
    async def publish(self, draft: str) -> str:
        self.ran.append("publish")
        return f"published {draft}"

    @step
    async def announce(self, publish: str) -> str:
        self.ran.append("announce")
        return f"announced {publish}"

    def build(self, flow: Flow) -> None:
        flow.start(self.draft).then(self.publish, when=lambda _draft: self.go).then(self.announce)


@pytest.mark.parametrize("go", [True, False])
async def test_a_condition_gates_a_step_and_what_follows_never_deadlocks(go: bool) -> None:
    flow = Gated(go)
    result = await flow.run("note", store=MemoryStore())
    assert result.status == "completed"
    if go:
        assert flow.ran == ["publish", "announce"]
        assert result.output == "announced published NOTE"
    else:
        assert flow.ran == []
        assert result.skipped == ("publish", "announce")
        assert result.output is None  # no terminal step completed


class Race(Workflow):
    """``first`` is an OR join: it must fire once, for whichever upstream completes first."""

    def __init__(self) -> None:
        self.first_calls: list[dict[str, Any]] = []
        self.joined = asyncio.Event()

    @step
    async def begin(self, question: str) -> str:
        return question

    @step
    async def fast(self, begin: str) -> str:
        return f"fast:{begin}"

    @step
    async def slow(self, begin: str) -> str:
        await self.joined.wait()  # completes only after the OR join already ran
        return f"slow:{begin}"

    @step(join="any")
    async def first(self, fast: str | None = None, slow: str | None = None) -> str:
        self.first_calls.append({k: v for k, v in {"fast": fast, "slow": slow}.items() if v is not None})
        self.joined.set()
        return fast or slow or ""

    def build(self, flow: Flow) -> None:
        flow.start(self.begin).then([self.fast, self.slow]).then(self.first)


async def test_an_or_join_fires_once_and_the_late_input_is_recorded_not_lost() -> None:
    flow = Race()
    result = await flow.run("q", store=MemoryStore())
    assert flow.first_calls == [{"fast": "fast:q"}]  # once, and no None for slow
    assert result.output == "fast:q"
    assert result.outputs["slow"] == "slow:q"  # the late input completed and is kept
    assert Race().graph().nodes[-1].kind is NodeKind.AGGREGATE


class Boom(Workflow):
    @step
    async def fetch(self, url: str) -> str:
        return f"page of {url}"

    @step
    async def parse(self, fetch: str) -> str:
        raise ValueError("unexpected token at line 3")

    def build(self, flow: Flow) -> None:
        flow.start(self.fetch).then(self.parse)


async def test_an_exception_fails_the_run_naming_the_step_and_keeps_what_ran() -> None:
    with pytest.raises(
        StepFailedError, match=r"^step 'parse' failed: ValueError: unexpected token at line 3$"
    ) as caught:
        await Boom().run("http://example.test", store=MemoryStore())
    assert caught.value.step == "parse"
    assert caught.value.result.status == "failed"
    assert caught.value.result.outputs == {"fetch": "page of http://example.test"}


class TwoEnds(Workflow):
    def __init__(self) -> None:
        self.release_a = asyncio.Event()

    @step
    async def start_here(self, x: int) -> int:
        return x

    @step
    async def end_a(self, start_here: int) -> str:
        await self.release_a.wait()  # end_a finishes last ...
        return "a"

    @step
    async def end_b(self, start_here: int) -> str:
        self.release_a.set()
        return "b"

    def build(self, flow: Flow) -> None:
        flow.start(self.start_here).then([self.end_a, self.end_b])


async def test_several_terminal_steps_give_a_dict_in_definition_order() -> None:
    result = await TwoEnds().run(1, store=MemoryStore())
    assert list(result.output.items()) == [("end_a", "a"), ("end_b", "b")]  # ... not completion order


class WithContext(Workflow):
    @step
    async def only(self, text: str, ctx: NodeContext) -> str:
        return f"{text} in run {ctx.run_id} visit {ctx.visit}"

    def build(self, flow: Flow) -> None:
        flow.start(self.only)


async def test_a_ctx_parameter_receives_the_node_context() -> None:
    result = await WithContext().run("hi", store=MemoryStore(), run_id="r-ctx")
    assert result.output == "hi in run r-ctx visit 1"


# -- building mistakes get one clear error ---------------------------------------------


def _flow_of(build: Any, *methods: Any) -> Workflow:
    namespace: dict[str, Any] = {"build": build}
    for method in methods:
        namespace[method.__name__] = method
    return type("Adhoc", (Workflow,), namespace)()


async def _a(self: Any, x: Any) -> Any:
    return x


async def _b(self: Any, x: Any) -> Any:
    return x


def test_an_undecorated_method_is_refused_by_name() -> None:
    flow = _flow_of(lambda self, f: f.start(self._a).then(self._b), step(_a), _b)
    with pytest.raises(WorkflowError, match=r"'_b' is not a @step method of Adhoc; decorate it with @step"):
        flow.graph()


def test_starting_twice_and_forgetting_to_start_are_refused() -> None:
    twice = _flow_of(lambda self, f: (f.start(self._a), f.start(self._b)), step(_a), step(_b))
    with pytest.raises(WorkflowError, match="call start\\(\\) once"):
        twice.graph()
    never = _flow_of(lambda self, f: None, step(_a))
    with pytest.raises(WorkflowError, match=r"must call flow\.start"):
        never.graph()


def test_a_step_defined_but_not_wired_is_named() -> None:
    flow = _flow_of(lambda self, f: f.start(self._a), step(_a), step(_b))
    with pytest.raises(WorkflowError, match=r"steps \['_b'\] are defined but not wired"):
        flow.graph()


def test_a_join_whose_parameters_do_not_name_its_upstreams_is_refused() -> None:
    class Mismatch(Report):
        @step
        async def write(self, left: str, right: str) -> str:  # type: ignore[override]
            return left + right

    with pytest.raises(WorkflowError, match=r"step 'write' joins \['research', 'critique'\]"):
        Mismatch().graph()


def test_a_cycle_without_a_branch_is_refused_naming_the_steps() -> None:
    flow = _flow_of(lambda self, f: f.start(self._a).then(self._b).then(self._a), step(_a), step(_b))
    with pytest.raises(GraphError, match="cycle _a -> _b -> _a does not pass through a SWITCH"):
        flow.graph()


# -- durability: a workflow is a graph run, stored and resumed --------------------------


class Interrupted(Workflow):
    def __init__(self, hang: bool) -> None:
        self.hang = hang
        self.runs: list[str] = []
        self.reached = asyncio.Event()

    @step
    async def gather(self, topic: str) -> str:
        self.runs.append("gather")
        return f"notes on {topic}"

    @step
    async def summarise(self, gather: str) -> str:
        self.runs.append("summarise")
        if self.hang:
            self.reached.set()
            await asyncio.Event().wait()  # the process "dies" here
        return gather.upper()

    def build(self, flow: Flow) -> None:
        flow.start(self.gather).then(self.summarise)


async def test_a_stopped_run_resumes_from_sqlite_without_redoing_finished_steps(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    gather_stored = asyncio.Event()

    async def watch(event: StreamEvent) -> None:  # events reach callbacks once they are stored
        if event.event_type is EventType.GRAPH_NODE_COMPLETED and event.data["node"] == "gather":
            gather_stored.set()

    first = Interrupted(hang=True)
    task = asyncio.create_task(first.run("tides", store=store, run_id="wf-1", stream_callback=watch))
    await first.reached.wait()
    await gather_stored.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    again = Interrupted(hang=False)
    result = await again.run(store=SQLiteStore(tmp_path / "runs.db"), run_id="wf-1")
    assert result.status == "completed"
    assert result.output == "NOTES ON TIDES"
    assert again.runs == ["summarise"]  # gather's output came from the store
    assert result.graph is not None and result.graph.states["gather"] is NodeState.COMPLETED


class Priced(Workflow):
    @step
    async def ask(self, topic: str, ctx: NodeContext) -> str:
        return (await ctx.call_llm(f"facts about {topic}", max_tokens=50)).content

    @step
    async def then_nothing(self) -> str:  # follows ask, takes nothing
        return "done"

    @step
    async def by_keyword(self, *, then_nothing: str) -> str:
        return f"after {then_nothing}"

    def build(self, flow: Flow) -> None:
        flow.start(self.ask).then(self.then_nothing).then(self.by_keyword)


async def test_steps_call_models_under_the_runs_bill_and_take_inputs_as_they_declare() -> None:
    from orchestration import OrchestratorConfig, ScriptedProvider

    result = await Priced().run(
        "tides", store=MemoryStore(), provider=ScriptedProvider("tides rise"), config=OrchestratorConfig()
    )
    assert result.outputs["ask"] == "tides rise"
    assert result.output == "after done"
    assert result.usage.calls == 1 and result.usage.cost_usd > 0
