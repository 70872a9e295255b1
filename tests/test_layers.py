"""The layers of ``../shared/DESIGN.md``: dependencies point down only.

Every ``import`` in the package (including the lazy ones inside functions and the ones
under ``TYPE_CHECKING``) is read with :mod:`ast`; a module may import its own layer or a
lower one, never a higher one.  ``patterns/`` sees only the public API
(``from orchestration import X``) and ``providers/`` only the provider-facing modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# orchestration's top-level modules and packages by layer.  reports/ renders a result and
# its events (it imports only models and events), so it sits with the other subscribers
# below the engine, which writes a run's reports when it ends.
LAYERS: dict[int, tuple[str, ...]] = {
    0: ("errors", "text", "_version"),
    1: ("models", "events", "config", "usage", "utils", "_ratelimit_headers", "_guardrail_grammar"),
    2: (
        "llm",
        "completions",
        "schemas",
        "toolcalls",
        "structured",
        "toolbox",
        "retry",
        "budget",
        "ratelimit",
        "tokens",
        "pricing",
        "guardrails",
        "_guardrail_policy_file",
        "_guardrail_totals",
        "streaming",
        "scripted",
        "replay",
        "progress",
        "reports",
    ),
    3: ("engine", "stores", "admission", "_ledger_admission", "modelcall", "metered"),
    4: ("base", "graph", "workflow", "registry", "planner"),
    5: ("cli", "server", "backends"),
}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}
PACKAGE_LAYER = 6  # orchestration/__init__.py: the public API, above everything it re-exports

# What providers/ may use of orchestration: the Provider protocol and what it speaks.
PROVIDER_MODULES = {
    "errors",
    "llm",
    "completions",
    "schemas",
    "toolcalls",
    "usage",
    "tokens",
    "ratelimit",
    "utils",
}


def _module_name(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path) -> list[tuple[int, list[str]]]:
    """(line, dotted module) for every import in ``path``, relative ones resolved."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me[:-1]
    found: list[tuple[int, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = base + (node.module.split(".") if node.module else [])
            else:
                module = (node.module or "").split(".")
            if node.module is None:  # ``from . import x``: x is a submodule
                found.extend((node.lineno, [*module, alias.name]) for alias in node.names)
            else:
                found.append((node.lineno, module))
    return found


def _layer(module: list[str]) -> int:
    if len(module) == 1:
        return PACKAGE_LAYER
    try:
        return LAYER_OF[module[1]]
    except KeyError:
        pytest.fail(f"orchestration.{module[1]} has no layer: add it to LAYERS in tests/test_layers.py")


def _sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in _sources("orchestration"):
        _layer(_module_name(path))


def test_orchestration_imports_point_down() -> None:
    upward = []
    for path in _sources("orchestration"):
        me = _module_name(path)
        my_layer = _layer(me)
        for line, target in _imports(path):
            if target[0] != "orchestration" or target[:2] == me[:2]:
                continue  # outside the package, or inside the same module/package
            if _layer(target) > my_layer:
                upward.append(f"{'.'.join(me)}:{line} imports {'.'.join(target)}")
    assert upward == []


def test_engine_imports_no_front_end() -> None:
    front_ends = {name for name in LAYERS[4]}
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {'.'.join(target)}"
        for path in _sources("orchestration/engine") + _sources("orchestration/stores")
        for line, target in _imports(path)
        if target[0] in ("patterns", "providers")
        or (target[0] == "orchestration" and target[1:2] and target[1] in front_ends)
    ]
    assert offenders == []


def test_patterns_use_only_the_public_api() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {'.'.join(target)}"
        for path in _sources("patterns")
        for line, target in _imports(path)
        if target[0] in ("orchestration", "providers") and target != ["orchestration"]
    ]
    assert offenders == []


def test_providers_use_only_the_provider_facing_modules() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {'.'.join(target)}"
        for path in _sources("providers")
        for line, target in _imports(path)
        if target[0] == "patterns"
        or (target[0] == "orchestration" and (len(target) == 1 or target[1] not in PROVIDER_MODULES))
    ]
    assert offenders == []


def test_the_package_imports_no_provider_adapter() -> None:
    # The core owns the Provider protocol; adapters are found by name (entry points).
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {'.'.join(target)}"
        for path in _sources("orchestration")
        for line, target in _imports(path)
        if target[0] == "providers"
    ]
    assert offenders == []
