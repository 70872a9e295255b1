"""The SQLite store refuses damaged and foreign files instead of losing runs silently.

Every case uses real files: a store is written, its bytes are damaged the way a disk, a
bad copy or a user would damage them, and the store is opened again.  A refused file is
left exactly as it was, and the refusal is one line naming the file.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.errors import StoreError
from orchestration.models import TaskStatus
from orchestration.stores import SQLiteStore

from .test_contract import T0, run_events

ROOT = Path(__file__).resolve().parents[2]
PAGE = 4096


async def _write_runs(path: Path, *run_ids: str) -> None:
    store = SQLiteStore(path)
    try:
        for index, run_id in enumerate(run_ids):
            await store.append(run_id, run_events(run_id, at=T0 + index, status=TaskStatus.COMPLETED))
    finally:
        await store.close()


async def _open(path: Path) -> list[str]:
    store = SQLiteStore(path)
    try:
        return sorted(summary.run_id for summary in await store.list_runs())
    finally:
        await store.close()


def _snapshot(path: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name) and p.is_file()
    }


def _flip(path: Path, offset: int) -> None:
    """Invert one byte of ``path``."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


async def _refused(path: Path, *words: str) -> str:
    before = _snapshot(path)
    with pytest.raises(StoreError) as caught:
        await _open(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for word in words:
        assert word in message
    assert _snapshot(path) == before  # nothing was written, created or replayed
    return message


async def test_a_damaged_page_is_refused_not_written_into(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    await _write_runs(path, *(f"run-{i}" for i in range(40)))
    data = bytearray(path.read_bytes())
    assert len(data) >= 4 * PAGE
    data[2 * PAGE : 2 * PAGE + 64] = b"\xa5" * 64  # the third page: a b-tree page's header
    path.write_bytes(bytes(data))
    await _refused(path, "damaged", "backup")


async def test_damage_in_the_wal_is_refused_instead_of_dropping_runs(tmp_path: Path) -> None:
    live = tmp_path / "live" / "runs.db"
    await _write_runs(live, "before")  # checkpointed into the main file on close
    store = SQLiteStore(live)
    await store.append("in-wal-1", run_events("in-wal-1", at=T0 + 1, status=TaskStatus.COMPLETED))
    await store.append("in-wal-2", run_events("in-wal-2", at=T0 + 2, status=TaskStatus.COMPLETED))
    # Copy the files while the store is open: the two runs exist only in the WAL.
    copies = []
    for name in ("intact", "damaged"):
        copy = tmp_path / name / "runs.db"
        copy.parent.mkdir()
        shutil.copy(live, copy)
        shutil.copy(Path(f"{live}-wal"), Path(f"{copy}-wal"))
        copies.append(copy)
    await store.close()
    intact, damaged = copies
    assert await _open(intact) == ["before", "in-wal-1", "in-wal-2"]

    _flip(Path(f"{damaged}-wal"), 32 + 24 + 100)  # a byte of the first frame's page
    await _refused(damaged, "write-ahead log", "-wal")


async def test_a_torn_last_write_in_the_wal_is_not_damage(tmp_path: Path) -> None:
    live = tmp_path / "live" / "runs.db"
    await _write_runs(live, "before")
    store = SQLiteStore(live)
    await store.append("committed", run_events("committed", at=T0 + 1, status=TaskStatus.COMPLETED))
    await store.append("torn", run_events("torn", at=T0 + 2, status=TaskStatus.COMPLETED))
    copy = tmp_path / "copy" / "runs.db"
    copy.parent.mkdir()
    shutil.copy(live, copy)
    shutil.copy(Path(f"{live}-wal"), Path(f"{copy}-wal"))
    await store.close()
    _flip(Path(f"{copy}-wal"), -10)  # the last frame: its transaction never fully reached the disk
    assert await _open(copy) == ["before", "committed"]


async def test_a_file_that_is_not_sqlite_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("my notes, not a database\n" * 200)
    await _refused(path, "not a SQLite database")


async def test_another_applications_database_gets_no_tables_added(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
    await _refused(path, "another application", "customers")


async def test_an_empty_file_with_a_wal_next_to_it_is_refused(tmp_path: Path) -> None:
    live = tmp_path / "live" / "runs.db"
    store = SQLiteStore(live)
    await store.append("only-in-wal", run_events("only-in-wal", at=T0, status=TaskStatus.COMPLETED))
    truncated = tmp_path / "truncated" / "runs.db"
    truncated.parent.mkdir()
    truncated.write_bytes(b"")  # the main file lost its content; the WAL survived
    shutil.copy(Path(f"{live}-wal"), Path(f"{truncated}-wal"))
    await store.close()
    await _refused(truncated, "0 bytes", "-wal")


async def test_an_empty_file_alone_is_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(b"")  # e.g. `touch runs.db`: nothing was ever written, nothing to lose
    await _write_runs(path, "first")
    assert await _open(path) == ["first"]


def test_the_cli_reports_a_damaged_store_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(b"PK\x03\x04 this is a zip file, not a store" * 10)
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "runs", "--store", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "not a SQLite database" in lines[0], done.stderr
