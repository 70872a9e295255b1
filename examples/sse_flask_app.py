"""Stream a run from a Flask (or any WSGI) app with Server-Sent Events.

    python examples/sse_flask_app.py            # self-check: stream one run, no Flask needed
    python examples/sse_flask_app.py --serve    # needs Flask: pip install flask
                                                # then open http://127.0.0.1:5000/research?topic=tides

``iter_workflow_sse`` is a plain generator of SSE frames: the workflow runs on its own
event loop in a background thread, frames are yielded as events happen (``id:`` = the
event's seq), keep-alive comments fill quiet periods, and closing the generator (the
client went away) cancels the run.  It needs no web framework, so the same generator
works in Django's ``StreamingHttpResponse`` or any WSGI server.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from _common import run_example

from orchestration import OrchestratorConfig, ScriptedProvider
from orchestration.scripted import demo_responder
from orchestration.streaming import iter_workflow_sse
from patterns import FanOutOrchestrator


def research_stream(topic: str) -> Any:
    """The SSE frames of one fan-out run on ``topic``."""
    orchestrator = FanOutOrchestrator(OrchestratorConfig(num_agents=3), ScriptedProvider(demo_responder))
    return iter_workflow_sse(orchestrator, f"Research {topic}", title=f"Research: {topic}", ping_interval=15)


def create_flask_app() -> Any:
    """The Flask app (imported only here, so the rest of this file runs without Flask)."""
    from flask import Flask, Response, request, stream_with_context  # type: ignore[import-not-found]

    flask_app = Flask(__name__)

    @flask_app.get("/research")  # type: ignore[untyped-decorator]
    def research() -> Any:
        frames = research_stream(request.args.get("topic", "tides"))
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return Response(stream_with_context(frames), mimetype="text/event-stream", headers=headers)

    return flask_app


def self_check() -> int:
    """Consume the generator as a WSGI server would and report what it produced."""
    kinds: list[str] = []
    final: dict[str, Any] = {}
    for frame in research_stream("ocean tides"):
        fields = dict(line.split(": ", 1) for line in frame.strip().splitlines() if not line.startswith(":"))
        if "event" in fields:
            kinds.append(fields["event"])
            event = json.loads(fields["data"])
            if fields["event"].startswith("workflow_") and fields["event"] != "workflow_start":
                final = event["data"]
    print(f"received {len(kinds)} events: {', '.join(dict.fromkeys(kinds))}")
    print(f"status: {final.get('status')}")
    print(f"Cost: ${float(final.get('total_cost', 0.0)):.6f}")
    return 0 if final.get("status") == "completed" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="run the Flask app on 127.0.0.1:5000")
    args = parser.parse_args()
    if args.serve:
        create_flask_app().run(host="127.0.0.1", port=5000, threaded=True)
        return 0
    return self_check()


if __name__ == "__main__":
    raise SystemExit(run_example(main))
