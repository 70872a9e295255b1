"""Fonts for PDF reports: a Unicode text face, a monospace face, and a CJK fallback.

reportlab's built-in fonts cover Latin-1 only, so the report registers TrueType fonts
found on the system (DejaVu from Debian's ``fonts-dejavu-core``; Droid Sans Fallback
from ``fonts-droid-fallback`` for Chinese/Japanese/Korean).  Text is split into runs by
which font has the glyphs, so mixed-script paragraphs render without missing-glyph boxes.
"""

from __future__ import annotations

import logging
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FontSet", "load_fonts"]

logger = logging.getLogger("orchestration.reports")

_SEARCH_DIRS = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path("/usr/share/fonts-droid-fallback"),
    Path("/Library/Fonts"),
    Path("/System/Library/Fonts"),
    Path("C:/Windows/Fonts"),
)

_FACES = {
    "regular": ("DejaVuSans.ttf",),
    "bold": ("DejaVuSans-Bold.ttf",),
    "italic": ("DejaVuSans-Oblique.ttf",),
    "bolditalic": ("DejaVuSans-BoldOblique.ttf",),
    "mono": ("DejaVuSansMono.ttf",),
    "cjk": (
        "DroidSansFallbackFull.ttf",
        "DroidSansFallback.ttf",
        "NotoSansCJK-Regular.ttf",
        "wqy-microhei.ttf",
    ),
}


@dataclass(frozen=True)
class FontSet:
    """Registered reportlab font names for each role, and the fallback font's glyph set."""

    regular: str
    bold: str
    italic: str
    bolditalic: str
    mono: str
    fallback: str | None
    primary_glyphs: frozenset[int]
    fallback_glyphs: frozenset[int]
    mono_glyphs: frozenset[int]

    def runs(self, text: str, *, mono: bool = False) -> list[tuple[str | None, str]]:
        """Split ``text`` into ``(font or None, chunk)``; None means the surrounding font."""
        if text.isascii() or self.fallback is None:
            return [(None, text)]
        covered = self.mono_glyphs if mono else self.primary_glyphs
        runs: list[tuple[str | None, str]] = []
        current: str | None = None
        start = 0
        for index, char in enumerate(text):
            code = ord(char)
            font = (
                None if code < 128 or code in covered or code not in self.fallback_glyphs else self.fallback
            )
            if font != current and index > start:
                runs.append((current, text[start:index]))
                start = index
            current = font
        runs.append((current, text[start:]))
        return runs


def _find(names: tuple[str, ...], extra_dirs: tuple[Path, ...]) -> Path | None:
    for directory in (*extra_dirs, *_SEARCH_DIRS):
        if not directory.is_dir():
            continue
        for name in names:
            direct = directory / name
            if direct.is_file():
                return direct
            for found in directory.rglob(name):
                return found
    return None


def _glyphs(font: Any) -> frozenset[int]:
    return frozenset(getattr(font.face, "charToGlyph", {}) or ())


_cache: dict[tuple[Path, ...], FontSet] = {}  # reportlab's font registry is process-wide too
_lock = threading.Lock()


def load_fonts(extra_dirs: tuple[Path, ...] = ()) -> FontSet:
    """Find and register the report fonts (once per process); falls back to Helvetica.

    A missing Unicode font is logged with the Debian package that provides it; text is
    still rendered (characters the font lacks show as boxes).
    """
    with _lock:
        if extra_dirs not in _cache:
            _cache[extra_dirs] = _load(extra_dirs)
        return _cache[extra_dirs]


def _load(extra_dirs: tuple[Path, ...]) -> FontSet:
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    names: dict[str, str] = {}
    glyphs: dict[str, frozenset[int]] = {}
    for role, candidates in _FACES.items():
        path = _find(candidates, extra_dirs)
        if path is None:
            continue
        name = f"Report-{role}-{zlib.crc32(str(path).encode()):08x}"  # one name per file
        try:
            font = TTFont(name, str(path))
        except Exception as error:  # a broken font file is not worth failing the report
            logger.warning("report font %s could not be loaded: %s", path, error)
            continue
        pdfmetrics.registerFont(font)
        names[role] = name
        glyphs[role] = _glyphs(font)
    if "regular" not in names:
        logger.warning(
            "no Unicode font found for PDF reports; non-Latin text will not render. "
            "Install Debian's fonts-dejavu-core (or another DejaVu Sans package)."
        )
        return _builtin_fallback()
    if "cjk" not in names:
        logger.info("no CJK font found for PDF reports; install fonts-droid-fallback to render CJK text")
    regular = names["regular"]
    bold = names.get("bold", regular)
    italic = names.get("italic", regular)
    bolditalic = names.get("bolditalic", bold)
    addMapping(regular, 0, 0, regular)
    addMapping(regular, 1, 0, bold)
    addMapping(regular, 0, 1, italic)
    addMapping(regular, 1, 1, bolditalic)
    for single in {names.get("mono"), names.get("cjk")} - {None}:
        for b, i in ((0, 0), (1, 0), (0, 1), (1, 1)):
            addMapping(str(single), b, i, str(single))  # no bold/italic faces: keep the one
    return FontSet(
        regular=regular,
        bold=bold,
        italic=italic,
        bolditalic=bolditalic,
        mono=names.get("mono", "Courier"),
        fallback=names.get("cjk"),
        primary_glyphs=glyphs["regular"],
        fallback_glyphs=glyphs.get("cjk", frozenset()),
        mono_glyphs=glyphs.get("mono", frozenset(range(128))),
    )


def _builtin_fallback() -> FontSet:
    return FontSet(
        regular="Helvetica",
        bold="Helvetica-Bold",
        italic="Helvetica-Oblique",
        bolditalic="Helvetica-BoldOblique",
        mono="Courier",
        fallback=None,
        primary_glyphs=frozenset(range(256)),
        fallback_glyphs=frozenset(),
        mono_glyphs=frozenset(range(256)),
    )
