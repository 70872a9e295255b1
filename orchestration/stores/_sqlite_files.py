"""Checks on a SQLite store's files before and right after they are opened.

SQLite is forgiving in ways that lose runs silently: it reads a write-ahead log only up
to its first bad frame (so damage in the WAL drops every later transaction without a
word), happily adds our tables to somebody else's database, and answers queries from a
damaged file until it trips over the damaged page.  These checks refuse such files with
one :class:`~orchestration.errors.StoreError` line that names the file and says what to do.

The rules (see :func:`check_files` and :func:`check_open`):

- a missing file is a new store; a **0-byte** file is a new store only when no ``-wal``
  file sits next to it (a 0-byte database with a WAL lost its main file: refused);
- a non-empty file must start with SQLite's header (``SQLite format 3\\0``), and if it
  holds tables, ours (``schema_version``) must be among them;
- the ``-wal`` file, if any, must have a valid header and no frame of its current
  generation after the first invalid one (frames SQLite would skip);
- once open, ``PRAGMA quick_check`` must say ``ok``.
"""

from __future__ import annotations

import os
import sqlite3
import struct

from ..errors import StoreError

__all__ = ["check_files", "check_open", "wal_damage"]

_MAGIC = b"SQLite format 3\x00"
_WAL_MAGIC = (0x377F0682, 0x377F0683)  # checksums in little- / big-endian words
_WAL_HEADER = 32
_FRAME_HEADER = 24
_ACTION = "restore it from a backup, or move it (and its -wal file) away to start a new store"


def check_files(path: str, *, wal: bool = True) -> None:
    """Refuse ``path`` (before SQLite opens it) if it is not, or no longer, a store
    (``wal``: also check the write-ahead log's frames)."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        size = -1
    wal_exists = os.path.exists(path + "-wal")
    if size <= 0:
        if wal_exists:
            state = "missing" if size < 0 else "empty (0 bytes)"
            raise StoreError(
                f"SQLite store {path} is {state} but its write-ahead log {path}-wal exists: "
                f"the database file was lost or truncated; {_ACTION}"
            )
        return  # a new store (a 0-byte file and no WAL: nothing was ever written)
    with open(path, "rb") as file:
        head = file.read(len(_MAGIC))
    if head != _MAGIC:
        raise StoreError(
            f"SQLite store {path} is not a SQLite database (it starts with {head[:8]!r}); "
            "point the store at another path; the file was left untouched"
        )
    if wal and wal_exists:
        problem = _wal_problem(path + "-wal")
        if problem:
            raise StoreError(
                f"SQLite store {path}: its write-ahead log {path}-wal is damaged ({problem}); {_ACTION}"
            )


def check_open(conn: sqlite3.Connection, path: str, *, quick_check: bool = True) -> None:
    """Refuse an opened database that is damaged (``quick_check``: look at every page)
    or belongs to another application."""
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall() if quick_check else [("ok",)]
        problems = [str(row[0]) for row in rows]
        tables = {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise StoreError(f"SQLite store {path} is damaged ({error}); {_ACTION}") from None
    if problems != ["ok"]:
        first = " ".join(problems[0].split())[:200]
        more = f" and {len(problems) - 1} more problems" if len(problems) > 1 else ""
        raise StoreError(f"SQLite store {path} is damaged ({first}{more}); {_ACTION}")
    if tables and "schema_version" not in tables:
        shown = ", ".join(sorted(tables)[:5])
        raise StoreError(
            f"SQLite store {path} is another application's database (tables: {shown}); "
            "point the store at another path; the file was left untouched"
        )


def _wal_problem(wal: str) -> str | None:
    # A writer in another process may be appending frames while we read; damage must
    # show in two reads to count, so a frame caught half-written is not mistaken for it.
    problem = None
    for _ in range(2):
        with open(wal, "rb") as file:
            problem = wal_damage(file.read())
        if problem is None:
            return None
    return problem


def wal_damage(data: bytes) -> str | None:
    """Why the WAL ``data`` would lose committed transactions, or None when it would not.

    SQLite replays frames in order and stops at the first whose salts or cumulative
    checksum do not match; frames of the current generation (same salts) that come after
    that point hold transactions it would silently drop.
    """
    if len(data) < _WAL_HEADER:
        return None if not data.strip(b"\x00") else "the header is cut short"
    magic, _version, page_size, _checkpoint, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:_WAL_HEADER])
    if magic not in _WAL_MAGIC:
        return None if not data.strip(b"\x00") else "the header is not a WAL header"
    order = "<" if magic == _WAL_MAGIC[0] else ">"
    frame = _FRAME_HEADER + page_size
    frames = (len(data) - _WAL_HEADER) // frame
    if _checksum(data[:24], order, 0, 0) != (c1, c2):
        return "the header checksum is wrong" if _has_frames(data, salt1, salt2, frame, 0, frames) else None
    s0, s1 = c1, c2
    for index in range(frames):
        start = _WAL_HEADER + index * frame
        header = data[start : start + _FRAME_HEADER]
        f_salt1, f_salt2, f1, f2 = struct.unpack(">4I", header[8:24])
        if (f_salt1, f_salt2) != (salt1, salt2):
            break
        s0, s1 = _checksum(header[:8], order, s0, s1)
        s0, s1 = _checksum(data[start + _FRAME_HEADER : start + frame], order, s0, s1)
        if (s0, s1) != (f1, f2):
            if _has_frames(data, salt1, salt2, frame, index + 1, frames):
                return f"frame {index + 1} of {frames} has a wrong checksum and later frames would be skipped"
            return None  # a torn last write: that transaction never committed
    return None


def _has_frames(data: bytes, salt1: int, salt2: int, frame: int, first: int, frames: int) -> bool:
    """True when a frame from ``first`` on belongs to the current generation (same salts)."""
    salts = struct.pack(">2I", salt1, salt2)
    for index in range(first, frames):
        start = _WAL_HEADER + index * frame
        if data[start + 8 : start + 16] == salts:
            return True
    return False


def _checksum(chunk: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    """SQLite's WAL checksum of ``chunk`` (a multiple of 8 bytes), continuing from ``s0, s1``."""
    mask = 0xFFFFFFFF
    for x0, x1 in struct.iter_unpack(order + "2I", chunk):
        s0 = (s0 + x0 + s1) & mask
        s1 = (s1 + x1 + s0) & mask
    return s0, s1
