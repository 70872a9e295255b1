"""``from orchestration import X`` is the public API: ``__all__`` lists exactly what it offers."""

from __future__ import annotations

import subprocess
import sys

import orchestration


def test_every_exported_name_resolves() -> None:
    missing = [name for name in orchestration.__all__ if getattr(orchestration, name, None) is None]
    assert missing == []


def test_all_is_an_explicit_tuple_without_duplicates() -> None:
    assert isinstance(orchestration.__all__, tuple)
    assert len(set(orchestration.__all__)) == len(orchestration.__all__)


def test_lazy_names_are_listed_in_all() -> None:
    lazy = set(orchestration._LAZY)
    assert lazy - set(orchestration.__all__) == set()


def test_the_graph_api_is_public() -> None:
    from orchestration import Edge, Graph, Node, NodeKind
    from orchestration.graph import Graph as GraphInModule

    assert Graph is GraphInModule
    graph = Graph(
        nodes=[Node(id="a"), Node(id="b", kind=NodeKind.TERMINAL)],
        edges=[Edge(source="a", target="b")],
        entry="a",
    )
    assert graph.entry == "a"


def test_importing_the_package_loads_no_pattern_graph_or_report_module() -> None:
    code = (
        "import sys, orchestration; "
        "print(sorted(m for m in sys.modules if m.startswith(('patterns', 'orchestration.graph', "
        "'orchestration.reports', 'orchestration.server', 'providers'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
