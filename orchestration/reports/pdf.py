"""The PDF report (reportlab): the Markdown report's sections laid out for reading.

A title block with the run's metadata, a table of contents with page numbers and PDF
bookmarks, every section's Markdown as headings/paragraphs/lists/tables/code, a bar
chart of cost per agent in the cost section, and page numbers in the footer.  Text in
table rows (the title block, the contents) and section headings is cut to
:data:`_MAX_ROW_CHARS` (a row cannot be taller than a page, and a heading split across
pages would lose its bookmark); paragraphs wrap at any length.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..events import StreamEvent
from ..models import OrchestratorResult
from ..utils import format_usd
from .bidi import visual
from .flowables import Styles, make_styles, markdown_to_flowables, text_markup
from .fonts import FontSet, collecting_missing, load_fonts
from .markdown import Section, agent_costs, build_sections, front_matter

__all__ = ["render_pdf", "write_pdf"]

_MAX_CHART_BARS = 25
_MAX_ROW_CHARS = 300
# Above this much section text the contents list has links but no page numbers, so the
# document is laid out once instead of twice (a 1 MB agent output is ~300 pages).
_SINGLE_PASS_CHARS = 250_000
# reportlab keeps some layout state per process; runs that finish together (the core writes
# reports in a worker thread) build their PDFs one at a time.
_BUILD_LOCK = threading.Lock()


def _require_reportlab() -> None:
    try:
        import reportlab  # noqa: F401
    except ImportError as error:  # pragma: no cover - reportlab is a core dependency
        from . import ReportDependencyError

        raise ReportDependencyError(
            "PDF reports need reportlab: pip install reportlab (or pip install multi-agent-orchestration)"
        ) from error


def _cost_chart(costs: list[tuple[str, float]], fonts: FontSet, width: float) -> Any:
    from reportlab.graphics.charts.barcharts import HorizontalBarChart
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    ranked = sorted(costs, key=lambda item: item[1], reverse=True)
    if len(ranked) > _MAX_CHART_BARS:
        rest = sum(cost for _, cost in ranked[_MAX_CHART_BARS - 1 :])
        ranked = [*ranked[: _MAX_CHART_BARS - 1], (f"{len(costs) - _MAX_CHART_BARS + 1} others", rest)]
    ranked.reverse()  # the chart draws its first category at the bottom
    bar_height = 16
    height = bar_height * len(ranked) + 60
    drawing = Drawing(width, height)
    chart = HorizontalBarChart()
    chart.x, chart.y = 130, 30
    chart.width, chart.height = width - 170, bar_height * len(ranked)
    chart.data = [[cost for _, cost in ranked]]
    chart.bars[0].fillColor = colors.HexColor("#3c78b4")
    chart.bars[0].strokeColor = None
    chart.barWidth = bar_height * 0.6
    labels = [visual(_label(name)) for name, _ in ranked]
    chart.categoryAxis.categoryNames = labels
    chart.categoryAxis.labels.fontName = fonts.font_for_all(labels)
    chart.categoryAxis.labels.fontSize = 8
    chart.categoryAxis.labels.boxAnchor = "e"
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontName = fonts.regular
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.labelTextFormat = format_usd
    drawing.add(chart)
    drawing.add(String(0, height - 14, "Cost per agent (USD)", fontName=fonts.bold, fontSize=10))
    return drawing


def _label(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "\u2026"


def _title_block(result: OrchestratorResult, styles: Styles, width: float) -> list[Any]:
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    fonts = styles.fonts
    meta = front_matter(result)
    labels = {
        "date": "Date", "run_id": "Run id", "status": "Status", "models": "Models", "agents": "Agents",
        "total_cost_usd": "Total cost", "input_tokens": "Input tokens", "output_tokens": "Output tokens",
        "execution_time_s": "Duration",
    }  # fmt: skip
    rows = []
    for key, label in labels.items():
        value = meta[key]
        if key == "models":
            value = ", ".join(str(m) for m in value) if isinstance(value, list) and value else "n/a"
        elif key == "total_cost_usd":
            value = format_usd(result.total_cost)
        elif key == "execution_time_s":
            value = f"{result.execution_time:.1f} s"
        elif isinstance(value, int):
            value = f"{value:,}"
        rows.append([
            Paragraph(f"<b>{label}</b>", styles["cell"]),
            Paragraph(text_markup(_label(str(value), _MAX_ROW_CHARS), fonts), styles["cell"]),
        ])  # fmt: skip
    table = Table(rows, colWidths=[width * 0.25, width * 0.75], hAlign="LEFT")
    table.setStyle(TableStyle([
        ("LINEBELOW", (0, 0), (-1, -1), 0.3, colors.HexColor("#dddddd")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))  # fmt: skip
    title = Paragraph(text_markup(result.title or result.run_id, fonts), styles["h1"])
    return [title, table]


def _toc(styles: Styles, entries: list[tuple[int, str, int, str]]) -> Any:
    from reportlab.platypus.tableofcontents import TableOfContents

    toc = TableOfContents(dotsMinLevel=0)
    toc.levelStyles = [styles["toc0"], styles["toc1"]]
    # Known entries with placeholder pages give the first pass the contents' real height,
    # so multiBuild settles in two passes instead of three (a third of the time on big runs).
    toc._entries = list(entries)  # beforeBuild() moves these to _lastEntries
    return toc


def _story(
    result: OrchestratorResult,
    sections: list[Section],
    styles: Styles,
    width: float,
    *,
    numbered_toc: bool,
) -> list[Any]:
    from reportlab.platypus import Paragraph, Spacer

    fonts = styles.fonts
    story: list[Any] = _title_block(result, styles, width)
    entries = [
        (s.level - 2, text_markup(_label(s.title, _MAX_ROW_CHARS), fonts), 0, f"section-{n}")
        for n, s in enumerate(sections)
    ]
    story += [Spacer(1, 12), Paragraph("Contents", styles["h2"])]
    if numbered_toc:
        story.append(_toc(styles, entries))
    else:
        for level, markup, _, key in entries:
            story.append(Paragraph(f'<a href="#{key}">{markup}</a>', styles["toc1" if level else "toc0"]))
    for section, (level, markup, _, key) in zip(sections, entries, strict=True):
        heading = Paragraph(markup, styles[f"h{section.level}"])  # cut: a heading must not split
        heading._report_toc = (level, markup, key, section.title)
        story.append(heading)
        story.extend(markdown_to_flowables(section.body, styles, width))
        if section.kind == "costs":
            costs = agent_costs(result)
            if any(cost > 0 for _, cost in costs):
                story += [Spacer(1, 10), _cost_chart(costs, fonts, width)]
            else:
                story.append(Paragraph("No costs were recorded for this run.", styles["meta"]))
    return story


def render_pdf(
    result: OrchestratorResult,
    path: str | os.PathLike[str],
    *,
    events: Sequence[StreamEvent] | None = None,
    font_dirs: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Write the PDF report for ``result`` to ``path`` (atomically) and return the path."""
    write_pdf(result, path, events=events, font_dirs=font_dirs)
    return Path(path)


