"""The local provider: guarded extra, server lifecycle, and (marked live) a real Gemma round trip."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
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


@pytest.fixture
def extra_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the ``local`` extra is installed (these tests never load llama.cpp)."""
    monkeypatch.setattr(local, "_require_extra", lambda: None)


class FakeVendorServer(LocalModelServer):
    """Runs the fake vendor as the "llama.cpp server" to exercise the lifecycle."""

    def command(self, model: Path, port: int) -> list[str]:
        return [sys.executable, FAKEVENDOR_PATH, "--port", str(port)]


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
    with pytest.raises(ServiceUnavailableError, match="exited during startup: bad model file"):
        await server.start()
    assert not server.running


def _local_extra_available() -> bool:
    return all(
        importlib.util.find_spec(m) is not None for m in ("llama_cpp", "fastapi", local._MODEL_PACKAGE)
    )


@pytest.mark.live
async def test_live_round_trip_with_gemma() -> None:
    """A real llama.cpp server with the packaged Gemma 3 270M (run with ``-m live``)."""
    if not _local_extra_available():
        reason = f"the 'local' extra is not installed: {local.LOCAL_EXTRA_HINT}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    async with LocalProvider() as provider:
        prompt: Any = request("The capital of France is", max_tokens=16, temperature=0.0)
        result = await provider.complete(prompt)
        chunks = [c async for c in provider.stream(prompt)]
    assert result.provider == "local" and result.model == "gemma-3-270m"
    assert result.content.strip() and result.usage.output_tokens > 0 and result.usage.input_tokens > 0
    streamed = "".join(c.delta for c in chunks)
    assert streamed.strip() and chunks[-1].usage is not None and chunks[-1].usage.output_tokens > 0
    assert provider.server is not None and not provider.server.running
