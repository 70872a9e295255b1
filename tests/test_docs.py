"""Every Python code block in ``docs/*.md`` runs.

Each ```python block runs as a standalone script in a fresh interpreter, in an empty
working directory, offline: no API keys in the environment and no database URL, so a
block that needs a real provider or a server it did not start fails here.  Shell and
HTTP blocks (``orchestrate serve``, ``curl``) are shown, not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\w+)[ \t]*\n(.*?)^```", flags=re.S | re.M)


def _python_blocks() -> list[tuple[str, str]]:
    """``(id, code)`` for every ```python block, in file order (ids like ``server.md-2``)."""
    blocks = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        python = [code for lang, code in FENCE.findall(text) if lang == "python"]
        blocks.extend((f"{path.name}-{index}", code) for index, code in enumerate(python))
    return blocks


BLOCKS = _python_blocks()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ORCHESTRATION_DATABASE_URL", "ORCHESTRATION_TOKEN"):
        env.pop(name, None)
    return env


def test_the_docs_have_code_to_check() -> None:
    names = {path.name for path in DOCS}
    assert {"server.md", "durability.md", "guardrails.md", "patterns.md"} <= names
    for name in ("server.md", "durability.md", "guardrails.md", "patterns.md"):
        assert any(block_id.startswith(f"{name}-") for block_id, _ in BLOCKS), name


@pytest.mark.parametrize("code", [code for _, code in BLOCKS], ids=[block_id for block_id, _ in BLOCKS])
def test_python_block_runs(code: str, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (
        f"exit {done.returncode}\n--- stdout\n{done.stdout[-2000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )
