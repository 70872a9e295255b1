"""Forged writes from a page on another local port, in real headless Chromium.

Another port on 127.0.0.1 is the same *site*, so the browser attaches the server's
SameSite=Strict cookie to the forged requests; they must still start nothing and import
nothing.  The server's own page, with its CSRF token, keeps working.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from orchestration import MemoryStore
from orchestration.server import create_app
from orchestration.server.runs import RunRequest, default_orchestrator_factory, register_patterns
from orchestration.stores.base import RunStore
from tests.streaming.demo import DemoOrchestrator

from .harness import TOKEN, running_server, wait_for
from .test_live_page import CHROMIUM_ARGS, _chromium

pytestmark = pytest.mark.browser

EVIL = "tests.server.evil_pattern:EvilOrchestrator"
HOSTILE_PAGE = """<!doctype html><meta charset=utf-8><title>cute cats</title>
<iframe name="sink"></iframe>
<form id="form" method="POST" action="TARGET/runs" enctype="text/plain" target="sink">
  <input name='{"pattern": "EVIL", "task": "forged by a form", "pad": "' value='"}'>
</form>
<script>
(async () => {
  const body = JSON.stringify({ pattern: "EVIL", task: "forged by fetch" });
  const simple = ["text/plain; x=application/json", "text/plain", "application/x-www-form-urlencoded"];
  for (const type of simple) {
    try {
      await fetch("TARGET/runs", { method: "POST", mode: "no-cors", credentials: "include",
                                   headers: { "content-type": type }, body });
    } catch (error) { /* a refusal is what we want */ }
  }
  try {  // needs a CORS preflight, which the server never grants
    await fetch("TARGET/runs", { method: "POST", credentials: "include",
                                 headers: { "content-type": "application/json" }, body });
  } catch (error) { /* blocked */ }
  try {
    await fetch("TARGET/runs/x/cancel", { method: "POST", mode: "no-cors", credentials: "include" });
  } catch (error) { /* refused */ }
  document.getElementById("form").submit();
  window.attacked = true;
})();
</script>"""


async def test_a_page_on_another_port_cannot_start_a_run_or_import_a_module(tmp_path: Path) -> None:
    executable = _chromium()
    from playwright.async_api import async_playwright, expect

    assert EVIL.split(":")[0] not in sys.modules
    gate = asyncio.Event()
    builtins = register_patterns()

    def factory(request: RunRequest, store: RunStore) -> Any:
        """The default factory (built-ins only), plus "held": a run that waits, to cancel from the page."""
        if request.pattern == "held":
            return DemoOrchestrator(store=store, gate=gate)
        return default_orchestrator_factory(
            request, store, reports_dir=tmp_path / "reports", patterns=builtins
        )

    app = create_app(factory, MemoryStore(), TOKEN, reports_dir=tmp_path / "reports")

    async with running_server(app) as base:

        async def hostile(request: Request) -> Response:
            return HTMLResponse(HOSTILE_PAGE.replace("TARGET", base).replace("EVIL", EVIL))

        attacker = Starlette(routes=[Route("/", hostile)])
        async with running_server(attacker) as elsewhere, async_playwright() as playwright:
            assert elsewhere.rsplit(":", 1)[1] != base.rsplit(":", 1)[1]
            browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context()
                page = await context.new_page()
                await page.goto(f"{base}/?token={TOKEN}")  # the user opened the live page: the cookie is set
                cookies = await context.cookies(base)
                assert [c["name"] for c in cookies] == [f"orchestration_token_{base.rsplit(':', 1)[1]}"]
                assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"

                answers: list[tuple[str, str, int]] = []
                page.on(
                    "response",
                    lambda r: (
                        answers.append((r.request.method, r.url, r.status))
                        if r.url.startswith(base)
                        else None
                    ),
                )
                await page.goto(elsewhere + "/")
                await page.wait_for_function("window.attacked === true")
                await wait_for(
                    lambda: sum(1 for m, u, _ in answers if m == "POST" and u.endswith("/runs")) >= 4
                )
                forged = [(m, u, s) for m, u, s in answers if m == "POST"]
                assert forged and all(status == 403 for _, _, status in forged), forged
                assert await app.state.store.list_runs() == []
                assert EVIL.split(":")[0] not in sys.modules
                assert "ORCHESTRATION_EVIL_PATTERN_IMPORTED" not in os.environ

                # The server's own page still starts runs: it sends its CSRF token.
                await page.goto(base + "/")
                await page.fill("input[name=pattern]", "sequential")
                await page.fill("textarea[name=task]", "Research tides from the page")
                await page.click("#start-form button[type=submit]")
                await expect(page.locator("#status")).to_have_text("completed", timeout=30_000)
                runs = await app.state.store.list_runs()
                assert [run.task for run in runs] == ["Research tides from the page"]

                # ... and cancels them.
                await page.goto(base + "/")
                await page.fill("input[name=pattern]", "held")
                await page.fill("textarea[name=task]", "Wait to be cancelled")
                await page.click("#start-form button[type=submit]")
                await expect(page.locator("#status")).to_have_text("in progress")
                await page.click("#cancel")
                await expect(page.locator("#status")).to_have_text("cancelled", timeout=30_000)
                gate.set()
            finally:
                await browser.close()
