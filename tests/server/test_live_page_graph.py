"""The live page draws a graph run as it changed and takes answers, in headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestration import Edge, Graph, MemoryStore, Node, NodeKind
from orchestration.graph import NodeContext
from orchestration.server import create_app

from .harness import TOKEN, running_server
from .test_live_page import CHROMIUM_ARGS, _chromium

pytestmark = pytest.mark.browser


def review_graph() -> Graph:
    return Graph(
        nodes=[
            Node(id="draft"),
            Node(id="route", kind=NodeKind.SWITCH),
            Node(id="publish"),
            Node(id="discard", kind=NodeKind.TERMINAL),
        ],
        edges=[
            Edge(source="draft", target="route"),
            Edge(source="route", target="publish"),
            Edge(source="route", target="discard"),
        ],
        entry="draft",
    )


def draft(ctx: NodeContext) -> str:
    ctx.graph.add_node(Node(id="fact-check"), [Edge(source="draft", target="fact-check")], reason="claims")
    return "text"


async def publish(ctx: NodeContext) -> Any:
    return await ctx.interrupt("Which channel should it go to?")


HANDLERS = {
    "draft": draft,
    "route": lambda ctx: "publish",
    "publish": publish,
    "fact-check": lambda ctx: "ok",
}


async def test_a_paused_graph_run_is_drawn_and_answered_from_the_page(tmp_path: Path) -> None:
    _chromium()
    from playwright.async_api import async_playwright, expect

    store = MemoryStore()
    paused = await review_graph().run(HANDLERS, store=store, run_id="graph-run")
    assert paused.status == "paused"

    app = create_app(None, store, TOKEN)
    async with running_server(app) as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/?token={TOKEN}&run=graph-run")
            await expect(page.locator("#status")).to_have_text("paused")
            # planned versus actual: every node, the one added while running marked so
            await expect(page.locator("#graph g.node")).to_have_count(5)
            await expect(page.locator("#node-fact-check")).to_have_class("node completed task added")
            await expect(page.locator("#node-draft")).to_have_class("node completed task")
            await expect(page.locator("#node-discard")).to_have_class("node skipped terminal")
            await expect(page.locator("#node-publish")).to_have_class("node waiting task")
            assert await page.locator("#graph path.edge.taken").count() == 1  # route -> publish
            assert await page.locator("#graph path.edge.route").count() == 1  # route -> discard, not taken

            form = page.locator('#questions form[data-node="publish"]')
            await expect(form).to_contain_text("Which channel should it go to?")
            await page.screenshot(path=str(tmp_path / "graph-run.png"), full_page=True)
            await form.locator("input").fill("the newsletter")
            await form.locator("button").click()
            await expect(form.locator(".answer-status")).to_contain_text("answer recorded")
        finally:
            await browser.close()
    assert (tmp_path / "graph-run.png").stat().st_size > 10_000

    done = await review_graph().run(HANDLERS, store=store, run_id="graph-run")
    assert done.status == "completed"
    assert done.output("publish") == "the newsletter"


async def test_answering_through_the_api_is_checked() -> None:
    import httpx

    store = MemoryStore()
    await review_graph().run(HANDLERS, store=store, run_id="api-run")
    app = create_app(None, store, TOKEN)
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with running_server(app) as base, httpx.AsyncClient(base_url=base, headers=headers) as client:
        wrong = await client.post("/runs/api-run/answers", json={"node": "draft", "answer": "x"})
        assert wrong.status_code == 409
        assert wrong.json()["error"] == (
            "node 'draft' of run api-run is not waiting for an answer (waiting: publish)"
        )
        assert (await client.post("/runs/nope/answers", json={"node": "a", "answer": 1})).status_code == 404
        assert (await client.post("/runs/api-run/answers", json={"answer": 1})).status_code == 400
        ok = await client.post("/runs/api-run/answers", json={"node": "publish", "answer": "web"})
        assert ok.status_code == 200 and ok.json() == {"recorded": True, "node": "publish"}
    assert (await review_graph().run(HANDLERS, store=store, run_id="api-run")).output("publish") == "web"