def write_pdf(
    result: OrchestratorResult,
    path: str | os.PathLike[str],
    *,
    events: Sequence[StreamEvent] | None = None,
    font_dirs: Sequence[str | os.PathLike[str]] = (),
) -> set[str]:
    """Write the PDF report like :func:`render_pdf`; returns the characters no font could
    draw (shown as boxes), so the caller can say which fonts to install."""
    _require_reportlab()
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate

    fonts = load_fonts(tuple(Path(d) for d in font_dirs))
    styles = make_styles(fonts)
    footer_title = visual(_label(result.title or result.run_id, 80))

    class ReportDoc(BaseDocTemplate):  # type: ignore[misc]
        def afterFlowable(self, flowable: Any) -> None:
            entry = getattr(flowable, "_report_toc", None)
            if entry is not None:
                level, markup, key, title = entry  # a viewer shows outlines in logical order
                self.canv.bookmarkPage(key)
                self.canv.addOutlineEntry(title[:120], key, level=level, closed=True)
                self.notify("TOCEntry", (level, markup, self.page, key))

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFillColorRGB(0.4, 0.4, 0.4)
        x = doc.leftMargin
        for font, chunk in fonts.runs(footer_title):
            canvas.setFont(font or fonts.regular, 8)
            canvas.drawString(x, 10 * mm, chunk)
            x += canvas.stringWidth(chunk, font or fonts.regular, 8)
        canvas.setFont(fonts.regular, 8)
        canvas.drawRightString(doc.pagesize[0] - doc.rightMargin, 10 * mm, f"Page {doc.page}")
        canvas.restoreState()

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".report-", suffix=".pdf", dir=target.parent)
    os.close(handle)
    try:
        doc = ReportDoc(
            temporary, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=18 * mm,
            bottomMargin=20 * mm, title=(result.title or result.run_id)[:200],
            author="multi-agent-orchestration", subject=f"Run {result.run_id}"[:200],
        )  # fmt: skip
        frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body")
        doc.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=footer)])
        sections = build_sections(result, events)
        numbered = sum(len(section.body) for section in sections) <= _SINGLE_PASS_CHARS
        with collecting_missing() as missing:
            story = _story(result, sections, styles, doc.width, numbered_toc=numbered)
            with _BUILD_LOCK:
                if numbered:
                    doc.multiBuild(story)
                else:
                    doc.build(story)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return missing
