"""``serve()`` as ``orchestrate serve`` runs it: a real process bound to 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

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


def test_serve_on_a_port_in_use_prints_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "orchestration.cli", "serve", "--port", str(port)],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the port is in use; stop the other server or pass "
        "--port with another number (--port 0 picks a free one)"
    ]
    assert not (tmp_path / ".orchestration").exists()  # nothing was created before it failed


def test_serve_without_the_server_extra_names_the_install(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from orchestration.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a)
    )
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: the server needs uvicorn; install the server extra: pip install -e '.[server]' "
        "(from a checkout of the project)"
    ]
    assert "unexpected" not in err


def test_serve_resume_workflow_continues_an_answered_run_and_names_a_bad_class(tmp_path: Path) -> None:
    """``orchestrate serve --resume-workflow MODULE:CLASS``: a paused run of that class,
    answered through the API, goes on in the server process."""
    db = tmp_path / "runs.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ORCHESTRATION_DATABASE_URL": str(db)}
    paused = subprocess.run(
        [sys.executable, "-m", "tests.graph.interrupt_worker", str(db), "served"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert '"status": "paused"' in paused.stdout, paused.stderr
    command = [
        sys.executable,
        "-m",
        "orchestration.cli",
        "serve",
        "--port",
        "0",
        "--token",
        "serve-token-123",
    ]
    bad = subprocess.run(
        [*command, "--resume-workflow", "json:dumps"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert bad.stderr.strip() == "error: --resume-workflow 'json:dumps': not a Workflow subclass"
    process = subprocess.Popen(
        [*command, "--resume-workflow", "tests.graph.interrupt_worker:Publish"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = ""
        while "Live run page" not in line:
            line = process.stderr.readline()
            assert line or process.poll() is None, "the server exited"
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        headers = {"Authorization": "Bearer serve-token-123"}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{match.group(1)}", headers=headers, timeout=30
        ) as client:
            last = client.get("/runs/served").json()["run"]["last_seq"]
            reply = client.post("/runs/served/answers", json={"node": "title", "answer": "Tides"})
            assert reply.json()["resumed"] is True, reply.text
            # from the answer on, the stream ends at the run's next stop: the approval gate
            with client.stream("GET", "/runs/served/events", headers={"Last-Event-ID": str(last)}) as stream:
                body = "".join(stream.iter_text())
            assert "event: workflow_resumed" in body
            assert "event: workflow_paused" in body.split("event: workflow_resumed", 1)[1]
            assert client.get("/runs/served").json()["run"]["status"] == "paused"
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
