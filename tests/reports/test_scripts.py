"""Writing systems in PDF reports: CJK from a system font, right-to-left text in visual order,
and a warning for characters no installed font can draw."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from pathlib import Path

import arabic_reshaper
from bidi import get_display

from orchestration import OrchestratorConfig, ScriptedProvider
from orchestration.events import EventType, StreamEvent
from orchestration.reports import write_reports
from orchestration.reports.fonts import load_fonts
from tests.conftest import require_service
from tests.streaming.demo import DemoOrchestrator

from .sample import sample_result

_WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)"[^>]*>([^<]*)</word>')


def _drawn_words(pdf: str | Path) -> list[tuple[int, float, str]]:
    """Words as drawn, by line and left to right (``pdftotext -bbox`` keeps glyph order);
    a line is (page, top) folded into one number."""
    require_service("pdftotext", shutil.which("pdftotext") is not None, "apt-get install poppler-utils")
    out = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True)
    words = []
    for page, xml in enumerate(out.stdout.split("<page ")):
        words += [(page * 10_000 + round(float(y)), float(x), text) for x, y, text in _WORD.findall(xml)]
    return sorted(words)


def _line_of(words: list[tuple[int, float, str]], word: str) -> list[str]:
    y = next(top for top, _, text in words if text == word)
    return [text for top, _, text in words if top == y]


def test_hebrew_and_arabic_are_drawn_in_visual_order(tmp_path: Path) -> None:
    letters = "אבגדהוזחטיכלמנסעפצקרשת"
    words = ["".join(t) for t in itertools.islice(itertools.product(letters, repeat=3), 1, 3000, 53)][:45]
    arabic = "مرحبا بالعالم"
    content = f"Hebrew: שלום עולם then Latin\n\n{' '.join(words)}\n\nArabic: {arabic}\n"
    pdf = write_reports(sample_result(big=content), ["pdf"], tmp_path)[0].path
    drawn = _drawn_words(pdf)

    assert _line_of(drawn, "Hebrew:")[1:3] == ["םלוע", "םולש"]  # an RTL run inside LTR text
    lines = sorted({top for top, _, text in drawn if text in {w[::-1] for w in words}})
    assert len(lines) >= 2  # the paragraph wraps: each line is reordered on its own
    first = [text for top, _, text in drawn if top == lines[0]]
    last = [text for top, _, text in drawn if top == lines[-1]]
    assert first[-1] == words[0][::-1] and last[0] == words[-1][::-1]  # starts top right, ends bottom left
    shaped = str(get_display(arabic_reshaper.reshape(arabic))).split()
    assert _line_of(drawn, "Arabic:")[1:] == shaped  # joined letter forms, right to left


def test_cjk_is_drawn_from_a_system_font(tmp_path: Path) -> None:
    fonts = load_fonts()
    assert fonts.fallback is not None, (
        "no CJK font: apt-get install fonts-droid-fallback (or a TrueType Noto CJK)"
    )
    assert all(fonts.covers(c) for c in "你好世界こんにちは한국어")
    pdf = write_reports(sample_result(big="中文 你好世界 · 日本語 こんにちは · 한국어"), ["pdf"], tmp_path)[
        0
    ].path
    require_service("pdffonts", shutil.which("pdffonts") is not None, "apt-get install poppler-utils")
    listed = subprocess.run(["pdffonts", pdf], capture_output=True, text=True, check=True).stdout
    embedded = [line.split()[0] for line in listed.splitlines()[2:] if " yes " in line]
    assert any("DroidSansFallback" in name or "CJK" in name for name in embedded), listed
    drawn = {text for _, _, text in _drawn_words(pdf)}
    assert {"你好世界", "こんにちは", "한국어"} <= drawn


def test_a_character_no_font_has_is_a_warning_event(tmp_path: Path) -> None:
    fonts = load_fonts()
    missing = next(c for c in "\U00013000\U00016a0f\U0001d2e0\U0010fffd" if not fonts.covers(c))
    config = OrchestratorConfig(
        max_retries=0, generate_documents=True, document_formats=["pdf"], output_directory=str(tmp_path)
    )
    seen: list[StreamEvent] = []
    provider = ScriptedProvider(lambda request: f"An old sign: {missing} and 你好.", count_tokens=False)
    result = DemoOrchestrator(config, provider).run_sync("Signs", stream_callback=seen.append)
    assert [d.format for d in result.generated_documents] == ["pdf"]
    warnings = [e.data["message"] for e in seen if e.event_type is EventType.WARNING]
    assert len(warnings) == 1 and f"U+{ord(missing):04X}" in warnings[0], warnings
    assert "你" not in warnings[0]  # CJK comes from the fallback font: not missing
    assert "install a font" in warnings[0]
