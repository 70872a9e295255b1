"""``serve()`` as ``orchestrate serve`` runs it: a real process bound to 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "from orchestration.server import serve; from orchestration import MemoryStore; serve(port=0, store=MemoryStore())"


def test_serve_binds_loopback_prints_the_page_once_and_keeps_the_token_out_of_logs() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 30
        line = ""
        while "Live run page" not in line and time.monotonic() < deadline:
            line = process.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=([\w.~-]+)", line)
        assert match, line
        base, token = f"http://127.0.0.1:{match.group(1)}", match.group(2)
        assert httpx.get(f"{base}/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert httpx.get(f"{base}/?token={token}").status_code == 200
        assert httpx.get(f"{base}/runs").status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    logs = out + err
    assert "GET /?token=[REDACTED]" in logs  # the access log line is there, without the token
    assert logs.count(token) == 0 and line.count(token) == 1
