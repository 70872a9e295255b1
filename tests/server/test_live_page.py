"""The live run page in real headless Chromium (Debian's ``chromium``, driven by Playwright).

Install the browser with ``apt-get install chromium`` and the driver with
``pip install playwright`` (never ``playwright install``: the system browser is used).
In CI (``CI=true``) a missing browser fails the test; elsewhere it is skipped.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from pathlib import Path

import httpx
import pytest

from orchestration import MemoryStore, OrchestratorConfig
from orchestration.server import create_app
from orchestration.server.runs import RunRequest
from orchestration.stores.base import RunStore
from tests.conftest import require_service
from tests.streaming.demo import DemoOrchestrator

from .harness import AUTH, TOKEN, running_server, wait_for

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    require_service(
        "headless Chromium with Playwright",
        bool(path) and importlib.util.find_spec("playwright") is not None,
        "apt-get install chromium && pip install playwright (the system browser is used)",
    )
    return path


async def test_live_page_shows_a_run_as_it_happens(tmp_path: Path) -> None:
    executable = _chromium()
    from playwright.async_api import async_playwright, expect

    gate = asyncio.Event()

    def factory(request: RunRequest, store: RunStore) -> DemoOrchestrator:
        config = OrchestratorConfig(
            max_retries=0, generate_documents=True, document_formats=["markdown", "pdf"],
            output_directory=str(tmp_path / "reports"),
        )  # fmt: skip
        return DemoOrchestrator(config, store=store, gate=gate, delay=0.05)

    app = create_app(factory, MemoryStore(), TOKEN, reports_dir=tmp_path / "reports")
    ARTIFACTS.mkdir(exist_ok=True)
    async with running_server(app) as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            async with httpx.AsyncClient(base_url=base, headers=AUTH) as client:
                response = await client.post(
                    "/runs", json={"pattern": "demo", "task": "Research <b>live</b> pages"}
                )
                run_id = response.json()["run_id"]
            await page.goto(f"{base}/?token={TOKEN}&run={run_id}")
            assert "token" not in page.url  # the page drops it from the address bar

            nodes = page.locator("#graph .node")
            await expect(nodes).to_have_count(4)
            await expect(page.locator("#node-research.completed")).to_have_count(1)
            await expect(page.locator("#graph .node.running")).to_have_count(2)  # held at the gate
            await expect(page.locator("#graph path.edge")).to_have_count(4)
            await expect(page.locator("#status")).to_have_text("in progress")
            await page.screenshot(path=str(ARTIFACTS / "live-page-running.png"), full_page=True)

            gate.set()
            await expect(page.locator("#status")).to_have_text("completed", timeout=20_000)
            await expect(page.locator("#graph .node.completed")).to_have_count(4)
            synthesis = page.locator("#synthesis")
            await expect(synthesis).to_contain_text("All agents agree")
            await expect(synthesis).to_contain_text("<script>window.__pwned = true</script>")
            await expect(page.locator("#outputs [data-agent=critique] .text")).to_contain_text("<img src=x")
            await expect(page.locator("#reports a")).to_have_count(2)
            assert await page.evaluate("window.__pwned") is None
            assert await page.locator("main script, main img").count() == 0
            rows = page.locator("#agents tbody tr")
            await expect(rows).to_have_count(5)  # the four subtasks and the synthesizer, which spent too
            await expect(page.locator("#agents tr[data-agent=synthesizer]")).to_have_count(1)
            assert "$" in (await page.locator("#cost").text_content() or "")
            await page.screenshot(path=str(ARTIFACTS / "live-page.png"), full_page=True)
            assert errors == []

            # the run list links to the run
            await page.goto(base + "/")
            await expect(page.locator("#runs-table tbody tr")).to_have_count(1)
            await expect(page.locator("#runs-table a")).to_have_text(run_id)
        finally:
            await browser.close()


async def test_page_survives_a_server_restart_mid_run() -> None:
    """The run is executed by a worker writing to the shared store; the server only streams it.

    The page is open while the first server stops mid-run; a second server starts on the
    same port; the browser's EventSource reconnects with Last-Event-ID and the page ends
    with every event exactly once.
    """
    executable = _chromium()
    from playwright.async_api import async_playwright, expect

    store = MemoryStore()
    gate = asyncio.Event()
    worker = DemoOrchestrator(store=store, gate=gate)
    run = asyncio.create_task(worker.execute_workflow("Survive a restart", run_id="restart-run"))
    await wait_for(lambda: store.get_run("restart-run"))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            async with running_server(create_app(None, store, TOKEN, poll_interval=0.2)) as base:
                await page.goto(f"{base}/?token={TOKEN}&run=restart-run")
                await expect(page.locator("#node-research.completed")).to_have_count(1)
            await expect(page.locator("#connection")).not_to_have_text("live")
            gate.set()  # the run goes on while no server is up
            await run
            port = int(base.rsplit(":", 1)[1])
            async with running_server(create_app(None, store, TOKEN), port=port):
                await expect(page.locator("#status")).to_have_text("completed", timeout=30_000)
                await expect(page.locator("#synthesis")).to_contain_text("All agents agree")
                stored = await store.events("restart-run")
                assert await page.evaluate("state.lastSeq") == stored[-1].seq
                logged = await page.locator("#log li").evaluate_all(
                    "items => items.map(i => Number(i.value))"
                )
                assert logged == [e.seq for e in stored][-len(logged) :]  # in order, no duplicates
        finally:
            await browser.close()
