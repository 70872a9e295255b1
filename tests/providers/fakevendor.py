"""A fake LLM vendor: a real HTTP server on 127.0.0.1 (port 0) for provider tests.

It speaks three wire formats on real sockets (uvicorn + starlette, in a background
thread or, with ``python fakevendor.py``, in its own process):

- OpenAI Chat Completions ``POST /v1/chat/completions`` (JSON and SSE);
- Anthropic Messages ``POST /v1/messages`` (JSON and SSE events);
- Ollama ``POST /api/chat`` (JSON and newline-delimited JSON).

Every request takes the next scripted :class:`Reply` (or the default one): a normal
answer, an HTTP error in the vendor's own error format, a raw body (HTML page,
malformed JSON), a slow answer, a huge body, or a stream fault (an error event after a
few deltas, a stream that ends early, a connection dropped mid-stream).  A reply may
carry tool calls (:meth:`Reply.tools`), sent in each vendor's format: OpenAI's
``tool_calls`` (streamed as indexed deltas whose argument text comes in fragments,
optionally interleaved across parallel calls), Anthropic's ``tool_use`` blocks (streamed
as ``input_json_delta`` fragments), Ollama's ``tool_calls`` with argument objects.
Arguments given as text are sent as written, so a reply can carry malformed JSON.  JSON is written
as Python's ``json.dumps`` writes it by default, so a hostile reply can carry what a real
vendor's JSON can: ``"\ud800"`` escapes (lone surrogates) and ``NaN``/``Infinity``
counts.  Every request is recorded (path, headers, JSON body) for assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["FakeVendor", "Recorded", "Reply"]


@dataclass(frozen=True)
class Reply:
    """What the fake server does for one request."""

    kind: str = "ok"  # ok | error | raw | huge | stream_error | cut | drop | die
    content: str = "Hello from the fake vendor."
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    usage: bool = True
    prompt_tokens: int | float = 12  # any number, NaN and infinities included
    completion_tokens: int | float | None = None  # None: one per word of content
    omit_usage: tuple[str, ...] = ()  # usage fields left out of the report
    cost: float | None = None  # OpenAI-compatible gateways' ``usage.cost``
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    error_type: str | None = None
    error_code: str | None = None
    message: str = "something went wrong"
    body: str | bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    after: int = 2  # stream faults: deltas sent before the fault
    size: int = 0  # huge: bytes
    declare_length: bool = True
    done_marker: bool = True  # OpenAI stream: send [DONE]
    signal: str = ""  # die: the signal the server process kills itself with (own process only)
    # Tool calls: {"name": ..., "arguments": dict | str (sent as written), "id": ... (optional)}
    tool_calls: tuple[dict[str, Any], ...] = ()
    fragment: int = 7  # streamed argument text: characters per fragment
    interleave: bool = False  # OpenAI stream: parallel calls' fragments in turn, not one after another
    stop_reason: str | None = None  # overrides the finish/stop reason

    @property
    def output_tokens(self) -> int | float:
        """Completion tokens reported for this reply."""
        return self.completion_tokens if self.completion_tokens is not None else len(self.content.split())

    def report(self, usage: dict[str, Any]) -> dict[str, Any]:
        """``usage`` without the fields this reply leaves out."""
        return {name: value for name, value in usage.items() if name not in self.omit_usage}

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def ok(cls, content: str = "Hello from the fake vendor.", **fields: Any) -> Reply:
        """A normal answer (``usage=False`` leaves usage out)."""
        return cls(kind="ok", content=content, **fields)

    @classmethod
    def tools(cls, *calls: dict[str, Any], content: str = "", **fields: Any) -> Reply:
        """An answer that calls tools (``content`` is text sent before the calls)."""
        return cls(kind="ok", content=content, tool_calls=tuple(calls), **fields)

    def call_id(self, index: int) -> str:
        """The id of tool call ``index`` (its own, or ``call_fake_<index>``)."""
        return str(self.tool_calls[index].get("id") or f"call_fake_{index}")

    def arguments_text(self, index: int) -> str:
        """Tool call ``index``'s arguments as JSON text (text arguments as written)."""
        arguments = self.tool_calls[index].get("arguments", {})
        return arguments if isinstance(arguments, str) else json.dumps(arguments)

    def arguments_value(self, index: int) -> Any:
        """Tool call ``index``'s arguments as a value (text that is not JSON stays text)."""
        arguments = self.tool_calls[index].get("arguments", {})
        if not isinstance(arguments, str):
            return arguments
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments

    def fragments(self, text: str) -> list[str]:
        """``text`` cut into streamed fragments of :attr:`fragment` characters."""
        size = max(1, self.fragment)
        return [text[i : i + size] for i in range(0, len(text), size)] or [""]

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "something went wrong",
        *,
        error_type: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """An HTTP error in the vendor's own JSON error format."""
        return cls(
            kind="error",
            status=status,
            message=message,
            error_type=error_type,
            error_code=code,
            headers=headers or {},
        )

    @classmethod
    def raw(cls, status: int, body: str | bytes, content_type: str = "text/html", **fields: Any) -> Reply:
        """Any body (an HTML page, broken JSON) with any status."""
        return cls(kind="raw", status=status, body=body, content_type=content_type, **fields)

    @classmethod
    def slow(cls, delay: float, **fields: Any) -> Reply:
        """A normal answer after ``delay`` seconds (ends early if the client hangs up)."""
        return cls(kind="ok", delay=delay, **fields)

    @classmethod
    def huge(cls, size: int, *, declare_length: bool = True) -> Reply:
        """A 200 body of ``size`` bytes (with or without a Content-Length)."""
        return cls(kind="huge", size=size, declare_length=declare_length)

    @classmethod
    def stream_error(
        cls, after: int = 2, error_type: str = "overloaded_error", message: str = "Overloaded"
    ) -> Reply:
        """A stream that sends ``after`` deltas, then an error object/event."""
        return cls(kind="stream_error", after=after, error_type=error_type, message=message)

    @classmethod
    def cut(cls, after: int = 2) -> Reply:
        """A stream that ends cleanly after ``after`` deltas, without its end marker."""
        return cls(kind="cut", after=after)

    @classmethod
    def drop(cls, after: int = 2) -> Reply:
        """A stream whose connection is dropped after ``after`` deltas."""
        return cls(kind="drop", after=after)


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() in the server when the request arrived


