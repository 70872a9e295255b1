"""Credentials in URLs (userinfo, token query parameters) never leave the process.

A provider whose base URL carries ``user:password@`` and a percent-encoded ``?%74oken=``
fails against a real fake vendor on 127.0.0.1; the password and the token must not show
in the exception (message, repr, traceback), the provider's repr, the run's events, the
log records, the SQLite file, nor the CLI's stderr and ``--json`` output.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestration import OrchestratorConfig, StreamEvent
from orchestration.errors import ProviderError, describe, redact
from orchestration.llm import CompletionRequest
from orchestration.stores.sqlite import SQLiteStore
from orchestration.utils import RedactSecretsFilter
from providers.openai import OpenAIProvider
from tests.core.cli_fixture import TwoStep
from tests.providers.fakevendor import FakeVendor, Reply

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-PASSWORD-9f8e7d"
TOKEN = "TOKEN-VALUE-5a4b3c2d1e"
SECRETS = (PASSWORD, TOKEN)


@pytest.fixture
def vendor() -> Iterator[FakeVendor]:
    with FakeVendor() as server:
        server.default = Reply.error(500, message="internal failure")
        yield server


def _base_url(vendor: FakeVendor, *, query: bool) -> str:
    url = f"http://alice:{PASSWORD}@127.0.0.1:{vendor.port}/v1"
    return url + f"?%74oken={TOKEN}" if query else url


def _assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows a secret: {text[:500]}"


def _store_bytes(path: Path) -> str:
    data = b""
    for suffix in ("", "-wal", "-journal"):
        part = Path(str(path) + suffix)
        if part.exists():
            data += part.read_bytes()
    return data.decode("latin-1")


@pytest.mark.parametrize("query", [False, True], ids=["userinfo", "userinfo-and-query-token"])
async def test_a_failing_provider_never_shows_url_credentials(
    vendor: FakeVendor, query: bool, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = OpenAIProvider(base_url=_base_url(vendor, query=query), model="gpt-4o-mini")
    _assert_clean(repr(provider), "the provider's repr")
    with pytest.raises(ProviderError) as caught:
        await provider.complete(CompletionRequest(messages=[{"role": "user", "content": "hi"}]))
    error = caught.value
    _assert_clean(str(error), "the exception")
    _assert_clean(repr(error), "the exception's repr")
    _assert_clean("".join(traceback.format_exception(error)), "the traceback")
    assert f"127.0.0.1:{vendor.port}" in str(error)  # the user still sees which server failed

    if not query:  # (with a query the path is not a route of the vendor's: not recorded)
        # The credentials still reach the server, as HTTP Basic auth, exactly as before.
        expected = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        assert vendor.requests and vendor.requests[-1].headers.get("authorization") == expected

    store_path = tmp_path / "runs.db"
    store = SQLiteStore(store_path)
    events: list[StreamEvent] = []
    try:
        orchestrator = TwoStep(
            OrchestratorConfig(primary_model="gpt-4o-mini", max_retries=0), provider, store=store
        )
        result = await orchestrator.execute_workflow("a task", stream_callback=events.append)
        stored = await store.events(result.task_id)
    finally:
        await store.close()
        await provider.aclose()
    assert str(result.status) == "failed" and result.error
    _assert_clean(json.dumps(result.to_dict()), "the result")
    _assert_clean(json.dumps([e.to_dict() for e in events]), "the streamed events")
    _assert_clean(json.dumps([e.to_dict() for e in stored]), "the stored events")
    _assert_clean(_store_bytes(store_path), "the SQLite file")
    for record in caplog.records:
        _assert_clean(record.getMessage(), f"the log record {record.name}")
    assert any(record.name == "httpx" for record in caplog.records)  # its URL lines were checked


def test_the_cli_never_shows_url_credentials(vendor: FakeVendor, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    environment.update(
        PYTHONPATH=str(ROOT),
        OPENAI_BASE_URL=_base_url(vendor, query=True),
        OPENAI_API_KEY="sk-test-not-a-real-key-0123456789",
        ORCHESTRATION_DATABASE_URL=f"sqlite:///{db}",
    )
    command = ["run", "tests.core.cli_fixture:TwoStep", "a task", "--provider", "openai:gpt-4o-mini"]
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *command, "--json", "-o", "max_retries=0"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr  # the run failed, reported as a failed run
    result = json.loads(done.stdout)
    assert result["status"] == "failed"
    _assert_clean(done.stdout, "--json output")
    _assert_clean(done.stderr, "stderr")
    assert "[REDACTED]" in done.stderr
    _assert_clean(_store_bytes(db), "the store")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("http://user:pa@ss@host/v1", "pa@ss"),
        ("postgresql://me:pw-secret@db:5432/runs", "pw-secret"),
        ("GET /runs?%74oken=abcdef HTTP/1.1", "abcdef"),
        ("GET /runs?x=1&%2574oken=abcdef HTTP/1.1", "abcdef"),
        ("https://h/cb#access_token=abcdef&state=1", "abcdef"),
        ("https://h/?API-Key=abcdef", "abcdef"),
        ("https://h/?next=http%3A%2F%2Fu%3Aabcdef%40other", "abcdef"),
    ],
)
def test_redact_masks_url_credentials_in_any_text(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert secret not in describe(ValueError(text))


def test_redact_leaves_ordinary_urls_alone() -> None:
    text = "see http://127.0.0.1:8080/v1/chat?model=gpt-4o&stream=true and mail bob@example.com"
    assert redact(text) == text


def test_the_logging_filter_masks_url_credentials(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.secrets")
    logger.addFilter(RedactSecretsFilter())
    with caplog.at_level(logging.INFO, logger="tests.secrets"):
        logger.info("request to %s failed after %d tries", f"http://a:{PASSWORD}@h/?%74oken={TOKEN}", 3)
    assert caplog.records[-1].getMessage() == (
        "request to http://[REDACTED]@h/?%74oken=[REDACTED] failed after 3 tries"
    )


SERVE = "from orchestration.server import serve; from orchestration import MemoryStore; serve(port=0, store=MemoryStore())"


def test_the_servers_access_log_masks_a_percent_encoded_token() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = ""
        while "Live run page" not in line:  # the page's address is printed once, at start
            line = process.stderr.readline()
            assert line or process.poll() is None, "the server exited before it started"
        match = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=([\w.~-]+)", line)
        assert match, line
        base, token = f"http://127.0.0.1:{match.group(1)}", match.group(2)
        for path in (f"/?%74oken={token}", f"/runs?limit=1&%2574oken={token}", f"/runs?%54OKEN={token}"):
            httpx.get(base + path, timeout=30)  # answered or refused: either way it is logged
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    logs = out + err
    assert "%74oken=[REDACTED]" in logs  # the access log line is there, without the token
    assert token not in logs.replace(line, "")  # only the start-up line shows it, once
