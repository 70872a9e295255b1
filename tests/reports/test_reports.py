"""Markdown and PDF reports: content, escaping at every markup boundary, real runs, saved results."""

from __future__ import annotations

import importlib.util
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import markdown as python_markdown
import pytest
from pypdf import PdfReader

from orchestration import OrchestratorConfig
from orchestration.errors import ConfigError
from orchestration.models import OrchestratorResult
from orchestration.reports import ReportDependencyError, render_markdown, render_pdf, write_reports
from orchestration.reports.__main__ import main as reports_main
from tests.streaming.demo import DemoOrchestrator

from .sample import sample_result

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SECTIONS = ["Summary", "Final synthesis", "Synthesis levels", "Level 1: synth-1", "Level 2: synth-2",
            "Agent results", "agent-t1 (t1)", "agent-t2 (t2)", "agent-t3 (t3)", "Costs", "By agent", "By model"]  # fmt: skip
LITERALS = ["<b>never closed", "R&D costs & benefits", "<img src=/etc/passwd>", "<script>alert('x')</script>",
            "Καλημέρα κόσμε", '<font name="Nope">fake reportlab markup</font>']  # fmt: skip
CJK = ["你好", "こんにちは", "Analyse 数据 (data)", "Market research: R&D <b> 市场"]


def _pdf_text(path: Path) -> str:
    text = "\n".join(page.extract_text() for page in PdfReader(path).pages)
    return re.sub(r"[ \t]+", " ", text)


def test_markdown_has_front_matter_contents_sections_and_costs() -> None:
    import yaml

    markdown = render_markdown(sample_result())
    front = yaml.safe_load(markdown.split("---\n")[1])
    assert front["title"] == "Market research: R&D <b> 市场" and front["run_id"] == "run-abc123"
    assert front["models"] == ["gpt-4o-mini", "claude-haiku"]
    assert front["total_cost_usd"] == pytest.approx(0.0345) and front["input_tokens"] == 4400
    contents = markdown.split("## Contents")[1].split("<a id=")[0]
    for title in ["Summary", "Final synthesis", "Level 1: synth-1", "agent-t3 (t3)", "Costs"]:
        assert f"[{title.replace('(', '(')}" in contents or title in contents
        assert f"## {title}" in markdown or f"### {title}" in markdown
    assert "| agent-t1 | 2 | 1,200 | 800 | $0.0123 |" in markdown
    assert "| **Total** | 5 | 4,400 | 1,900 | **$0.0345** |" in markdown
    assert "| gpt-4o-mini | 4 | 3,500 | 1,500 | $0.0284 |" in markdown


def test_markdown_neutralises_html_and_forged_headings() -> None:
    markdown = render_markdown(sample_result())
    html = python_markdown.markdown(markdown, extensions=["tables"])  # a permissive viewer: raw HTML passes
    html_outside_anchors = re.sub(r'<a id="[\w-]+"></a>', "", html)
    for tag in ("<script", "<img", "<b>", "<font", "<i>"):
        assert tag not in html_outside_anchors
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in html  # shown, not run
    assert "&amp;amp;" in html  # a literal "&amp;" from the model stays literal
    assert "\n# Final" not in markdown and "### Final" in markdown  # demoted below the section
    assert 'return f"<hello {name}>"' in markdown  # code is untouched


def test_pdf_contains_every_section_and_renders_hostile_text_literally(tmp_path: Path) -> None:
    path = render_pdf(sample_result(), tmp_path / "report.pdf")
    text = _pdf_text(path)
    for title in SECTIONS + LITERALS:
        assert title in text, title
    assert "Page 1" in text and "Page 3" in text
    assert "Cost per agent (USD)" in text  # the chart
    reader = PdfReader(path)
    fonts = {str(f) for page in reader.pages for f in (page["/Resources"].get("/Font") or {}).values()}  # type: ignore[attr-defined]
    assert fonts  # fonts are embedded (TrueType subsets), not the Latin-1 base 14
    top_level = [item.title for item in reader.outline if not isinstance(item, list)]
    assert top_level[:3] == ["Summary", "Final synthesis", "Synthesis levels"]


def test_pdf_renders_chinese_and_japanese(tmp_path: Path) -> None:
    from orchestration.reports.fonts import load_fonts

    assert load_fonts().fallback is not None, "no CJK font: apt-get install fonts-droid-fallback"
    text = _pdf_text(render_pdf(sample_result(), tmp_path / "cjk.pdf"))
    for literal in CJK:
        assert literal in text, literal


def test_pdf_page_image_for_review(tmp_path: Path) -> None:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = render_pdf(sample_result(), ARTIFACTS / "report-sample.pdf")
    subprocess.run(["pdftoppm", "-r", "70", "-png", "-f", "1", "-l", "3", str(pdf), str(ARTIFACTS / "report-page")],
                   check=True)  # fmt: skip
    assert (ARTIFACTS / "report-page-1.png").stat().st_size > 10_000


def test_a_megabyte_of_text_renders(tmp_path: Path) -> None:
    rng = random.Random(5)
    words = ["lorem", "ipsum", "<b>", "R&D", "你好", "Ελλάδα", "dolor", "x" * 40]
    paragraphs = [" ".join(rng.choice(words) for _ in range(150)) for _ in range(1100)]
    big = "\n\n".join(paragraphs) + "\n\nTHE-END-MARKER " + "y" * 20_000
    assert len(big) > 1_000_000
    documents = write_reports(sample_result(big=big), ["markdown", "pdf"], tmp_path)
    assert {d.format for d in documents} == {"markdown", "pdf"}
    reader = PdfReader(documents[1].path)
    assert len(reader.pages) > 100
    tail = "".join(reader.pages[i].extract_text() for i in range(len(reader.pages) - 12, len(reader.pages)))
    assert "THE-END-MARKER" in tail and "Cost per agent" in tail


