"""Where runs live: the :class:`RunStore` protocol and its implementations.

- :class:`MemoryStore`: in the process, gone when it exits (tests, throwaway runs).
- :class:`SQLiteStore`: a file, ``.orchestration/runs.db`` by default: the default store of
  every orchestrator and of the CLI and server (see :func:`default_store`).
- :class:`PostgresStore`: for workers on many machines (the ``postgres`` extra).

The SQL stores are imported on first use, so ``import orchestration`` stays fast and
``psycopg`` is only needed when Postgres is.

:func:`open_store` picks one from a URL or path.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .base import RunStore, RunSummary
from .memory import MemoryStore

if TYPE_CHECKING:
    from pathlib import Path

    from .postgres import PostgresStore
    from .sqlite import SQLiteStore

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "MemoryStore",
    "PostgresStore",
    "RunStore",
    "RunSummary",
    "SQLiteStore",
    "default_store",
    "open_store",
]

#: Where :func:`open_store` keeps runs by default, relative to the working directory.
DEFAULT_SQLITE_PATH = os.path.join(".orchestration", "runs.db")

_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def __getattr__(name: str) -> Any:
    # SQL stores load on first use: importing orchestration stays fast, psycopg optional.
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    if name == "PostgresStore":
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(url_or_path: str | Path | None = None) -> RunStore:
    """The store a URL or path names.

    - ``None`` or ``""``: SQLite at ``.orchestration/runs.db`` under the current working
      directory (the file is created on first use, not here);
    - ``"memory:"``: a :class:`MemoryStore`;
    - ``"sqlite:///relative/path.db"``, ``"sqlite:////absolute/path.db"`` or a plain path: SQLite;
    - ``"postgresql://..."`` (or ``postgres://``): Postgres (needs the ``postgres`` extra).

    Raises :class:`ConfigError` for any other scheme, or when the Postgres extra is missing.
    """
    from .sqlite import SQLiteStore

    if url_or_path is None or str(url_or_path) == "":
        return SQLiteStore(os.path.join(os.getcwd(), DEFAULT_SQLITE_PATH))
    if not isinstance(url_or_path, str):  # a path-like object
        return SQLiteStore(url_or_path)
    text = url_or_path.strip()
    lowered = text.lower()
    if lowered in ("memory:", "memory://"):
        return MemoryStore()
    if lowered.startswith(_POSTGRES_SCHEMES):
        try:
            from .postgres import PostgresStore
        except ImportError as error:
            raise ConfigError(str(error)) from error
        return PostgresStore(text.replace("postgresql+psycopg://", "postgresql://", 1))
    if lowered.startswith("sqlite:"):
        path = text[len("sqlite:") :]
        if not path.startswith("///"):
            raise ConfigError(
                f"a SQLite URL looks like sqlite:///relative.db or sqlite:////abs.db, not {text!r}"
            )
        return SQLiteStore(path[3:] or DEFAULT_SQLITE_PATH)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"unknown store {scheme!r}: use memory:, a SQLite path or sqlite:/// URL, or postgresql://..."
        )
    return SQLiteStore(text)


def default_store() -> RunStore:
    """The store used when none is given: ``$ORCHESTRATION_DATABASE_URL`` (read now, at
    call time) or SQLite at ``.orchestration/runs.db`` under the working directory."""
    return open_store(os.environ.get("ORCHESTRATION_DATABASE_URL") or None)
