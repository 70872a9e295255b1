"""What the live page shows, in real headless Chromium: unknown runs, formatted synthesis, the bill."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestration import MemoryStore
from orchestration.models import AgentResult
from orchestration.server import create_app
from orchestration.server.runs import RunRequest
from orchestration.stores.base import RunStore
from tests.streaming.demo import DemoOrchestrator

from .harness import AUTH, TOKEN, read_events, running_server
from .test_live_page import CHROMIUM_ARGS, _chromium

pytestmark = pytest.mark.browser

SYNTHESIS = """# Tides, summarised

The **moon** drives the *main* cycle; see `tide_table_2024`.

- spring tides
- neap tides

1. first
2. second

> quoted line

Read [the source](javascript:alert(1)) and [this](http://evil.example/phish).
![tracker](EXFIL)
<script>window.__pwned = true</script><img src=x onerror="window.__pwned = 2">

```
<b>code stays text</b>
```
"""


class MarkdownOrchestrator(DemoOrchestrator):
    """The demo run, whose synthesis is fixed Markdown with hostile parts."""

    synthesis = SYNTHESIS

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str:
        return self.synthesis


async def _browser(playwright: Any) -> Any:
    return await playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)


async def test_an_unknown_run_says_so_without_a_cancel_button() -> None:
    _chromium()
    from playwright.async_api import async_playwright, expect

    app = create_app(None, MemoryStore(), TOKEN)
    async with running_server(app) as base, async_playwright() as playwright:
        browser = await _browser(playwright)
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/?token={TOKEN}&run=no-such-id")
            await expect(page.locator("#status")).to_have_text("no such run")
            await expect(page.locator("#run-error")).to_contain_text("No such run: no-such-id")
            await expect(page.locator("#cancel")).to_be_hidden()
            assert "pending" not in ((await page.locator("#status").text_content()) or "").lower()
        finally:
            await browser.close()


async def test_the_synthesis_is_formatted_markdown_with_links_defanged(tmp_path: Path) -> None:
    _chromium()
    from playwright.async_api import async_playwright, expect

    factory_holder: dict[str, str] = {}

    def factory(request: RunRequest, store: RunStore) -> DemoOrchestrator:
        orchestrator = MarkdownOrchestrator(store=store)
        orchestrator.synthesis = SYNTHESIS.replace("EXFIL", factory_holder["exfil"])
        return orchestrator

    app = create_app(factory, MemoryStore(), TOKEN)
    async with running_server(app) as base, async_playwright() as playwright:
        factory_holder["exfil"] = f"{base}/exfil?leak=1"
        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client:
            run_id = (await client.post("/runs", json={"pattern": "demo", "task": "Tides"})).json()["run_id"]
            await read_events(client, f"/runs/{run_id}/events")
        browser = await _browser(playwright)
        try:
            page = await browser.new_page()
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            await page.goto(f"{base}/?token={TOKEN}&run={run_id}")
            await expect(page.locator("#status")).to_have_text("completed")
            synthesis = page.locator("#synthesis")
            await expect(synthesis.locator("h3")).to_have_text("Tides, summarised")
            await expect(synthesis.locator("strong")).to_have_text("moon")
            await expect(synthesis.locator("em")).to_have_text("main")
            await expect(synthesis.locator("p code")).to_have_text("tide_table_2024")
            await expect(synthesis.locator("ul li")).to_have_count(2)
            await expect(synthesis.locator("ol li")).to_have_count(2)
            await expect(synthesis.locator("blockquote")).to_have_text("quoted line")
            await expect(synthesis.locator("pre code")).to_have_text("<b>code stays text</b>")
            text = (await synthesis.text_content()) or ""
            assert "the source (javascript[:]alert(1))" in text  # the text stays, the target is inert
            assert "http[:]//evil[.]example/phish" in text and "[image: tracker]" in text
            assert "<script>window.__pwned = true</script>" in text  # raw HTML is shown, not run
            assert await synthesis.locator("a, img, script, b, iframe").count() == 0
            assert await page.evaluate("window.__pwned") is None
            assert not [url for url in requested if "/exfil" in url]
        finally:
            await browser.close()


async def test_the_agents_table_lists_every_agent_that_spent_and_adds_up(tmp_path: Path) -> None:
    _chromium()
    from playwright.async_api import async_playwright, expect

    app = create_app(None, MemoryStore(), TOKEN, reports_dir=tmp_path / "reports")
    async with running_server(app) as base, async_playwright() as playwright:
        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client:
            body = {"pattern": "cascade", "task": "Research tides", "provider": "scripted"}
            run_id = (await client.post("/runs", json=body)).json()["run_id"]
            events = await read_events(client, f"/runs/{run_id}/events")
        spent = {e.agent_id for e in events if str(e.event_type) == "cost_update"}
        assert {"planner", "drummer_1", "camina_1"} <= spent  # what the run paid for
        final_cost = events[-1].data["total_cost"]
        browser = await _browser(playwright)
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/?token={TOKEN}&run={run_id}")
            await expect(page.locator("#status")).to_have_text("completed")
            rows = await page.locator("#agents tbody tr").evaluate_all(
                "rows => rows.map(r => [r.dataset.agent, ...[...r.cells].map(c => c.textContent)])"
            )
            labels = {row[1] for row in rows}
            assert spent <= labels, (spent, labels)
            tokens = sum(int(row[4].replace(",", "")) for row in rows)
            assert tokens == int(((await page.locator("#tokens").text_content()) or "0").replace(",", ""))
            costs = [row[5] for row in rows] + [(await page.locator("#cost").text_content()) or ""]
            assert all(re.fullmatch(r"\$\d+\.\d+", cost) for cost in costs), costs
            assert "$0.0000" not in costs and "$0.00" not in costs  # every one of them spent something
            row_sum = await page.evaluate("[...state.agents.values()].reduce((s, a) => s + a.cost, 0)")
            assert row_sum == pytest.approx(final_cost, rel=1e-9)
            shown_total = float(costs[-1][1:])
            assert shown_total == pytest.approx(final_cost, rel=1e-2)
        finally:
            await browser.close()
