"""Every code block in the README runs.

Python blocks run as scripts in a fresh interpreter.  The set-up command that installs
and runs the demo runs verbatim in a fresh copy of the project; the test command is the
one ``.ci/run`` calls (running it here would recurse), which this test checks.  Blocks
that use the embedded model (``--provider local``) run only in the ``live`` test, and the
portable install of its extra is the one ``.ci/run`` uses.  Other shell blocks run with
this environment's ``orchestrate`` on the PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, flags=re.S | re.M)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
SHELL = [code.strip() for lang, code in BLOCKS if lang == "bash"]
DEMO_SETUP = next(c for c in SHELL if "orchestrate demo" in c and "venv" in c)
TEST_SETUP = next(c for c in SHELL if "pytest" in c and "venv" in c)
LOCAL_SETUP = next(c for c in SHELL if "GGML_NATIVE=OFF" in c and "[local]" in c)
LIVE_SHELL = [c for c in SHELL if "--provider local" in c]
OTHER_SHELL = [c for c in SHELL if c not in (DEMO_SETUP, TEST_SETUP, LOCAL_SETUP, *LIVE_SHELL)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("OPENAI_API_KEY", None)
    env.pop("ANTHROPIC_API_KEY", None)
    env.pop("ORCHESTRATION_DATABASE_URL", None)  # as a user runs it: the default SQLite store
    return env


def test_the_readme_has_code_to_check() -> None:
    assert len(PYTHON) >= 5 and DEMO_SETUP and TEST_SETUP and LOCAL_SETUP and LIVE_SHELL


@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_python_block_runs(code: str, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("code", OTHER_SHELL, ids=[f"bash-{i}" for i in range(len(OTHER_SHELL))])
def test_shell_block_runs(code: str, tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{code}"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_ci_runs_the_readme_test_command() -> None:
    assert TEST_SETUP in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_ci_installs_the_local_extra_as_portably_as_the_readme_says() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF"' in LOCAL_SETUP and 'CMAKE_ARGS="-DGGML_NATIVE=OFF"' in ci
    assert "local]" in ci and "pytest -m live" in ci


@pytest.mark.live
@pytest.mark.parametrize("code", LIVE_SHELL, ids=[f"live-bash-{i}" for i in range(len(LIVE_SHELL))])
def test_live_shell_block_runs(code: str, tmp_path: Path) -> None:
    """A block on the embedded model, as a user runs it (needs the ``local`` extra)."""
    done = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{code}"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    assert "completed" in done.stdout + done.stderr


def test_demo_setup_command_works_on_a_fresh_copy(tmp_path: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    copy = tmp_path / "project"
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    env = _env()
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)
    done = subprocess.run(
        ["bash", "-c", DEMO_SETUP], cwd=copy, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    assert "status: completed" in done.stdout
