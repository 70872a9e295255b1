"""Stream a run to the browser from your own Starlette (or FastAPI) app with Server-Sent Events.

    python examples/sse_starlette_app.py            # self-check: serve, stream one run, stop
    python examples/sse_starlette_app.py --serve    # then open http://127.0.0.1:8000/research?topic=tides

``workflow_event_response`` runs the workflow and streams every event as an SSE frame
(``id:`` = the event's seq, ``event:`` = its type, JSON ``data:``), with keep-alive pings;
if the client goes away, the run is cancelled.  In FastAPI, return it from a route the
same way.  Needs the ``server`` extra: pip install 'multi-agent-orchestration[server]'.
Browser side::

    const source = new EventSource("/research?topic=tides");
    source.addEventListener("token_delta", (e) => output.append(JSON.parse(e.data).data.delta));
    source.addEventListener("workflow_complete", () => source.close());
"""

from __future__ import annotations

import argparse
import asyncio
import json

from _common import run_example
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orchestration import OrchestratorConfig, ScriptedProvider
from orchestration.scripted import demo_responder
from orchestration.server.sse import workflow_event_response
from patterns import FanOutOrchestrator


async def research(request: Request) -> Response:
    """GET /research?topic=...: one fan-out run, streamed as it happens."""
    topic = request.query_params.get("topic", "tides")
    orchestrator = FanOutOrchestrator(OrchestratorConfig(num_agents=3), ScriptedProvider(demo_responder))
    return workflow_event_response(orchestrator, f"Research {topic}", title=f"Research: {topic}")  # type: ignore[no-any-return]


app = Starlette(routes=[Route("/research", research)])


async def self_check() -> int:
    """Serve on a free loopback port, read one run's stream with httpx, print what came."""
    import httpx
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    kinds: list[str] = []
    final: dict[str, object] = {}
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "GET", f"http://127.0.0.1:{port}/research", params={"topic": "ocean tides"}
        ) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kinds.append(line[7:])
            elif (
                line.startswith("data: ")
                and kinds
                and kinds[-1].startswith("workflow_")
                and kinds[-1] != "workflow_start"
            ):
                final = json.loads(line[6:])["data"]
    server.should_exit = True
    await serving
    print(f"received {len(kinds)} events: {', '.join(dict.fromkeys(kinds))}")
    print(f"status: {final.get('status')}")
    print(f"Cost: ${float(final.get('total_cost', 0.0)):.6f}")  # type: ignore[arg-type]
    return 0 if final.get("status") == "completed" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--serve", action="store_true", help="run the app on 127.0.0.1:8000 until interrupted"
    )
    args = parser.parse_args()
    if args.serve:
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=8000)
        return 0
    return asyncio.run(self_check())


if __name__ == "__main__":
    raise SystemExit(run_example(main))
