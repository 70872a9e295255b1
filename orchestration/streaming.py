"""Watching a run: SSE framing, stream-callback helpers, and event generators.

Every helper here is a stream callback (``execute_workflow(..., stream_callback=cb)``)
or turns a run into an iterator of events for a web app:

- :func:`format_sse` frames one event as Server-Sent Events: ``id:`` is the event's
  ``seq`` (so a reconnecting browser sends it back as ``Last-Event-ID``), ``event:`` its
  type, and ``data:`` its JSON; data is split on every line break, so no text can end
  the frame early or inject a field.
- :func:`create_sse_callback` writes frames to an ``asyncio.Queue``/``queue.Queue`` or a
  response stream; :func:`create_websocket_callback` sends JSON messages;
  :func:`create_progress_bar_callback` draws a terminal display (see
  :mod:`orchestration.progress`).
- :func:`stream_workflow` (async) and :func:`iter_workflow_sse` (sync, for Flask) run a
  workflow and yield its events as they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import json
import queue
import re
import threading
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from typing import TYPE_CHECKING, Any

from .events import StreamEvent

if TYPE_CHECKING:
    from .progress import ProgressDisplay

__all__ = [
    "create_progress_bar_callback",
    "create_sse_callback",
    "create_websocket_callback",
    "format_sse",
    "format_sse_comment",
    "iter_sse",
    "iter_workflow_sse",
    "sse_frames",
    "stream_workflow",
]

StreamCallback = Callable[[StreamEvent], Any]
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_UNICODE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def format_sse(event: StreamEvent, *, retry_ms: int | None = None) -> str:
    """One event as an SSE frame: ``id: <seq>``, ``event: <type>``, ``data: <json>``, blank line.

    The JSON never holds a raw line break, but data is still split into one ``data:``
    line per line (what the SSE spec requires), so the frame is correct for any payload.
    ``retry_ms`` adds a ``retry:`` field (the browser's reconnect delay).
    """
    lines = [f"id: {event.seq}", f"event: {_field(str(event.event_type))}"]
    if retry_ms is not None:
        lines.append(f"retry: {int(retry_ms)}")
    payload = event.to_json()
    if not payload.isascii():  # Unicode line separators are valid raw in JSON, but naive
        payload = payload.translate(_UNICODE_BREAKS)  # line splitters break on them: escape
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(payload))
    return "\n".join(lines) + "\n\n"


def format_sse_comment(text: str = "ping") -> str:
    """An SSE comment line (keep-alive); clients ignore it."""
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text)) + "\n"


def _field(value: str) -> str:
    return _LINE_BREAK.sub(" ", value)


def _binary(target: object) -> bool:
    return isinstance(target, (asyncio.StreamWriter, io.BufferedIOBase, io.RawIOBase)) or hasattr(
        target, "prepare"
    )  # aiohttp's StreamResponse takes bytes


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def create_sse_callback(
    target: Any, *, retry_ms: int | None = None, end_marker: bool = True
) -> Callable[[StreamEvent], Any]:
    """A stream callback that sends each event, framed by :func:`format_sse`, to ``target``.

    ``target`` may be an ``asyncio.Queue`` or ``queue.Queue`` (frames are put on it; after
    the run's final event ``None`` is put too, unless ``end_marker=False``), an object
    with a sync or async ``write`` or ``send`` (a response stream; ``drain()`` is awaited
    when present, bytes are sent to binary streams), or a plain callable.
    """
    if isinstance(target, asyncio.Queue):

        async def to_async_queue(event: StreamEvent) -> None:
            await target.put(format_sse(event, retry_ms=retry_ms))
            if end_marker and event.is_last:
                await target.put(None)

        return to_async_queue
    if isinstance(target, queue.Queue):

        def to_queue(event: StreamEvent) -> None:
            target.put(format_sse(event, retry_ms=retry_ms))
            if end_marker and event.is_last:
                target.put(None)

        return to_queue
    method = getattr(target, "write", None) or getattr(target, "send", None)
    if method is None:
        if not callable(target):
            raise TypeError(
                "create_sse_callback needs an asyncio.Queue, a queue.Queue, an object with "
                f"write()/send(), or a callable; got {type(target).__name__}"
            )
        method = target
    binary = _binary(target)
    drain = getattr(target, "drain", None)

    async def to_stream(event: StreamEvent) -> None:
        frame = format_sse(event, retry_ms=retry_ms)
        await _maybe_await(method(frame.encode("utf-8") if binary else frame))
        if drain is not None:
            await _maybe_await(drain())

    return to_stream


def create_websocket_callback(ws: Any) -> Callable[[StreamEvent], Any]:
    """A stream callback that sends each event as one JSON text message over ``ws``.

    Works with Starlette/FastAPI (``send_text``), aiohttp (``send_str``) and the
    ``websockets`` library (``send``); sync or async.  The message is the event's dict
    plus ``"id"`` (its ``seq``).
    """
    send = getattr(ws, "send_text", None) or getattr(ws, "send_str", None) or getattr(ws, "send", None)
    if send is None:
        raise TypeError(f"{type(ws).__name__} has no send_text(), send_str() or send() method")

    async def to_websocket(event: StreamEvent) -> None:
        message = {"id": event.seq, **event.to_dict()}
        await _maybe_await(send(json.dumps(message, ensure_ascii=False, default=str)))

    return to_websocket


def create_progress_bar_callback(
    console: Any = None, *, max_rows: int = 12, show_text: bool = True
) -> ProgressDisplay:
    """A terminal progress display for a run, as a stream callback.

    With a terminal: an overall bar and one row per running agent (several at once),
    tokens and cost as they arrive, with retries, fallbacks and errors printed cleanly
    above the display.  Without a terminal (a pipe, CI logs): those lines plus a plain
    final summary, no redrawing.  ``console`` is a ``rich.console.Console``.
    """
    from .progress import ProgressDisplay

    return ProgressDisplay(console, max_rows=max_rows, show_text=show_text)


async def sse_frames(
    events: AsyncIterable[StreamEvent], *, ping_interval: float | None = None
) -> AsyncIterator[str]:
    """Frame an async stream of events as SSE, adding keep-alive comments when idle."""
    iterator = aiter(events)
    pending: asyncio.Future[StreamEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=ping_interval)
            if not done:  # idle: the pending read stays in flight (cancelling it would end the source)
                yield format_sse_comment("ping")
                continue
            finished, pending = pending, None
            try:
                event = finished.result()
            except StopAsyncIteration:
                return
            yield format_sse(event)
    finally:
        if pending is not None:
            pending.cancel()


def iter_sse(events: Iterable[StreamEvent | None]) -> Iterator[str]:
    """Frame a sync iterable of events as SSE; ``None`` items become keep-alive comments."""
    for event in events:
        yield format_sse_comment("ping") if event is None else format_sse(event)


async def stream_workflow(orchestrator: Any, task: str, **kwargs: Any) -> AsyncGenerator[StreamEvent, None]:
    """Run ``orchestrator.execute_workflow(task, **kwargs)`` and yield its events as they happen.

    The stream ends with the run's last event (``StreamEvent.is_last``: the terminal event,
    or the report listing written after it); closing the generator before the terminal
    event cancels the run, closing it after waits for the reports being written.
    Errors from ``execute_workflow`` itself (e.g. an invalid task) are raised here.
    A ``stream_callback`` given too gets the events through its own queue, so a stuck one
    never holds up this generator.
    """
    run_id = kwargs.pop("run_id", None) or uuid.uuid4().hex[:16]
    extra = kwargs.pop("stream_callback", None)
    events: asyncio.Queue[StreamEvent] = asyncio.Queue()

    async def collect(event: StreamEvent) -> None:
        events.put_nowait(event)

    callbacks: Any = collect if extra is None else [collect, *([extra] if callable(extra) else extra)]
    runner = asyncio.ensure_future(
        orchestrator.execute_workflow(task, stream_callback=callbacks, run_id=run_id, **kwargs)
    )
    ended = False
    try:
        while True:
            getter = asyncio.ensure_future(events.get())
            await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                while not events.empty():
                    yield events.get_nowait()
                runner.result()  # raises what the run raised
                return
            event = getter.result()
            ended = ended or event.is_terminal
            yield event
            if event.is_last:
                await runner
                return
    finally:
        if not runner.done() and ended:
            await runner  # the run is over; its reports are being written
        elif not runner.done():
            orchestrator.cancel(run_id)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(runner), 10)
            runner.cancel()


def iter_workflow_sse(
    orchestrator: Any, task: str, *, ping_interval: float = 15.0, **kwargs: Any
) -> Generator[str, None, None]:
    """A sync generator of SSE frames for one run, for Flask and other WSGI apps.

    The workflow runs on its own event loop in a background thread; frames are yielded
    as events arrive, with keep-alive comments every ``ping_interval`` seconds.  Closing
    the generator (the client went away) cancels the run.  Needs no web framework.
    """
    run_id = kwargs.pop("run_id", None) or uuid.uuid4().hex[:16]
    frames: queue.Queue[StreamEvent | BaseException | None] = queue.Queue()
    loop_ready = threading.Event()
    loop_holder: list[asyncio.AbstractEventLoop] = []

    async def run() -> None:
        loop_holder.append(asyncio.get_running_loop())
        loop_ready.set()
        await orchestrator.execute_workflow(task, stream_callback=frames.put, run_id=run_id, **kwargs)

    def worker() -> None:
        try:
            asyncio.run(run())
        except BaseException as error:
            frames.put(error)
        finally:
            loop_ready.set()
            frames.put(None)

    thread = threading.Thread(target=worker, name=f"orchestration-sse-{run_id}", daemon=True)
    thread.start()
    finished = False
    try:
        while True:
            try:
                item = frames.get(timeout=ping_interval)
            except queue.Empty:
                yield format_sse_comment("ping")
                continue
            if item is None:
                finished = True
                return
            if isinstance(item, BaseException):
                raise item
            yield format_sse(item)
    finally:
        if not finished:
            loop_ready.wait(5)
            if loop_holder and not loop_holder[0].is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop_holder[0].call_soon_threadsafe(orchestrator.cancel, run_id)
        thread.join(timeout=10)
