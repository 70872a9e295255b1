"""``import orchestration`` stays light: the heavy libraries load when first used, not before.

Each check runs in a fresh interpreter, so what another test imported does not count.
What a user pays on ``import orchestration`` is what is in ``sys.modules`` right after it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Libraries the package depends on that only some runs need, and our modules built on them.
HEAVY = (
    "httpx",  # providers' HTTP client: loaded with the first provider
    "httpcore",
    "jsonschema",  # output schemas: checked when a schema is used
    "yaml",  # guardrail policy files: parsed when one is read
    "reportlab",  # PDF reports
    "pypdf",
    "markdown",
    "rich",
    "tiktoken",
    "nh3",
    "sqlite3",  # the default store opens on first use
    "psycopg",  # the postgres extra
    "redis",
    "starlette",  # the server extra
    "uvicorn",
    "sse_starlette",
    "temporalio",  # the temporal extra
    "opentelemetry",  # the otel extra
    "orchestration.reports",
    "orchestration.server",
    "orchestration.backends",
    "orchestration.cli",
    "orchestration.planner",
    "orchestration.stores.sqlite",
    "orchestration.stores.postgres",
)


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded: list[str] = json.loads(out)
    return loaded


def _heavy(loaded: list[str]) -> list[str]:
    return [name for name in loaded if name in HEAVY or name.split(".")[0] in HEAVY or name.startswith(HEAVY)]


def test_import_orchestration_loads_none_of_the_heavy_modules() -> None:
    assert _heavy(_loaded_after("import orchestration")) == []


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("from orchestration.guardrails import load_policies; load_policies('policies: []')", "yaml"),
        ("from orchestration.stores import open_store; open_store(':memory:')", "sqlite3"),
    ],
)
def test_a_heavy_module_loads_when_its_feature_is_used(statement: str, expected: str) -> None:
    # The probe sees lazy imports: using the feature loads the library.
    assert expected in _loaded_after(f"import orchestration; {statement}")