def test_real_run_writes_reports_listed_in_the_result(tmp_path: Path) -> None:
    config = OrchestratorConfig(
        max_retries=0,
        generate_documents=True,
        document_formats=["markdown", "pdf"],
        output_directory=str(tmp_path),
    )
    orchestrator = DemoOrchestrator(config)
    result = orchestrator.run_sync("Research reports", title="Reports Αναφορές")
    assert result.status.value == "completed", result.error
    documents = {d.format: d for d in result.generated_documents}
    assert set(documents) == {"markdown", "pdf"}
    for document in documents.values():
        assert Path(document.path).stat().st_size == document.size_bytes
    markdown = Path(documents["markdown"].path).read_text(encoding="utf-8")
    text = _pdf_text(Path(documents["pdf"].path))
    for agent in result.agent_results:
        assert agent.agent_id in markdown and agent.agent_id in text
    for section in ("Summary", "Final synthesis", "Agent results", "Costs", "Run log", "Reports Αναφορές"):
        assert section in markdown and section in text
    assert "<script>window.__pwned = true</script>" in text
    assert "&lt;script>" in markdown


def test_saved_result_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "result.json"
    saved.write_text(json.dumps(sample_result().to_dict()), encoding="utf-8")
    assert reports_main([str(saved), "--format", "md,pdf", "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["markdown", "pdf"]
    restored = OrchestratorResult.from_dict(json.loads(saved.read_text(encoding="utf-8")))
    assert render_markdown(restored).split("date:")[0] == render_markdown(sample_result()).split("date:")[0]
    assert reports_main([str(saved), "--format", "docx", "--out", str(tmp_path)]) == 1
    assert "unknown report format" in capsys.readouterr().err
    assert reports_main([str(tmp_path / "missing.json")]) == 1


def test_unknown_format_and_missing_dependency_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="unknown report format"):
        write_reports(sample_result(), ["html"], tmp_path)
    with pytest.raises(ConfigError):
        write_reports(sample_result(), [], tmp_path)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "reportlab" else real_find_spec(name, *a),
    )
    with pytest.raises(ReportDependencyError, match="pip install reportlab"):
        write_reports(sample_result(), ["markdown", "pdf"], tmp_path / "never")
    assert not (tmp_path / "never").exists()  # nothing half-written
    assert (
        write_reports(sample_result(), ["md"], tmp_path)[0].format == "markdown"
    )  # markdown needs no extras


def test_file_names_are_safe(tmp_path: Path) -> None:
    result = sample_result()
    hostile = OrchestratorResult.from_dict(
        {**result.to_dict(), "task_id": "../../etc/passwd", "title": "../x/./y"}
    )
    documents = write_reports(hostile, ["markdown"], tmp_path)
    assert Path(documents[0].path).parent == tmp_path
    assert Path(documents[0].path).name == "x-y-etc-passwd.md"


HOSTILE_MARKDOWN = {
    "wide table": "|"
    + "|".join(f"c{i}" for i in range(60))
    + "|\n|"
    + "---|" * 60
    + "\n|"
    + "v|" * 59
    + "END-OF-TABLE|",
    "image": "![a chart](https://example.com/chart.png) END-OF-IMAGE",
    "very deep quotes": ">" * 300 + " very deep END-OF-DEEPQUOTE",
    "tall cell": "| a | b |\n|---|---|\n| " + "word " * 3000 + "END-OF-CELL | x |",
    "huge inline code": "`" + "code " * 6000 + "END-OF-CODE`",
    "huge bold": "**" + "bold " * 6000 + "END-OF-BOLD**",
    "deep quotes": ">" * 60 + " deep END-OF-QUOTE",
    "deep list": "\n".join("  " * i + f"- item {i}" for i in range(60)) + " END-OF-LIST",
    "script link": "[click](javascript:alert(1)) <javascript:alert(2)> END-OF-LINKS",
    "control characters": "a\x00b\x01c\x0bd END-OF-CONTROL",
    "long code line": "```\n" + "x" * 50_000 + "END-OF-LINE\n```",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_MARKDOWN))
def test_hostile_markdown_lays_out(name: str, tmp_path: Path) -> None:
    text = HOSTILE_MARKDOWN[name]
    path = render_pdf(sample_result(big=text), tmp_path / "hostile.pdf")
    extracted = re.sub(r"\s+", "", _pdf_text(path))
    marker = re.search(r"END-OF-[A-Z]+", text)
    assert marker is not None and marker.group(0).replace("-", "") in extracted.replace("-", "")
    assert "javascript:" not in str(PdfReader(path).pages[1].get("/Annots", ""))


def test_nothing_the_parser_drops_goes_missing() -> None:
    from orchestration.reports.flowables import make_styles, markdown_to_flowables
    from orchestration.reports.fonts import load_fonts
    from orchestration.reports.markdown import build_sections

    styles = make_styles(load_fonts())
    kinds = {
        section.title: [type(f).__name__ for f in markdown_to_flowables(section.body, styles, 450)]
        for section in build_sections(sample_result())
    }
    assert {"ListFlowable", "Table", "XPreformatted"} <= set(kinds["agent-t1 (t1)"])  # parsed, not literal
    assert kinds["agent-t1 (t1)"][0] == "Paragraph"
    too_deep = markdown_to_flowables(">" * 300 + " deep", styles, 450)  # flattened, not lost
    assert [type(f).__name__ for f in too_deep] == ["Paragraph"]
    assert too_deep[0].getPlainText().endswith(" deep")
