"""Selection by name (registry) and routing "vendor:model" ids, including cross-vendor fallback."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest
from fakevendor import FakeVendor, Reply
from provider_helpers import ANTHROPIC_SECRET, SECRET, WaitRecorder, policy, request

from orchestration.errors import ConfigError, ProviderError, ServiceUnavailableError
from orchestration.llm import Completion, CompletionRequest, Provider
from orchestration.retry import RetryPolicy, retry_call
from orchestration.scripted import ScriptedProvider
from providers import registry
from providers.anthropic import AnthropicProvider
from providers.ollama import OllamaProvider
from providers.openai import OpenAIProvider
from providers.registry import available_providers, get_provider, split_model_id
from providers.router import ProviderRouter


async def complete_with_fallback(
    provider: Provider, req: CompletionRequest, models: list[str], retry: RetryPolicy, sleep: WaitRecorder
) -> tuple[Completion, list[str]]:
    """What the core does: each model with retries, then the next model when it fails for good."""
    failed: list[str] = []
    for model in models:
        routed = dataclasses.replace(req, model=model)
        try:
            return await retry_call(lambda r=routed: provider.complete(r), retry, sleep=sleep), failed  # type: ignore[misc]
        except ProviderError:
            failed.append(model)
            if model == models[-1]:
                raise
    raise AssertionError("unreachable")


def test_split_model_id() -> None:
    assert split_model_id("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert split_model_id("local") == ("local", None)
    assert split_model_id("ollama:llama3.2:3b") == ("ollama", "llama3.2:3b")
    assert split_model_id(" Anthropic:claude-sonnet-4-5 ") == ("anthropic", "claude-sonnet-4-5")


def test_get_provider_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_SECRET)
    openai = get_provider("openai:gpt-4o-mini")
    assert isinstance(openai, OpenAIProvider) and openai.model == "gpt-4o-mini"
    assert get_provider("openai", model="gpt-4.1").model == "gpt-4.1"  # type: ignore[attr-defined]
    anthropic = get_provider("anthropic:claude-sonnet-4-5")
    assert isinstance(anthropic, AnthropicProvider) and anthropic.model == "claude-sonnet-4-5"
    ollama = get_provider("ollama:llama3.2:3b")
    assert isinstance(ollama, OllamaProvider) and ollama.model == "llama3.2:3b"
    assert isinstance(get_provider("router"), ProviderRouter)
    assert {"openai", "anthropic", "ollama", "local", "router"} <= set(available_providers())


def test_unknown_provider_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        get_provider("opnai:gpt-4o")
    message = str(caught.value)
    assert "unknown provider 'opnai'" in message and "openai" in message and "\n" not in message


def test_missing_key_one_line() -> None:
    for name, variable in (("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")):
        with pytest.raises(ConfigError) as caught:
            get_provider(name)
        assert variable in str(caught.value) and "\n" not in str(caught.value)


def test_entry_point_plugins_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeEntryPoint:
        name = "scripted"

        def load(self) -> Any:
            return ScriptedProvider

    monkeypatch.setattr(registry, "_plugins", lambda: {"scripted": FakeEntryPoint()})
    provider = get_provider("scripted:demo-model")
    assert isinstance(provider, ScriptedProvider) and provider.model == "demo-model"
    assert isinstance(get_provider("scripted"), ScriptedProvider)


def test_importing_providers_reads_no_environment() -> None:
    code = (
        "import os\n"
        "class Spy(dict):\n"
        "    def get(self, *a, **k):\n"
        "        raise SystemExit('environment read at import: %s' % (a,))\n"
        "    __getitem__ = get\n"
        "os.environ = Spy(os.environ)\n"
        "import providers, providers.registry, providers.router, providers.local, orchestration.ratelimit\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr


async def test_router_routes_by_vendor_prefix(vendor: FakeVendor) -> None:
    router = ProviderRouter(
        {
            "openai": OpenAIProvider(api_key=SECRET, base_url=f"{vendor.url}/v1"),
            "anthropic": AnthropicProvider(api_key=ANTHROPIC_SECRET, base_url=vendor.url),
            "ollama": OllamaProvider(host=vendor.url),
        }
    )
    async with router:
        results = [
            await router.complete(request(model=m))
            for m in ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "ollama:llama3.2:1b")
        ]
        chunks = [c async for c in router.stream(request(model="anthropic:claude-haiku-4-5"))]
    assert [r.provider for r in results] == ["openai", "anthropic", "ollama"]
    assert [r.model for r in results] == ["gpt-4o-mini", "claude-haiku-4-5", "llama3.2:1b"]
    assert vendor.paths() == ["/v1/chat/completions", "/v1/messages", "/api/chat", "/v1/messages"]
    assert chunks[-1].usage is not None
    with pytest.raises(ConfigError, match="names no provider"):
        await router.complete(request(model="gpt-4o"))


async def test_router_default_route_and_user_objects() -> None:
    class SeedStyle:
        """The seed README's shape: complete(messages, **kwargs) returning .content."""

        name = "seed"

        def complete(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
            return type("R", (), {"content": f"seen {len(messages)} messages", "usage": None})()

    router = ProviderRouter({"mine": SeedStyle(), "scripted": ScriptedProvider("canned")}, default="scripted")
    assert (await router.complete(request(model="mine:any"))).content == "seen 2 messages"
    assert (await router.complete(request(model="whatever"))).content == "canned"
    assert router.route("llama3.2:3b") == ("scripted", "llama3.2:3b")  # unknown prefix: the default's model
    assert router.route(None) == ("scripted", None)


async def test_router_creates_providers_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, vendor: FakeVendor
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", f"{vendor.url}/v1")
    router = ProviderRouter(default_model="openai:gpt-4o-mini")
    result = await router.complete(CompletionRequest(messages=[{"role": "user", "content": "hi"}]))
    assert result.provider == "openai" and result.model == "gpt-4o-mini"
    created = router.provider("openai")
    await router.aclose()
    assert getattr(created, "_client", None) is None  # the router closed what it created


async def test_fallback_to_another_vendor_through_the_router(vendor: FakeVendor) -> None:
    # The OpenAI model fails for good (500 on every attempt); the Anthropic fallback answers.
    vendor.script(*[Reply.error(500, "boom", error_type="server_error")] * 3, Reply.ok("from the fallback"))
    router = ProviderRouter(
        {
            "openai": OpenAIProvider(api_key=SECRET, base_url=f"{vendor.url}/v1"),
            "anthropic": AnthropicProvider(api_key=ANTHROPIC_SECRET, base_url=vendor.url),
        }
    )
    sleep = WaitRecorder()
    async with router:
        result, failed = await complete_with_fallback(
            router,
            request(),
            ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"],
            policy(max_retries=2),
            sleep,
        )
    assert failed == ["openai:gpt-4o-mini"]
    assert result.content == "from the fallback"
    assert (result.provider, result.model) == ("anthropic", "claude-haiku-4-5")
    assert vendor.paths() == ["/v1/chat/completions"] * 3 + ["/v1/messages"]
    assert len(sleep.waits) == 2


async def test_fallback_skips_retries_for_fatal_errors(vendor: FakeVendor) -> None:
    vendor.script(Reply.error(429, "You exceeded your current quota", code="insufficient_quota"))
    router = ProviderRouter(
        {
            "openai": OpenAIProvider(api_key=SECRET, base_url=f"{vendor.url}/v1"),
            "ollama": OllamaProvider(host=vendor.url),
        }
    )
    sleep = WaitRecorder()
    async with router:
        result, failed = await complete_with_fallback(
            router, request(), ["openai:gpt-4o", "ollama:llama3.2"], policy(), sleep
        )
    assert failed == ["openai:gpt-4o"] and result.provider == "ollama"
    assert sleep.waits == [] and vendor.paths() == ["/v1/chat/completions", "/api/chat"]


async def test_fallback_exhausted_raises_the_last_error(vendor: FakeVendor) -> None:
    vendor.default = Reply.error(503, "down")
    async with ProviderRouter({"ollama": OllamaProvider(host=vendor.url)}) as router:
        with pytest.raises(ServiceUnavailableError):
            await complete_with_fallback(
                router, request(), ["ollama:a", "ollama:b"], policy(1), WaitRecorder()
            )
    assert len(vendor.requests) == 4
