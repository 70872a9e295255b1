"""The local provider: guarded extra, server lifecycle, and (marked live) a real Gemma round trip."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
from fakevendor import FakeVendor
from fakevendor import __file__ as FAKEVENDOR_PATH
from provider_helpers import request

from orchestration.errors import ConfigError, ServiceUnavailableError
from providers import local
from providers.local import LocalModelServer, LocalProvider
from tests.conftest import require_service


@pytest.fixture
def extra_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the ``local`` extra is installed (these tests never load llama.cpp)."""
    monkeypatch.setattr(local, "_require_extra", lambda: None)


class FakeVendorServer(LocalModelServer):
    """Runs the fake vendor as the "llama.cpp server" to exercise the lifecycle."""

    def command(self, model: Path, port: int) -> list[str]:
        return [sys.executable, FAKEVENDOR_PATH, "--port", str(port)]


class DyingServer(LocalModelServer):
    """Starts and answers /models, then dies with SIGILL on the first chat request, as a
    native llama.cpp build does on a CPU that lacks the instructions it was built for."""

    def command(self, model: Path, port: int) -> list[str]:
        return [sys.executable, FAKEVENDOR_PATH, "--port", str(port), "--die-with", "SIGILL"]


class CrashingServer(LocalModelServer):
    def command(self, model: Path, port: int) -> list[str]:
        return [sys.executable, "-c", "import sys; print('bad model file'); sys.exit(3)"]


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        local.importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a)
    )
    with pytest.raises(ConfigError) as caught:
        LocalProvider()
    message = str(caught.value)
    assert "'local' extra" in message and "multi-agent-orchestration[local]" in message
    assert "llama-cpp-python" in message and "\n" not in message


async def test_existing_server_by_base_url(vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-sent-to-local-0000000")
    async with LocalProvider(base_url=f"{vendor.url}/v1") as provider:
        result = await provider.complete(request(max_tokens=5))
    assert provider.server is None and result.provider == "local" and result.model == "gemma-3-270m"
    sent = vendor.requests[0]
    assert "authorization" not in sent.headers and sent.body["max_tokens"] == 5


def test_model_file_is_assembled_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra_installed: None
) -> None:
    calls: list[Path] = []

    def assemble(target: Path) -> Path:
        calls.append(Path(target))
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_bytes(b"GGUF")
        return Path(target)

    package = types.SimpleNamespace(MODEL_NAME="gemma-3-270m-q4_k_m.gguf", assemble=assemble)
    real_import = local.importlib.import_module
    monkeypatch.setattr(
        local.importlib,
        "import_module",
        lambda name: package if name == local._MODEL_PACKAGE else real_import(name),
    )
    server = LocalModelServer(cache_dir=tmp_path / "models")
    assert server.model_file() == tmp_path / "models" / "gemma-3-270m-q4_k_m.gguf"
    assert calls == [tmp_path / "models" / "gemma-3-270m-q4_k_m.gguf"]
    with pytest.raises(ConfigError, match="does not exist"):
        LocalModelServer(tmp_path / "missing.gguf").model_file()


def test_default_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert local.default_cache_dir() == tmp_path / "orchestration" / "models"


async def test_server_lifecycle_start_use_stop(tmp_path: Path, extra_installed: None) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    server = FakeVendorServer(model, cache_dir=tmp_path, startup_timeout=30)
    provider = LocalProvider(server=server)
    assert provider.base_url == local._PLACEHOLDER_URL and not server.running
    result = await provider.complete(request())  # starts the server first
    assert server.running and provider.base_url == server.base_url and result.content
    chunks = [c async for c in provider.stream(request())]
    assert chunks[-1].usage is not None
    process = server._process
    await provider.aclose()
    assert not server.running and process is not None and process.poll() is not None
    logs = await asyncio.to_thread(lambda: list(tmp_path.glob("*.log")))
    assert not logs  # a clean stop leaves no log behind


async def test_server_crash_at_startup_is_reported(tmp_path: Path, extra_installed: None) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"not a model")
    server = CrashingServer(model, cache_dir=tmp_path, startup_timeout=30)
    with pytest.raises(
        ServiceUnavailableError, match="died during startup with exit status 3: its log ends: bad model file"
    ):
        await server.start()
    assert not server.running


