"""Each rule that guards a write, one at a time, without a browser (the layers under the browser test)."""

from __future__ import annotations

import re

import httpx

from orchestration import MemoryStore
from orchestration.server import create_app
from orchestration.server.runs import RunRequest
from orchestration.stores.base import RunStore
from tests.streaming.demo import DemoOrchestrator

from .harness import AUTH, TOKEN, running_server, wait_for

RUN = b'{"pattern": "demo", "task": "write rules"}'


async def test_a_write_needs_the_header_or_the_page_token_json_and_this_origin() -> None:
    def factory(request: RunRequest, store: RunStore) -> DemoOrchestrator:
        return DemoOrchestrator(store=store)

    app = create_app(factory, MemoryStore(), TOKEN)
    async with running_server(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        port = client.base_url.port
        jar = {"Cookie": f"orchestration_token_{port}={TOKEN}"}
        page = await client.get("/", headers=jar)
        csrf = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page.text)
        assert csrf and TOKEN not in page.text
        json_type = {"content-type": "application/json"}

        async def post(headers: dict[str, str], url: str = "/runs", body: bytes = RUN) -> httpx.Response:
            return await client.post(url, content=body, headers=headers)

        cookie_only = await post({**jar, **json_type})
        assert cookie_only.status_code == 403 and "Authorization" in cookie_only.json()["error"]
        assert (await post({**json_type}, url=f"/runs?token={TOKEN}")).status_code == 403
        assert (await post({**jar, **json_type, "X-CSRF-Token": "0" * 64})).status_code == 403
        for media in (
            "text/plain; x=application/json",
            "text/plain",
            "application/jsonx",
            "application/json; charset=latin-1",
        ):
            response = await post({**AUTH, "content-type": media})
            assert response.status_code == 415, media
        for header in ({"Origin": "http://127.0.0.1:1"}, {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"}):
            response = await post({**AUTH, **json_type, **header})
            assert response.status_code == 403 and "cross-origin" in response.json()["error"], header
        assert (await client.get("/runs")).status_code == 401  # reading still needs the token
        assert await app.state.store.list_runs() == []

        accepted = [
            {**AUTH, **json_type},
            {**AUTH, "content-type": "application/json; charset=utf-8", "Origin": base},
            {
                **jar,
                **json_type,
                "X-CSRF-Token": csrf.group(1),
                "Sec-Fetch-Site": "same-origin",
                "Origin": base,
            },
        ]
        for headers in accepted:
            response = await post(headers)
            assert response.status_code == 202, (headers, response.text)
        await wait_for(lambda: not app.state.runs._tasks)
        assert len(await app.state.store.list_runs()) == 3
