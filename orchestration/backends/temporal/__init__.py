"""Runs on Temporal workers (extra ``temporal``): one run's nodes spread over many machines.

A run of any graph, workflow, pattern or orchestrator (named by import path, see
:mod:`.targets`) executes as a Temporal workflow whose logic is the engine's pure core
(:mod:`.workflow`); each node's work is an activity that heartbeats, so when a worker
dies Temporal hands the node to another one (:mod:`.activities`).  The run's events go
to the workers' store as for a local run.

```python
from orchestration.backends.temporal import TemporalBackend, run_worker
```

Importing this package does not import temporalio; its names do, with a one-line error
naming the extra when it is missing.  ``import orchestration`` never loads any of it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEFAULT_TASK_QUEUE",
    "TemporalBackend",
    "TemporalRunError",
    "run_worker",
    "stored_result",
    "worker_for",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
