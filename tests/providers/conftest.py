"""Fixtures for the provider tests: one fake vendor server per session, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakevendor import FakeVendor


@pytest.fixture(scope="session")
def vendor_server() -> Iterator[FakeVendor]:
    """The fake vendor, started once."""
    with FakeVendor() as server:
        yield server


@pytest.fixture
def vendor(vendor_server: FakeVendor) -> Iterator[FakeVendor]:
    """The fake vendor with an empty script and no recorded requests."""
    vendor_server.reset()
    yield vendor_server
    vendor_server.reset()


@pytest.fixture(autouse=True)
def _no_vendor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's real keys or endpoints."""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OLLAMA_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