async def test_server_that_dies_is_reported_in_one_line_with_its_signal_and_the_fix(
    tmp_path: Path, extra_installed: None
) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    provider = LocalProvider(server=DyingServer(model, cache_dir=tmp_path, startup_timeout=30))
    try:
        with pytest.raises(ServiceUnavailableError) as caught:
            await provider.complete(request())
        message = str(caught.value)
        assert message.startswith("local: the llama.cpp server died with SIGILL (illegal instruction): ")
        assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall' in message
        assert "\n" not in message and getattr(caught.value, "no_retry", False)  # retrying cannot help
        with pytest.raises(ServiceUnavailableError, match="died with SIGILL"):  # not restarted silently
            await provider.complete(request())
    finally:
        await provider.aclose()


async def test_answers_are_capped_for_a_small_cpu_model(vendor: FakeVendor) -> None:
    async with LocalProvider(base_url=f"{vendor.url}/v1") as provider:
        await provider.complete(request(max_tokens=4096))  # the framework's default
        await provider.complete(request(max_tokens=20))
        await provider.complete(request())
    async with LocalProvider(base_url=f"{vendor.url}/v1", max_tokens=None) as uncapped:
        await uncapped.complete(request(max_tokens=4096))
    sent = [r.body.get("max_tokens") for r in vendor.requests]
    assert sent == [local.DEFAULT_LOCAL_MAX_TOKENS, 20, local.DEFAULT_LOCAL_MAX_TOKENS, 4096]


def test_packaged_model_is_served_with_its_chat_format_on_the_machines_cores(
    tmp_path: Path, extra_installed: None
) -> None:
    packaged = LocalModelServer(cache_dir=tmp_path).command(tmp_path / "m.gguf", 1234)
    assert packaged[packaged.index("--chat_format") + 1] == "gemma"
    assert int(packaged[packaged.index("--n_threads") + 1]) == min(4, os.cpu_count() or 1)
    own = LocalModelServer(tmp_path / "m.gguf", n_threads=1).command(tmp_path / "m.gguf", 1234)
    assert "--chat_format" not in own and own[own.index("--n_threads") + 1] == "1"


def _require_local_extra() -> None:
    available = all(
        importlib.util.find_spec(m) is not None for m in ("llama_cpp", "fastapi", local._MODEL_PACKAGE)
    )
    require_service(
        "the 'local' extra", available, f'CMAKE_ARGS="-DGGML_NATIVE=OFF" {local.LOCAL_EXTRA_HINT}'
    )


@pytest.mark.live
async def test_live_round_trip_with_gemma() -> None:
    """A real llama.cpp server with the packaged Gemma 3 270M (run with ``-m live``)."""
    _require_local_extra()
    async with LocalProvider() as provider:
        prompt: Any = request("The capital of France is", max_tokens=16, temperature=0.0)
        result = await provider.complete(prompt)
        chunks = [c async for c in provider.stream(prompt)]
    assert result.provider == "local" and result.model == "gemma-3-270m"
    assert result.content.strip() and result.usage.output_tokens > 0 and result.usage.input_tokens > 0
    assert not result.usage.estimated  # llama.cpp's own counts
    streamed = "".join(c.delta for c in chunks)
    assert streamed.strip() and chunks[-1].usage is not None and chunks[-1].usage.output_tokens > 0
    assert provider.server is not None and not provider.server.running


@pytest.mark.live
def test_live_cascade_from_the_cli_with_real_token_counts(tmp_path: Path) -> None:
    """``orchestrate run cascade ... --provider local`` as a user runs it: the run completes
    and its bill is llama.cpp's own token counts, not estimates."""
    _require_local_extra()
    command = [
        "run",
        "cascade",
        "Research tides",
        "--provider",
        "local",
        "--json",
        "--quiet",
        "--store",
        "memory:",
    ]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    usage = result["usage"]
    print(
        f"cascade on the local model: {elapsed:.1f}s, {usage['calls']} calls, {usage['total_tokens']} tokens"
    )
    assert result["status"] == "completed" and result["final_synthesis"]
    assert usage["calls"] >= 5 and usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["estimated"] is False
    assert all(not agent["usage"]["estimated"] for agent in result["agent_results"])
