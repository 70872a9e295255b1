"""The server's JSON API, SSE endpoint and live run page (Starlette).

=======================================  ==================================================
``POST /runs``                            start a run: ``{"pattern", "task", "provider",
                                          "model", "options"}`` -> 202 ``{"run_id"}``
``GET /runs``                             list runs (``?status=``, ``?limit=``)
``GET /runs/{id}``                        ``{"run": summary, "result": ..., "documents"}``
``POST /runs/{id}/cancel``                cancel a run -> ``{"cancelled": bool}``
``POST /runs/{id}/answers``               answer a waiting node's question: ``{"node",
                                          "answer", "by"}`` -> ``{"recorded": true,
                                          "route": "recorded"|"delivered"|"queued",
                                          "resumed": bool}`` (the server continues a
                                          run it can rebuild: :mod:`.resuming`)
``GET /runs/{id}/events``                 Server-Sent Events: every event after
                                          ``Last-Event-ID`` (header, or ``?last_event_id=``),
                                          then live; 204 when the run is over and nothing
                                          is left
``GET /runs/{id}/documents/{n}``          a generated report file
``GET /``                                 the live run page (``/?run=<id>``)
=======================================  ==================================================

Every route needs the token, and writes need it in a header (see
:mod:`orchestration.server.auth`); sizes and origins are checked first
(:mod:`orchestration.server.guard`).  Only the patterns registered when the app is built
can be run: a request names one, it never gives an import path.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..engine.state import RunState
from ..errors import GraphError, OrchestrationError
from ..events import StreamEvent
from ..models import TaskStatus
from ..stores.base import RunStore
from ..streaming import format_sse
from ..text import valid_text
from .auth import TokenAuthMiddleware, csrf_token
from .broadcast import EventBroadcaster, follow_run_batches
from .guard import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    BodyLimitMiddleware,
    RequestGuardMiddleware,
    is_json_media_type,
)
from .resuming import Resumers
from .runs import (
    DEFAULT_MAX_TASK_CHARS,
    OrchestratorFactory,
    RunManager,
    RunRequest,
    default_orchestrator_factory,
    register_patterns,
)

if TYPE_CHECKING:
    from ..graph import Graph
    from ..workflow import Workflow

__all__ = ["create_app"]

STATIC_DIR = Path(__file__).parent / "static"
_FRAME_CACHE = 20_000
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9._~-]{8,}$")
_SEQ = re.compile(r"^[0-9]{1,15}$")  # an event seq; anything longer is not one of ours
_MAX_JSON_DEPTH = 32
_CSRF_SLOT = b'<meta name="csrf-token" content="">'
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _last_event_id(request: Request) -> int | None:
    raw = (request.headers.get("last-event-id") or request.query_params.get("last_event_id") or "0").strip()
    return int(raw) if _SEQ.match(raw) else None


def _too_deep(value: Any, limit: int) -> bool:
    """True when ``value`` nests containers deeper than ``limit`` (an explicit stack: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _valid_text(value: Any) -> Any:
    """``value`` with every string made valid UTF-8 (lone surrogates from ``\\ud800`` escapes replaced).

    Recursion is bounded: bodies deeper than ``_MAX_JSON_DEPTH`` are refused first.
    """
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        return {_valid_text(k): _valid_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_valid_text(item) for item in value]
    return value


def _inside(path: Path, root: Path) -> Path | None:
    """``path`` resolved (symlinks followed) when it is a file under ``root``; else None."""
    resolved = path.resolve()
    return resolved if resolved.is_relative_to(root.resolve()) and resolved.is_file() else None


class _Api:
    def __init__(
        self,
        store: RunStore,
        manager: RunManager,
        broadcaster: EventBroadcaster,
        *,
        ping: float,
        poll: float,
        page: bytes,
        reports: Path,
        max_task_chars: int,
    ) -> None:
        self.store = store
        self.manager = manager
        self.broadcaster = broadcaster
        self.ping = ping
        self.poll = poll
        self.page_html = page
        self.reports = reports
        self.max_task_chars = max_task_chars
        self._frames: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def frame(self, event: StreamEvent) -> bytes:
        """The event's SSE frame, encoded once however many clients receive it."""
        key = (event.run_id, event.seq)
        cached = self._frames.get(key)
        if cached is None:
            cached = self._frames[key] = format_sse(event).encode("utf-8")
            if len(self._frames) > _FRAME_CACHE:
                self._frames.popitem(last=False)
        return cached

    async def page(self, request: Request) -> Response:
        return Response(self.page_html, media_type="text/html; charset=utf-8", headers=_SECURITY_HEADERS)

    async def start_run(self, request: Request) -> Response:
        if not is_json_media_type(request.headers.get("content-type")):
            return _error(415, "send the run as JSON (Content-Type: application/json)")
        try:
            body = json.loads(await request.body())
        except RecursionError:
            return _error(400, f"the JSON body is nested too deeply (at most {_MAX_JSON_DEPTH} levels)")
        except ValueError:
            return _error(400, "the body is not valid JSON")
        if _too_deep(body, _MAX_JSON_DEPTH):
            return _error(400, f"the JSON body is nested too deeply (at most {_MAX_JSON_DEPTH} levels)")
        try:
            run_request = RunRequest.from_json(_valid_text(body))
        except (OrchestrationError, ValueError, TypeError) as error:
            return _error(400, str(error))
        if len(run_request.task) > self.max_task_chars:
            return _error(
                413,
                f"the task is {len(run_request.task)} characters; this server takes at most {self.max_task_chars}",
            )
        try:
            run_id = self.manager.start(run_request)
        except (OrchestrationError, ValueError, TypeError) as error:
            return _error(400, str(error))
        return JSONResponse({"run_id": run_id}, status_code=202, headers={"location": f"/runs/{run_id}"})

    async def list_runs(self, request: Request) -> Response:
        status_name = request.query_params.get("status")
        try:
            status = TaskStatus(status_name) if status_name else None
            limit = max(1, min(1000, int(request.query_params.get("limit", "100"))))
        except ValueError:
            return _error(400, "status must be a run status and limit a number")
        runs = await self.store.list_runs(status=status, limit=limit)
        return JSONResponse({"runs": [run.to_dict() for run in runs]})

    async def get_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        summary = await self.store.get_run(run_id)
        if summary is None:
            if self.broadcaster.is_live(run_id):
                return JSONResponse({"run": {"run_id": run_id, "status": "pending"}, "result": None})
            return _error(404, "no such run")
        result = RunState.from_events(run_id, await self.store.events(run_id)).to_result()
        documents = [
            {"format": d.format, "url": f"/runs/{run_id}/documents/{i}", "size_bytes": d.size_bytes,
             "name": Path(d.path).name}
            for i, d in enumerate(result.generated_documents)
        ]  # fmt: skip
        return JSONResponse(
            {
                "run": {**summary.to_dict(), "running_here": self.manager.is_running(run_id)},
                "result": result.to_dict(),
                "documents": documents,
            }
        )

    async def document(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        index = request.path_params["index"]
        events = await self.store.events(run_id)
        documents = RunState.from_events(run_id, events).to_result().generated_documents
        if not events or index >= len(documents):
            return _error(404, "no such document")
        # Only files under the reports folder are served, whatever a stored event names.
        path = await asyncio.to_thread(_inside, Path(documents[index].path), self.reports)
        if path is None:
            return _error(404, "no such document (its file is gone or is outside the reports folder)")
        media = "application/pdf" if path.suffix == ".pdf" else "text/markdown; charset=utf-8"
        # Model-written files: never sniffed into HTML, never given an origin to act in.
        headers = {
            "x-content-type-options": "nosniff",
            "content-security-policy": "sandbox",
            "cache-control": "no-store",
        }
        return FileResponse(path, media_type=media, filename=path.name, headers=headers)

    async def answer(self, request: Request) -> Response:
        """Answer the question a node waits on: delivered to the process driving the run, or
        recorded for a run nobody drives (it goes on when resumed)."""
        from ..graph import answer

        if not is_json_media_type(request.headers.get("content-type")):
            return _error(415, "send the answer as JSON (Content-Type: application/json)")
        try:
            body = json.loads(await request.body())
        except RecursionError:
            return _error(400, f"the JSON body is nested too deeply (at most {_MAX_JSON_DEPTH} levels)")
        except ValueError:
            return _error(400, "the body is not valid JSON")
        if _too_deep(body, _MAX_JSON_DEPTH):
            return _error(400, f"the JSON body is nested too deeply (at most {_MAX_JSON_DEPTH} levels)")
        body = _valid_text(body)
        if not isinstance(body, dict) or not isinstance(body.get("node"), str) or "answer" not in body:
            return _error(400, 'send {"node": "<node id>", "answer": <any JSON value>}')
        by = body.get("by", "")
        if not isinstance(by, str) or len(by) > 200:
            return _error(400, '"by" must be a short string naming who answers')
        run_id = request.path_params["run_id"]
        summary = await self.store.get_run(run_id)
        if summary is None:
            return _error(404, "no such run")
        try:
            route = await answer(self.store, run_id, body["node"], body["answer"], by=by)
        except GraphError as error:
            return _error(409, str(error))
        # Recorded for a run nobody drives: it goes on here if this server can rebuild it.
        resumed = route == "recorded" and await self.manager.go_on(run_id, summary.orchestrator)
        return JSONResponse({"recorded": True, "node": body["node"], "route": route, "resumed": resumed})

    async def cancel(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        summary = await self.store.get_run(run_id)
        if summary is None and not self.broadcaster.is_live(run_id):
            return _error(404, "no such run")
        if summary is not None and summary.status.is_terminal:
            return JSONResponse({"cancelled": False, "status": str(summary.status)}, status_code=409)
        return JSONResponse({"cancelled": await self.manager.cancel(run_id)})

    async def events(self, request: Request) -> Response:
        from sse_starlette.sse import EventSourceResponse

        run_id = request.path_params["run_id"]
        after = _last_event_id(request)
        if after is None:
            return _error(400, "Last-Event-ID must be a non-negative integer (an event's seq)")
        summary = await self.store.get_run(run_id)
        if summary is None and not self.broadcaster.is_live(run_id):
            return _error(404, "no such run")
        if summary is not None and summary.status.is_terminal and after >= summary.last_seq:
            return Response(status_code=204)  # over, nothing left: browsers stop reconnecting

        async def frames() -> AsyncIterator[bytes]:
            # The first frame also carries "retry:" (browsers reconnect after 1 s, sending
            # Last-Event-ID); a retry-only block would reach some clients as an empty event.
            prefix = b"retry: 1000\n"
            batches = follow_run_batches(self.store, self.broadcaster, run_id, after, poll_interval=self.poll)
            async for batch in batches:
                yield prefix + b"".join(self.frame(event) for event in batch)
                prefix = b""

        return EventSourceResponse(
            frames(), ping=self.ping, sep="\n", send_timeout=30, headers={"cache-control": "no-store"}
        )


def create_app(
    orchestrator_factory: OrchestratorFactory | None = None,
    store: RunStore | None = None,
    token: str | None = None,
    *,
    reports_dir: str | Path = "reports",
    ping_interval: float = 15.0,
    poll_interval: float = 1.0,
    allow_patterns: Sequence[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    max_task_chars: int = DEFAULT_MAX_TASK_CHARS,
    workflows: Sequence[type[Workflow]] = (),
    graphs: Mapping[str, tuple[Graph, Mapping[Any, Any]]] | None = None,
    run_options: Mapping[str, Any] | None = None,
) -> Starlette:
    """The server as a Starlette app.

    ``orchestrator_factory(request, store)`` builds the orchestrator for a ``POST /runs``
    (default: the named pattern and provider, configured from the options); it must use
    ``store``.  The default factory runs only the patterns registered here:
    ``allow_patterns`` (built-in names or ``module:Class``, imported now), or every
    built-in when it is None.  ``store`` defaults to an in-memory store; ``token`` is
    required (use :func:`orchestration.server.generate_token`).  Documents are served only
    from ``reports_dir``.  A paused run answered through the API goes on in this server
    when it can rebuild it: ``workflows`` (Workflow classes), ``graphs`` (``{name: (graph,
    handlers)}`` by the name the runs were run under), planner runs it started; with
    ``run_options`` (``provider``, ``config``, ``guardrails``...) for those workflow and
    graph runs (see :mod:`orchestration.server.resuming`).  The app's state holds ``store``, ``broadcaster`` and ``runs``
    (the :class:`RunManager`) for embedding and tests.
    """
    if not token or not _TOKEN_CHARS.match(token):
        raise ValueError("token must be at least 8 characters of letters, digits and -._~")
    if max_task_chars < 1:
        raise ValueError("max_task_chars must be at least 1")
    from ..stores.memory import MemoryStore

    run_store: RunStore = store if store is not None else MemoryStore()
    reports = Path(reports_dir)
    if orchestrator_factory is None:
        patterns = register_patterns(allow_patterns)

        def orchestrator_factory(request: RunRequest, store: RunStore) -> Any:
            return default_orchestrator_factory(request, store, reports_dir=reports, patterns=patterns)

    page = (STATIC_DIR / "run.html").read_bytes()
    if _CSRF_SLOT not in page:
        raise RuntimeError("run.html lost its csrf-token slot")
    page = page.replace(_CSRF_SLOT, _CSRF_SLOT.replace(b'""', f'"{csrf_token(token)}"'.encode()))
    broadcaster = EventBroadcaster()
    resumers = Resumers(run_store, workflows=workflows, graphs=graphs, run_options=run_options)
    manager = RunManager(run_store, orchestrator_factory, broadcaster, resumers)
    api = _Api(
        run_store, manager, broadcaster, ping=ping_interval, poll=poll_interval, page=page, reports=reports,
        max_task_chars=max_task_chars,
    )  # fmt: skip

    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await manager.shutdown()

    routes = [
        Route("/", api.page, methods=["GET"]),
        Route("/runs", api.start_run, methods=["POST"]),
        Route("/runs", api.list_runs, methods=["GET"]),
        Route("/runs/{run_id}", api.get_run, methods=["GET"]),
        Route("/runs/{run_id}/cancel", api.cancel, methods=["POST"]),
        Route("/runs/{run_id}/answers", api.answer, methods=["POST"]),
        Route("/runs/{run_id}/events", api.events, methods=["GET"]),
        Route("/runs/{run_id}/documents/{index:int}", api.document, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.store = run_store
    app.state.broadcaster = broadcaster
    app.state.runs = manager
    # Added innermost first: guard (sizes, origin, media type) -> token -> body limit -> routes.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes)
    app.add_middleware(TokenAuthMiddleware, token=token)
    app.add_middleware(RequestGuardMiddleware, max_header_bytes=max_header_bytes)
    return app