class _Dropped(Exception):
    """Raised inside a streaming body to make uvicorn drop the connection."""


def _words(content: str) -> list[str]:
    words = content.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]


class FakeVendor:
    """The server.  Use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self, *, record: bool = True) -> None:
        self.default = Reply.ok()
        #: The reply to a request that offers tools when nothing is scripted (None: ``default``).
        self.tool_default: Reply | None = None
        self.record = record
        self.requests: list[Recorded] = []
        self._script: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/v1/messages", self._anthropic, methods=["POST"]),
                Route("/api/chat", self._ollama, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        self.app.add_exception_handler(404, self._not_found)

    # -- control -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests (then the default reply)."""
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        """Forget queued replies and recorded requests."""
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.default = Reply.ok()
            self.tool_default = None

    def paths(self) -> list[str]:
        """The paths of the recorded requests, in order."""
        return [r.path for r in self.requests]

    def _next(self, request: Request, body: Any, at: float) -> Reply:
        with self._lock:
            if self.record:
                self.requests.append(Recorded(request.url.path, dict(request.headers), body, at))
            if self._script:
                return self._script.popleft()
            if self.tool_default is not None and isinstance(body, dict) and body.get("tools"):
                return self.tool_default
            return self.default

    def start(self, port: int = 0) -> FakeVendor:
        """Serve in a background thread; returns when the port is bound."""
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=port,
            log_level="critical",
            lifespan="off",
            timeout_graceful_shutdown=1,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fakevendor", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake vendor server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeVendor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- shared behaviour ----------------------------------------------------------------

    async def _common(
        self, request: Request, render_error: Callable[[Reply], Any], id_headers: dict[str, str]
    ) -> tuple[Reply, Any, Response | None]:
        at = time.monotonic()  # the server's clock when the request reached the handler
        try:
            body = await request.json()
        except ValueError:
            body = None
        reply = self._next(request, body, at)
        if reply.kind == "die":  # in this thread, as an illegal instruction would
            signal.pthread_kill(threading.get_ident(), signal.Signals[reply.signal])
        if reply.delay:
            deadline = time.monotonic() + reply.delay
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    break
                await asyncio.sleep(0.02)
        if reply.kind == "error":
            headers = {**id_headers, **reply.headers}
            return reply, body, _json(render_error(reply), status=reply.status, headers=headers)
        if reply.kind == "raw":
            return (
                reply,
                body,
                Response(
                    reply.body, status_code=reply.status, media_type=reply.content_type, headers=reply.headers
                ),
            )
        if reply.kind == "huge":
            return reply, body, _huge(reply)
        return reply, body, None

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return HTMLResponse(
            "<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>", status_code=404
        )

    async def _models(self, request: Request) -> Response:
        return _json({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    # -- OpenAI --------------------------------------------------------------------------

    async def _openai(self, request: Request) -> Response:
        def error(reply: Reply) -> Any:
            return {
                "error": {
                    "message": reply.message,
                    "type": reply.error_type,
                    "code": reply.error_code,
                    "param": None,
                }
            }

        reply, body, early = await self._common(request, error, {"x-request-id": "req_fake_openai"})
        if early is not None:
            return early
        model = (body or {}).get("model", "fake")
        headers = {"x-request-id": "req_fake_openai", **reply.headers}
        usage = reply.report(
            {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.output_tokens,
                "total_tokens": reply.prompt_tokens + reply.output_tokens,
                "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
                "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
            }
        )
        if reply.cost is not None:
            usage["cost"] = reply.cost
        finish = reply.stop_reason or ("tool_calls" if reply.tool_calls else "stop")
        if not (body or {}).get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.tool_calls:
                message["content"] = reply.content or None
                message["tool_calls"] = [
                    {
                        "id": reply.call_id(i),
                        "type": "function",
                        "function": {"name": call["name"], "arguments": reply.arguments_text(i)},
                    }
                    for i, call in enumerate(reply.tool_calls)
                ]
            data: dict[str, Any] = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            }
            if reply.usage:
                data["usage"] = usage
            return _json(data, headers=headers)
        include_usage = bool(((body or {}).get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload)}\n\n"

        async def events() -> AsyncIterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            for i, word in enumerate(_words(reply.content)):
                if reply.kind != "ok" and i == reply.after:
                    break
                yield chunk({"content": word})
            if reply.kind == "stream_error":
                err = {"error": {"message": reply.message, "type": reply.error_type, "code": None}}
                yield f"data: {json.dumps(err)}\n\n"
                return
            if reply.kind == "cut":
                return
            if reply.kind == "drop":
                raise _Dropped
            for piece in _openai_tool_deltas(reply):
                yield chunk({"tool_calls": [piece]})
            yield chunk({}, finish)
            if include_usage and reply.usage:
                yield f"data: {json.dumps({'id': 'chatcmpl-fake', 'choices': [], 'usage': usage})}\n\n"
            if reply.done_marker:
                yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    # -- Anthropic -----------------------------------------------------------------------

    async def _anthropic(self, request: Request) -> Response:
        def error(reply: Reply) -> Any:
            return {
                "type": "error",
                "error": {"type": reply.error_type or "api_error", "message": reply.message},
            }

        reply, body, early = await self._common(request, error, {"request-id": "req_fake_anthropic"})
        if early is not None:
            return early
        model = (body or {}).get("model", "fake")
        headers = {"request-id": "req_fake_anthropic", **reply.headers}
        usage: dict[str, Any] = reply.report(
            {
                "input_tokens": reply.prompt_tokens,
                "cache_creation_input_tokens": reply.cache_write_tokens,
                "cache_read_input_tokens": reply.cached_tokens,
                "output_tokens": reply.output_tokens,
            }
        )
        stop_reason = reply.stop_reason or ("tool_use" if reply.tool_calls else "end_turn")
        if not (body or {}).get("stream"):
            blocks: list[dict[str, Any]] = []
            if reply.content or not reply.tool_calls:
                blocks.append({"type": "text", "text": reply.content})
            blocks.extend(
                {
                    "type": "tool_use",
                    "id": reply.call_id(i),
                    "name": call["name"],
                    "input": reply.arguments_value(i),
                }
                for i, call in enumerate(reply.tool_calls)
            )
            data: dict[str, Any] = {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": blocks,
                "stop_reason": stop_reason,
                "stop_sequence": None,
            }
            if reply.usage:
                data["usage"] = usage
            return _json(data, headers=headers)

        def event(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

        async def events() -> AsyncIterator[str]:
            start: dict[str, Any] = {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
            }
            if reply.usage:
                start["usage"] = {**usage, "output_tokens": 1} if "output_tokens" in usage else usage
            yield event("message_start", {"message": start})
            text_block = bool(reply.content) or not reply.tool_calls
            if text_block:
                yield event(
                    "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
                )
            yield event("ping", {})
            for i, word in enumerate(_words(reply.content) if text_block else ()):
                if reply.kind != "ok" and i == reply.after:
                    break
                yield event(
                    "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word}}
                )
            if reply.kind == "stream_error":
                yield event("error", {"error": {"type": reply.error_type, "message": reply.message}})
                return
            if reply.kind == "cut":
                return
            if reply.kind == "drop":
                raise _Dropped
            if text_block:
                yield event("content_block_stop", {"index": 0})
            for i, call in enumerate(reply.tool_calls):
                index = i + int(text_block)
                block = {"type": "tool_use", "id": reply.call_id(i), "name": call["name"], "input": {}}
                yield event("content_block_start", {"index": index, "content_block": block})
                for piece in reply.fragments(reply.arguments_text(i)):
                    yield event(
                        "content_block_delta",
                        {"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}},
                    )
                yield event("content_block_stop", {"index": index})
            delta: dict[str, Any] = {"delta": {"stop_reason": stop_reason, "stop_sequence": None}}
            if reply.usage and "output_tokens" in usage:
                delta["usage"] = {"output_tokens": reply.output_tokens}
            yield event("message_delta", delta)
            yield event("message_stop", {})

        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    # -- Ollama --------------------------------------------------------------------------

    async def _ollama(self, request: Request) -> Response:
        reply, body, early = await self._common(request, lambda r: {"error": r.message}, {})
        if early is not None:
            return early
        model = (body or {}).get("model", "fake")
        final: dict[str, Any] = {
            "model": model,
            "created_at": "2026-01-01T00:00:00Z",
            "done": True,
            "done_reason": "stop",
            "total_duration": 1000,
        }
        if reply.usage:
            final.update(
                reply.report({"prompt_eval_count": reply.prompt_tokens, "eval_count": reply.output_tokens})
            )
        calls = [
            {"function": {"index": i, "name": call["name"], "arguments": reply.arguments_value(i)}}
            | ({"id": call["id"]} if call.get("id") else {})
            for i, call in enumerate(reply.tool_calls)
        ]
        if not (body or {}).get("stream", True):
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if calls:
                message["tool_calls"] = calls
            return _json({**final, "message": message})

        async def lines() -> AsyncIterator[str]:
            for i, word in enumerate(_words(reply.content)):
                if reply.kind != "ok" and i == reply.after:
                    break
                piece = {"model": model, "message": {"role": "assistant", "content": word}, "done": False}
                yield json.dumps(piece) + "\n"
            if reply.kind == "stream_error":
                yield json.dumps({"error": reply.message}) + "\n"
                return
            if reply.kind == "cut":
                return
            if reply.kind == "drop":
                raise _Dropped
            if calls:  # Ollama sends each answer's calls whole, in a chunk of their own
                message = {"role": "assistant", "content": "", "tool_calls": calls}
                yield json.dumps({"model": model, "message": message, "done": False}) + "\n"
            yield json.dumps({**final, "message": {"role": "assistant", "content": ""}}) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson", headers=reply.headers)


#: What the fake vendor's own process answers to a request with tools: two parallel calls.
BENCH_TOOL_CALLS = (
    {"id": "call_w", "name": "weather", "arguments": {"city": "Paris", "days": 3, "units": "celsius"}},
    {"id": "call_t", "name": "local_time", "arguments": {"city": "Tokyo", "format": "24h"}},
)


def _openai_tool_deltas(reply: Reply) -> list[dict[str, Any]]:
    """The ``tool_calls`` delta entries of an OpenAI stream: each call's first entry has
    its index, id and name, then its argument text follows in fragments."""
    per_call = []
    for i, call in enumerate(reply.tool_calls):
        pieces: list[dict[str, Any]] = [
            {
                "index": i,
                "id": reply.call_id(i),
                "type": "function",
                "function": {"name": call["name"], "arguments": ""},
            }
        ]
        pieces.extend(
            {"index": i, "function": {"arguments": p}} for p in reply.fragments(reply.arguments_text(i))
        )
        per_call.append(pieces)
    if not reply.interleave:
        return [piece for pieces in per_call for piece in pieces]
    interleaved = []
    for round_ in range(max((len(p) for p in per_call), default=0)):
        interleaved.extend(pieces[round_] for pieces in per_call if round_ < len(pieces))
    return interleaved


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``data`` as JSON the way ``json.dumps`` writes it by default: ASCII with ``\\u``
    escapes (lone surrogates included) and ``NaN``/``Infinity`` allowed, as a careless or
    hostile vendor may send."""
    return Response(json.dumps(data), status_code=status, media_type="application/json", headers=headers)


def _huge(reply: Reply) -> Response:
    block = b"x" * 65536

    async def body() -> AsyncIterator[bytes]:
        sent = 0
        while sent < reply.size:
            piece = block[: reply.size - sent]
            sent += len(piece)
            yield piece

    headers = {"content-length": str(reply.size)} if reply.declare_length else {}
    return StreamingResponse(body(), status_code=200, media_type="application/json", headers=headers)


def main(argv: list[str] | None = None) -> None:
    """Serve in this process (benchmarks, lifecycle tests): prints ``PORT <n>``, runs until
    terminated (SIGTERM or Ctrl-C)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--die-with", metavar="SIGNAL", help="kill this process with SIGNAL on each request")
    args = parser.parse_args(argv)
    vendor = FakeVendor(record=False)
    vendor.default = replace(vendor.default, content="Hello from the fake vendor, served fast.")
    vendor.tool_default = Reply.tools(*BENCH_TOOL_CALLS)
    if args.die_with:
        vendor.default = replace(vendor.default, kind="die", signal=args.die_with)
    vendor.start(port=args.port)
    print(f"PORT {vendor.port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        vendor.stop()


if __name__ == "__main__":
    main()
