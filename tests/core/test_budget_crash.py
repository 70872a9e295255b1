"""Budgets across a crash: SIGKILL a capped run while calls are in flight, resume it, and
check that what the vendor billed stays within the cap."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from orchestration import EventType
from orchestration.stores import SQLiteStore

from .budget_crash_worker import CAP

ROOT = Path(__file__).resolve().parents[2]


def worker(db: Path, ledger: Path, mode: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.core.budget_crash_worker", str(db), str(ledger), "run", mode],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_after_receipts(process: subprocess.Popen[str], receipts: int) -> None:
    """SIGKILL the worker once the vendor has received ``receipts`` calls (they are in flight)."""
    assert process.stdout is not None
    seen = 0
    for line in process.stdout:  # blocks on the pipe: each line is a call reaching the vendor
        seen += line.startswith("received")
        if seen == receipts:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert seen == receipts, process.stderr.read() if process.stderr else ""
    if process.stdout is not None:
        process.stdout.close()
    if process.stderr is not None:
        process.stderr.close()


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def billed(ledger: Path) -> float:
    return sum(float(line) for line in ledger.read_text().split())


def test_calls_in_flight_at_a_sigkill_count_against_the_cap_after_resume(tmp_path: Path) -> None:
    db, ledger = tmp_path / "runs.db", tmp_path / "vendor.ledger"
    kill_after_receipts(worker(db, ledger, "start"), 5)
    kill_after_receipts(worker(db, ledger, "resume"), 3)
    result = finish(worker(db, ledger, "resume"))

    assert result["status"] == "budget_exceeded", result["error"]
    assert billed(ledger) <= CAP + 1e-9, f"the vendor billed ${billed(ledger):.4f} against a ${CAP} cap"
    assert result["total_cost"] <= billed(ledger) + 1e-9

    async def warnings() -> list[str]:
        store = SQLiteStore(db)
        try:
            events = await store.events("run")
        finally:
            await store.close()
        return [str(e.data.get("message")) for e in events if e.event_type is EventType.WARNING]

    carried = [w for w in asyncio.run(warnings()) if "in flight when the run was interrupted" in w]
    assert len(carried) == 2  # each resume says what it counted
