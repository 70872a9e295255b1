"""A process the graph crash tests kill: the resume scenario (tests/graph/scenario.py) on a store.

``python -m tests.graph.crash_worker STORE RUN_ID LOG KILL`` runs or resumes the run.  Each
handler appends ``node visit`` to LOG as it starts.  KILL lists, comma-separated, where the
process kills itself with SIGKILL, at whichever comes first: ``node:ID:VISIT`` (in that
handler, after its changes to the graph, before it returns) and ``events:N`` (once N more
events are stored, seen from the stream callback, which runs after the store has them);
``none`` for nowhere.  A process that gets to the end prints the run's
:func:`~tests.graph.scenario.snapshot` as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from orchestration.events import StreamEvent
from orchestration.stores import open_store

from . import scenario


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def main(store_url: str, run_id: str, log_path: str, kill: str) -> None:
    store = open_store(store_url)
    stored = len(await store.events(run_id))
    points = set(kill.split(","))
    after = next((stored + int(p.split(":")[1]) for p in points if p.startswith("events:")), None)

    def log(node: str, visit: int) -> None:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{node} {visit}\n".encode())
        finally:
            os.close(fd)

    def before_return(node: str, visit: int) -> None:
        if f"node:{node}:{visit}" in points:
            _die()

    def on_event(event: StreamEvent) -> None:
        if after is not None and event.seq >= after:
            _die()

    try:
        await scenario.graph().run(
            scenario.handlers(log, before_return),
            payload={"topic": "tides"},
            store=store,
            run_id=run_id,
            stream_callback=on_event,
        )
        print(json.dumps(scenario.snapshot(scenario.folded(await store.events(run_id)))))
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
