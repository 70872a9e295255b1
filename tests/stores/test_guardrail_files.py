"""Hostile and ambiguous guardrail policy sources get one-line errors with positions.

Deep nesting, control characters and duplicate keys used to surface as
``RecursionError``/``ReaderError`` or be silently accepted (YAML keeps the last of two
equal keys); inline policy text was taken for a file name when it ended in ``.yaml`` or
was too long for one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.errors import ConfigError
from orchestration.guardrails import load_policies

ROOT = Path(__file__).resolve().parents[2]
POLICY = "    when: calls > 1\n    action: abort_run\n"


def _error(source: str | Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_policies(source)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("policies: " + "[" * 5000 + "]" * 5000, "line 1, column 26"),
        ("policies: " + "{a: " * 3000 + "1" + "}" * 3000, "line 1, column 71"),
        ("policies:\n" + "".join("  " * i + "- \n" for i in range(2000)), "line 17, column 31"),
    ],
    ids=["flow-lists", "flow-mappings", "block-lists"],
)
def test_deep_nesting_is_a_config_error_with_its_position(text: str, position: str) -> None:
    message = _error(text)
    assert f"{position}: nested deeper than" in message


def test_deeply_negated_conditions_are_refused() -> None:
    message = _error(
        "policies:\n  - name: a\n    when: " + "not " * 400 + "calls > 1\n    action: abort_run\n"
    )
    assert "line 3, column" in message and "nests deeper" in message


@pytest.mark.parametrize("character", ["\x00", "\x07", "\ufffe"])
def test_control_characters_are_a_config_error_with_their_position(character: str, tmp_path: Path) -> None:
    text = f"policies:\n  - name: a{character}b\n{POLICY}"
    code = f"U+{ord(character):04X}"
    assert f"line 2, column 12: the character {code}" in _error(text)
    path = tmp_path / "policies.yaml"
    path.write_text(text, encoding="utf-8")
    assert _error(path).startswith(f"{path}: line 2, column 12: the character {code}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "policies:\n  - name: a\n    when: calls > 1\n    when: calls > 1000\n    action: abort_run\n",
            "line 4, column 5: duplicate key 'when' (first at line 3)",
        ),
        (
            "policies: []\npolicies:\n  - name: a\n" + POLICY,
            "line 2, column 1: duplicate key 'policies' (first at line 1)",
        ),
        (
            "policies:\n  - {name: a, when: calls > 1, action: abort_run, action: pause_run}\n",
            "line 2, column 51: duplicate key 'action' (first at line 2)",
        ),
    ],
)
def test_duplicate_keys_are_refused_not_silently_overridden(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_inline_text_is_never_taken_for_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ends_like_a_file = "- {name: a, when: calls > 1, action: abort_run, description: see rules.yaml}"
    assert load_policies(ends_like_a_file)[0].description == "see rules.yaml"
    too_long_for_a_file_name = "policies: [{name: a, when: calls > 1, action: abort_run}]" + " " * 5000
    assert [p.name for p in load_policies(too_long_for_a_file_name)] == ["a"]
    # Even when a file of exactly that name exists, the text is the policies.
    monkeypatch.chdir(tmp_path)
    text = "policies: [{name: inline, when: calls > 1, action: abort_run}]"
    Path(text).write_text("policies: [{name: from_file, when: calls > 2, action: abort_run}]\n")
    assert [p.name for p in load_policies(text)] == ["inline"]


def test_a_path_is_never_taken_for_text(tmp_path: Path) -> None:
    odd = tmp_path / "policies: v2"  # a file whose name looks like YAML
    odd.write_text("policies:\n  - name: from_file\n" + POLICY, encoding="utf-8")
    assert [p.name for p in load_policies(odd)] == ["from_file"]  # a Path is always a file
    plain = tmp_path / "rules"  # no extension: still a path, by its shape
    plain.write_text("- {name: plain, when: calls > 1, action: abort_run}\n", encoding="utf-8")
    assert [p.name for p in load_policies(str(plain))] == ["plain"]
    missing = _error(str(tmp_path / "missing"))
    assert "no such file" in missing and "inline policy text starts with" in missing


def test_the_cli_reports_a_hostile_policy_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text("policies: " + "[" * 5000 + "]" * 5000, encoding="utf-8")
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "ORCHESTRATION_DATABASE_URL": "memory:"}
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "demo", "--policies", str(path), "-q"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {path}: line 1, column 26: nested deeper than 16 levels; "
        "a policy file is 'policies:' with a list of flat policies"
    ]
