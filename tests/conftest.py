"""Shared test fixtures.

Tests that need a service (Postgres, Redis) or a browser use :func:`require_service`:
in CI (``CI=true``) a missing service fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# CI checks the same examples on every run (a red build names a change, not a lucky draw);
# elsewhere each run draws new ones, and a failure found is kept in .hypothesis and replayed.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


def require_service(name: str, available: bool, how: str) -> None:
    """Fail in CI, skip elsewhere, when ``name`` is not available."""
    if available:
        return
    message = f"{name} is not available: {how}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _runs_in_memory_unless_a_test_chooses_a_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Orchestrators built without a store would write ``.orchestration/runs.db`` in the
    working directory; tests keep runs in memory unless they pass a store themselves."""
    monkeypatch.setenv("ORCHESTRATION_DATABASE_URL", "memory:")
