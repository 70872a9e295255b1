"""Ollama native adapter against the fake vendor over real sockets."""

from __future__ import annotations

import pytest
from fakevendor import FakeVendor, Reply
from provider_helpers import WaitRecorder, collect, policy, request

from orchestration.errors import BadRequestError, MalformedResponseError, ServiceUnavailableError
from orchestration.retry import retry_call
from providers.ollama import OllamaProvider, normalize_ollama_host


def make(vendor: FakeVendor, **options: object) -> OllamaProvider:
    return OllamaProvider("llama3.2", host=vendor.url, **options)  # type: ignore[arg-type]


async def test_complete_wire_format_and_usage(vendor: FakeVendor) -> None:
    vendor.script(Reply.ok("Salut.", prompt_tokens=26, completion_tokens=3))
    async with make(vendor) as provider:
        result = await provider.complete(
            request(
                max_tokens=50, temperature=0.1, stop=["###"], options={"num_ctx": 4096, "keep_alive": "5m"}
            )
        )
    assert result.content == "Salut." and result.provider == "ollama" and result.model == "llama3.2"
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.estimated) == (26, 3, False)
    assert result.finish_reason == "stop"
    body = vendor.requests[0].body
    assert vendor.requests[0].path == "/api/chat" and body["stream"] is False
    assert body["options"] == {"temperature": 0.1, "num_predict": 50, "stop": ["###"], "num_ctx": 4096}
    assert body["keep_alive"] == "5m"
    assert body["messages"][0]["role"] == "system"


async def test_prompt_count_missing_when_cached_is_estimated(vendor: FakeVendor) -> None:
    vendor.script(Reply.ok("x y", usage=False))
    async with make(vendor) as provider:
        result = await provider.complete(request())
    assert result.usage.estimated and result.usage.output_tokens == 2 and result.usage.input_tokens > 0


async def test_ndjson_stream(vendor: FakeVendor) -> None:
    vendor.script(Reply.ok("uno dos tres", prompt_tokens=9, completion_tokens=3))
    async with make(vendor) as provider:
        chunks = await collect(provider, request())
    assert [c.delta for c in chunks[:-1]] == ["uno ", "dos ", "tres"]
    usage = chunks[-1].usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (9, 3)
    assert chunks[-1].finish_reason == "stop" and vendor.requests[0].body["stream"] is True


async def test_model_not_pulled(vendor: FakeVendor) -> None:
    vendor.script(Reply.error(404, "model 'llama9' not found, try pulling it first"))
    async with make(vendor) as provider:
        with pytest.raises(BadRequestError, match="ollama pull") as caught:
            await provider.complete(request(model="llama9"))
    assert "llama9" in str(caught.value) and caught.value.status_code == 404


async def test_error_line_mid_stream_and_cut(vendor: FakeVendor) -> None:
    vendor.script(Reply.stream_error(after=1, message="model runner crashed"), Reply.cut(after=2))
    async with make(vendor) as provider:
        with pytest.raises(ServiceUnavailableError, match="model runner crashed") as first:
            await collect(provider, request())
        with pytest.raises(ServiceUnavailableError, match='"done": true') as second:
            await collect(provider, request())
    assert getattr(first.value, "no_retry", False) and getattr(second.value, "no_retry", False)


async def test_500_retried(vendor: FakeVendor) -> None:
    vendor.script(Reply.error(500, "llama runner process has terminated"))
    sleep = WaitRecorder()
    async with make(vendor) as provider:
        result = await retry_call(lambda: provider.complete(request()), policy(), sleep=sleep)
    assert result.content and len(sleep.waits) == 1


async def test_malformed(vendor: FakeVendor) -> None:
    vendor.script(Reply.raw(200, "[1, 2]", content_type="application/json"))
    async with make(vendor) as provider:
        with pytest.raises(MalformedResponseError, match="expected a JSON object"):
            await provider.complete(request())


async def test_ollama_host_env(monkeypatch: pytest.MonkeyPatch, vendor: FakeVendor) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{vendor.port}")
    async with OllamaProvider() as provider:
        assert provider.base_url == vendor.url
        await provider.complete(request())
    assert vendor.requests[0].body["model"] == "llama3.2"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:11434", "http://127.0.0.1:11434"),
        ("localhost", "http://localhost:11434"),
        ("https://ollama.example.com", "https://ollama.example.com"),
        ("http://gpu-box:8080/", "http://gpu-box:8080"),
        ("[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_normalize_ollama_host(host: str, url: str) -> None:
    assert normalize_ollama_host(host) == url
