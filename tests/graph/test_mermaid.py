"""Mermaid views: the planned graph, what ran (visits, routes not taken, changes), the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from orchestration import Edge, Graph, MemoryStore, Node, NodeKind, OrchestratorConfig
from orchestration.graph import NodeContext
from orchestration.graph.mermaid import planned, ran
from orchestration.scripted import demo_provider
from orchestration.stores.sqlite import SQLiteStore
from tests.core.cli_fixture import TwoStep

ROOT = Path(__file__).resolve().parents[2]


def loop_graph() -> Graph:
    return Graph(
        nodes=[
            Node(id="draft"),
            Node(id="review", kind=NodeKind.SWITCH, max_visits=3),
            Node(id="publish", kind=NodeKind.TERMINAL),
            Node(id="discard", kind=NodeKind.TERMINAL),
        ],
        edges=[
            Edge(source="draft", target="review"),
            Edge(source="review", target="draft"),
            Edge(source="review", target="publish"),
            Edge(source="review", target="discard"),
        ],
        entry="draft",
    )


def test_the_planned_graph_draws_each_kind_in_its_shape() -> None:
    assert planned(loop_graph()) == (
        "flowchart TD\n"
        '    n0["draft"]\n'
        '    n1{"review"}\n'
        '    n2(["publish"])\n'
        '    n3(["discard"])\n'
        "    n0 --> n1\n"
        "    n1 --> n0\n"
        "    n1 --> n2\n"
        "    n1 --> n3\n"
    )


async def test_what_ran_shows_visits_routes_not_taken_and_changes() -> None:
    store = MemoryStore()

    def review(ctx: NodeContext) -> str:
        if ctx.visit == 1:
            ctx.graph.add_node(
                Node(id="fact-check"), [Edge(source="draft", target="fact-check")], reason="claims"
            )
            return "draft"
        return "publish"

    handlers = {"draft": lambda ctx: {"v": ctx.visit}, "review": review, "fact-check": lambda ctx: "ok"}
    result = await loop_graph().run(handlers, payload={}, store=store, run_id="loop")
    assert result.status == "completed"
    text = ran(await store.events("loop"))
    assert '    n0["draft x2<br/><small>completed</small>"]' in text  # two visits
    assert "    n1 --> n0" in text  # the back-edge was taken once: solid
    assert "    n1 -.-> n3" in text  # discard was never chosen: dotted
    assert '    n3(["discard<br/><small>skipped</small>"])' in text
    assert "    %% change: node_added node=fact-check (claims)" in text
    assert "    class n4 added" in text


def test_model_written_ids_cannot_break_out_of_their_labels() -> None:
    hostile = 'x"] --> evil["pwned'
    graph = Graph(
        nodes=[Node(id=hostile), Node(id="b|c")], edges=[Edge(source=hostile, target="b|c")], entry=hostile
    )
    text = planned(graph)
    assert text.splitlines()[1] == '    n0["x#quot;] --#gt; evil[#quot;pwned"]'
    assert text.splitlines()[2] == '    n1["b#124;c"]'
    assert text.count("-->") == 1  # only the real edge


def test_orchestrate_show_mermaid_draws_an_orchestrator_runs_plan(tmp_path: Path) -> None:
    async def prepare() -> None:
        store = SQLiteStore(tmp_path / "runs.db")
        await TwoStep(OrchestratorConfig(), demo_provider(), store=store).execute_workflow(
            "a task", run_id="m-run"
        )
        await store.close()

    asyncio.run(prepare())
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestration.cli",
            "show",
            "m-run",
            "--mermaid",
            "--store",
            str(tmp_path / "runs.db"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    assert '    n1["one<br/><small>completed</small>"]' in lines
    assert '    n2["two<br/><small>completed</small>"]' in lines
    assert (
        "    n0 --> n1" in lines and "    n1 --> n3" in lines and "    n2 --> n3" in lines
    )  # via synthesize
    assert lines[4].startswith('    n3(["synthesize')
