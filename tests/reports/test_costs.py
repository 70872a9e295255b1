"""Costs in reports: no non-zero amount prints as zero (Markdown, PDF tables, the PDF chart axis)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from pypdf import PdfReader

from orchestration.reports import render_markdown, render_pdf
from orchestration.usage import Usage
from orchestration.utils import format_usd

from .sample import sample_result

ZERO_LOOKING = re.compile(r"\$0\.0+(?![0-9])")  # "$0.0000" and the like, but not "$0"


def tiny_result() -> object:
    """A run whose every call cost a few millionths of a dollar."""
    result = sample_result()
    agents = {
        name: Usage(input_tokens=10, output_tokens=5, cost_usd=cost, calls=1)
        for name, cost in [("agent-t1", 0.0000031), ("agent-t2", 0.0000012), ("agent-t3", 0.00000047)]
    }
    total = sum(agents.values(), Usage())
    return replace(
        result,
        cost_by_agent=agents,
        cost_by_model={"gpt-4o-mini": total},
        usage=total,
        total_cost=total.cost_usd,
        agent_results=[
            replace(a, cost=agents[a.agent_id].cost_usd, usage=agents[a.agent_id])
            for a in result.agent_results
        ],
        synthesis_results=[replace(s, cost=0.000002) for s in result.synthesis_results],
    )


def test_format_usd() -> None:
    assert format_usd(0) == "$0"
    assert format_usd(0.0123) == "$0.0123"
    assert format_usd(0.5) == "$0.5000"
    assert format_usd(1234.5) == "$1,234.50"
    assert format_usd(0.0000031) == "$0.0000031"
    assert format_usd(0.0012) == "$0.0012"
    assert format_usd(-0.003) == "-$0.0030"
    for exponent in range(2, 12):
        assert ZERO_LOOKING.fullmatch(format_usd(3 * 10**-exponent)) is None, exponent


def test_markdown_costs_never_read_as_zero() -> None:
    markdown = render_markdown(tiny_result())  # type: ignore[arg-type]
    assert ZERO_LOOKING.search(markdown) is None, ZERO_LOOKING.findall(markdown)
    assert "| agent-t1 | 1 | 10 | 5 | $0.0000031 |" in markdown
    assert "- **Cost:** $0.0000048" in markdown  # 3.1e-6 + 1.2e-6 + 4.7e-7


def test_pdf_tables_and_chart_axis_never_read_as_zero(tmp_path: Path) -> None:
    path = render_pdf(tiny_result(), tmp_path / "tiny.pdf")  # type: ignore[arg-type]
    text = "\n".join(page.extract_text() for page in PdfReader(path).pages)
    assert "$0.0000031" in text and "$0.0000048" in text
    assert ZERO_LOOKING.search(text) is None, ZERO_LOOKING.findall(text)
    chart = text[text.rindex("agent-t1") :]  # the chart's bar labels, then its value axis
    assert "Cost per agent (USD)" in chart
    axis = re.findall(r"\$0\.0*[1-9][0-9]*", chart)
    assert len(axis) >= 3  # the value axis has labelled ticks, each non-zero
