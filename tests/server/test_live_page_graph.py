"""The live page draws a graph run as it changed and takes answers, in headless Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestration import Edge, Graph, MemoryStore, Node, NodeKind
from orchestration.graph import NodeContext
from orchestration.server import create_app

from .harness import TOKEN, running_server
from .test_live_page import CHROMIUM_ARGS, _chromium

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


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
            await expect(page.locator("#answer-note")).to_have_text(
                "publish: answer recorded: the run goes on when it is resumed (orchestrate resume graph-run)"
            )
        finally:
            await browser.close()
    assert (tmp_path / "graph-run.png").stat().st_size > 10_000

    done = await review_graph().run(HANDLERS, store=store, run_id="graph-run")
    assert done.status == "completed"
    assert done.output("publish") == "the newsletter"


async def test_answered_on_the_page_a_paused_run_goes_on_in_the_server(tmp_path: Path) -> None:
    """Nobody drives the paused run; the server was given its graph, so the page's answer
    continues it there, and the page follows it to its end without a reload."""
    _chromium()
    from playwright.async_api import async_playwright, expect

    store = MemoryStore()
    paused = await review_graph().run(HANDLERS, store=store, run_id="served-run", orchestrator="review")
    assert paused.status == "paused"
    app = create_app(None, store, TOKEN, graphs={"review": (review_graph(), HANDLERS)}, poll_interval=0.2)
    async with running_server(app) as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/?token={TOKEN}&run=served-run")
            await expect(page.locator("#status")).to_have_text("paused")
            form = page.locator('#questions form[data-node="publish"]')
            await form.locator("input").fill("the newsletter")
            await form.locator("button").click()
            await expect(page.locator("#answer-note")).to_have_text(
                "publish: answer recorded: the run goes on in the server"
            )
            await expect(page.locator("#status")).to_have_text("completed")
            await expect(page.locator("#connection")).to_have_text("finished")
            await expect(page.locator("#node-publish")).to_have_class("node completed task")
            await page.screenshot(path=str(tmp_path / "served.png"), full_page=True)
        finally:
            await browser.close()
        await app.state.runs.wait("served-run")
    assert (tmp_path / "served.png").stat().st_size > 10_000
    done = await review_graph().run(HANDLERS, store=store, run_id="served-run")
    assert done.status == "completed" and done.output("publish") == "the newsletter"


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
        assert ok.status_code == 200
        assert ok.json() == {"recorded": True, "node": "publish", "route": "recorded", "resumed": False}
    assert (await review_graph().run(HANDLERS, store=store, run_id="api-run")).output("publish") == "web"


async def test_answered_on_the_page_a_live_run_goes_on_and_the_page_keeps_streaming(tmp_path: Path) -> None:
    """The run is live in this process, waiting only for the answer; the page answers it."""
    _chromium()
    from playwright.async_api import async_playwright, expect

    from orchestration.stores import SQLiteStore

    store = SQLiteStore(tmp_path / "runs.db")  # durable: every event is stored as it happens
    run = review_graph().start(HANDLERS, store=store, run_id="live-run", wait_for_answers=float("inf"))
    task = asyncio.create_task(run.run())
    app = create_app(None, store, TOKEN, poll_interval=0.2)
    async with running_server(app) as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/?token={TOKEN}&run=live-run")
            form = page.locator('#questions form[data-node="publish"]')
            await expect(form).to_contain_text("Which channel should it go to?")
            await expect(page.locator("#status")).to_have_text("in progress")
            await form.locator("input").fill("the radio")
            await form.locator("button").click()
            await expect(page.locator("#status")).to_have_text("completed")
            await expect(page.locator("#answered")).to_have_text("answered: publish (by live page)")
            await expect(page.locator("#answer-note")).to_have_text(
                "publish: answer delivered: the run goes on"
            )
            await expect(page.locator("#node-publish")).to_have_class("node completed task")
            await page.screenshot(path=str(tmp_path / "live-answered.png"), full_page=True)
        finally:
            await browser.close()
    result = await task
    await store.close()
    assert result.status == "completed" and result.output("publish") == "the radio"
    assert (tmp_path / "live-answered.png").stat().st_size > 10_000


async def test_a_paused_run_answered_on_the_page_and_resumed_by_another_process_streams_on(
    tmp_path: Path,
) -> None:
    """The page answers a paused run; other OS processes resume it; the page follows without a reload."""
    _chromium()
    from playwright.async_api import async_playwright, expect

    from orchestration.stores import SQLiteStore

    url = str(tmp_path / "runs.db")
    root = ROOT

    def worker() -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "tests.graph.interrupt_worker", url, "paused-run"],
            cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    assert worker()["status"] == "paused"
    store = SQLiteStore(url)
    app = create_app(None, store, TOKEN, poll_interval=0.2)
    try:
        async with running_server(app) as base, async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(f"{base}/?token={TOKEN}&run=paused-run")
                await expect(page.locator("#status")).to_have_text("paused")
                await expect(page.locator("#connection")).to_have_text("paused: waiting for answers")
                title = page.locator('#questions form[data-node="title"]')
                await title.locator("input").fill("Tides, briefly")
                await title.locator("button").click()
                await expect(page.locator("#answer-note")).to_contain_text("title: answer recorded")

                assert (await asyncio.to_thread(worker))["status"] == "paused"  # resumed elsewhere
                approve = page.locator('#questions form[data-node="publish"]')
                await expect(approve).to_contain_text("Publish the note?")  # streamed, no reload
                await page.screenshot(path=str(tmp_path / "resumed-elsewhere.png"), full_page=True)
                await approve.get_by_role("button", name="Yes").click()
                await expect(page.locator("#answer-note")).to_contain_text("publish: answer recorded")

                assert (await asyncio.to_thread(worker))["status"] == "completed"
                await expect(page.locator("#status")).to_have_text("completed")
                await expect(page.locator("#connection")).to_have_text("finished")
            finally:
                await browser.close()
    finally:
        await store.close()
    assert (tmp_path / "resumed-elsewhere.png").stat().st_size > 10_000
