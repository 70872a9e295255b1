"""The optional server: JSON API, SSE with replay, and a live run page.

Needs the ``server`` extra (from a checkout: ``pip install -e '.[server]'``;
starlette, sse-starlette, uvicorn).  Importing this package is cheap; the web
libraries load when :func:`create_app` or :func:`serve` is called.

- :func:`create_app` builds the Starlette app (embed it, or test it).
- :func:`serve` runs it with uvicorn (``orchestrate serve`` calls it); binds 127.0.0.1.
- :class:`EventBroadcaster` / :func:`follow_run`: live fan-out with replay, framework-free.
- :mod:`orchestration.server.sse`: an ``EventSourceResponse`` for your own app.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.util
import secrets
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .broadcast import EventBroadcaster, Subscription, follow_run

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..stores.base import RunStore
    from .runs import OrchestratorFactory

__all__ = [
    "EventBroadcaster",
    "ServerDependencyError",
    "Subscription",
    "create_app",
    "follow_run",
    "generate_token",
    "serve",
]

_EXTRA = "install the server extra: pip install -e '.[server]' (from a checkout of the project)"


class ServerDependencyError(ImportError):
    """The ``server`` extra is not installed (the message says how to install it)."""


def _require_server() -> None:
    missing = [m for m in ("starlette", "sse_starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join(m.replace("_", "-") for m in missing)
        raise ServerDependencyError(f"the server needs {names}; {_EXTRA}")


def generate_token() -> str:
    """A fresh random access token (URL-safe)."""
    return secrets.token_urlsafe(24)


def create_app(
    orchestrator_factory: OrchestratorFactory | None = None,
    store: RunStore | None = None,
    token: str | None = None,
    **options: Any,
) -> Starlette:
    """The server's Starlette app; see :func:`orchestration.server.app.create_app`."""
    _require_server()
    from .app import create_app as _create_app

    return _create_app(orchestrator_factory, store, token, **options)


def _log_config() -> dict[str, Any]:
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_token"] = {"()": "orchestration.server.auth.RedactTokenFilter"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("redact_token")
    return config


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a port in use is a one-line ConfigError."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"cannot listen on {host}:{port}: the port is in use; stop the other server or pass "
                "--port with another number (--port 0 picks a free one)"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.set_inheritable(True)
    return sock


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    *,
    store: RunStore | None = None,
    orchestrator_factory: OrchestratorFactory | None = None,
    reports_dir: str | Path = "reports",
    open_message: bool = True,
    allow_patterns: Sequence[str] | None = None,
    max_body_bytes: int | None = None,
    max_task_chars: int | None = None,
    workflows: Sequence[Any] = (),
) -> None:
    """Run the server until interrupted (blocking).

    Binds ``127.0.0.1`` unless told otherwise; a port in use raises ConfigError.  Without
    ``token`` one is generated and the page's address (which carries it) is printed
    once to stderr, never logged.  ``store`` defaults to the embedded SQLite store
    (``.orchestration/runs.db``), so runs and their event streams survive a restart.
    ``allow_patterns`` lists the patterns requests may run (default: the built-ins);
    ``max_body_bytes`` and ``max_task_chars`` bound a ``POST /runs``; ``workflows``: the
    Workflow classes whose paused runs go on here once answered (:mod:`.resuming`).
    """
    _require_server()
    import uvicorn

    from ..stores import default_store
    from .guard import DEFAULT_MAX_HEADER_BYTES

    generated = token is None
    access_token = token or generate_token()
    limits = {"max_body_bytes": max_body_bytes, "max_task_chars": max_task_chars}
    sock = _listen(host, port)  # first: a port in use fails before anything is created
    try:
        app = create_app(
            orchestrator_factory, store if store is not None else default_store(), access_token,
            reports_dir=reports_dir, allow_patterns=allow_patterns, workflows=workflows,
            **{name: value for name, value in limits.items() if value is not None},
        )  # fmt: skip
    except BaseException:
        sock.close()
        raise
    # h11 (not httptools) so the header cap holds at the protocol level too: a client
    # cannot make the server buffer an unbounded request head.
    config = uvicorn.Config(
        app, host=host, port=port, log_config=_log_config(), lifespan="on", http="h11",
        h11_max_incomplete_event_size=DEFAULT_MAX_HEADER_BYTES,
    )  # fmt: skip
    server = uvicorn.Server(config)

    async def run() -> None:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no event for it
            await asyncio.sleep(0.05)
        if server.started and open_message:
            bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
            shown = f"[{host}]" if ":" in host else host
            # printed once for the person who started the server; never logged
            secret = access_token if generated else "<your token>"
            print(f"Live run page: http://{shown}:{bound}/?token={secret}", file=sys.stderr, flush=True)
        await serving

    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after its graceful shutdown
        asyncio.run(run())
