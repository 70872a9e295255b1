"""Fixtures for the store tests: a fresh Postgres schema per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import cache

import pytest

from tests.conftest import require_service

PG_DSN = os.environ.get("ORCHESTRATION_TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")


@cache
def postgres_problem() -> str | None:
    """Why Postgres cannot be used here, or None."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed: pip install 'multi-agent-orchestration[postgres]'"
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return f"cannot connect to {PG_DSN} (set ORCHESTRATION_TEST_DATABASE_URL): {error}"


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    """A DSN whose search_path is a fresh schema, dropped afterwards."""
    problem = postgres_problem()
    require_service("PostgreSQL", problem is None, problem or "")
    import psycopg

    schema = f"orch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in PG_DSN else "?"
    try:
        yield f"{PG_DSN}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
