"""Fonts for PDF reports: a Unicode text face, a monospace face, and fallbacks per glyph.

reportlab's built-in fonts cover Latin-1 only, so the report registers TrueType fonts
found on the system: DejaVu (Debian's ``fonts-dejavu-core``) for text, then fallback fonts
for what DejaVu lacks: Droid Sans Fallback (``fonts-droid-fallback``) or a TrueType Noto
CJK for Chinese/Japanese/Korean, and whatever fontconfig (``fc-list``) knows for other
scripts.  Text is split into runs by the first font that has each glyph, so mixed-script
paragraphs render without missing-glyph boxes; characters no font has are collected
(:func:`collecting_missing`) so the run can say so in a warning.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import shutil
import subprocess
import threading
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FontSet", "collecting_missing", "load_fonts"]

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
}
# Fallback fonts by file name, best first (reportlab reads TrueType outlines only: the
# CFF-based .otf/.ttc of Debian's fonts-noto-cjk are tried and skipped).
_FALLBACKS = (
    "DroidSansFallbackFull.ttf",
    "DroidSansFallback.ttf",
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKsc-Regular.ttf",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
)
# Languages fontconfig is asked about for more fallbacks (scripts DejaVu Sans lacks).
_FONTCONFIG_LANGS = ("zh", "ja", "ko", "hi", "bn", "ta", "th", "km", "my", "am", "si")
_MAX_FALLBACKS = 8
_STYLED = re.compile(r"bold|italic|oblique|light|thin|black|heavy|condensed|mono", re.IGNORECASE)


@dataclass(frozen=True)
class FontSet:
    """Registered reportlab font names for each role, and the fallbacks' glyph sets."""

    regular: str
    bold: str
    italic: str
    bolditalic: str
    mono: str
    primary_glyphs: frozenset[int]
    mono_glyphs: frozenset[int]
    fallbacks: tuple[tuple[str, frozenset[int]], ...] = ()

    @property
    def fallback(self) -> str | None:
        """The first fallback font (the CJK one when the system has one), or None."""
        return self.fallbacks[0][0] if self.fallbacks else None

    def covers(self, char: str) -> bool:
        """True when some font of the set can draw ``char``."""
        code = ord(char)
        return code in self.primary_glyphs or any(code in glyphs for _, glyphs in self.fallbacks)

    def runs(self, text: str, *, mono: bool = False) -> list[tuple[str | None, str]]:
        """Split ``text`` into ``(font or None, chunk)``; None means the surrounding font.

        Each character goes to the first font that has it (the surrounding face, then the
        regular face for code, then each fallback); one that no font has is recorded for
        :func:`collecting_missing` and left in the surrounding font.
        """
        if text.isascii():
            return [(None, text)]
        chain = self._chain(mono)
        runs: list[tuple[str | None, str]] = []
        current: str | None = None
        start = 0
        for index, char in enumerate(text):
            font = self._font_for(char, chain)
            if font != current and index > start:
                runs.append((current, text[start:index]))
                start = index
            current = font
        runs.append((current, text[start:]))
        return runs

    def font_for_all(self, texts: list[str]) -> str:
        """One font that draws every character of ``texts`` (for a chart axis, which has
        one font): the regular face if it can, else the first fallback that can."""
        needed = {ord(c) for text in texts for c in text if not c.isascii()}
        for name, glyphs in ((self.regular, self.primary_glyphs), *self.fallbacks):
            if needed <= glyphs:
                return name
        for text in texts:
            self.runs(text)  # records what no font has
        return self.regular

    def _chain(self, mono: bool) -> tuple[tuple[str | None, frozenset[int]], ...]:
        if mono:
            return ((None, self.mono_glyphs), (self.regular, self.primary_glyphs), *self.fallbacks)
        return ((None, self.primary_glyphs), *self.fallbacks)

    def _font_for(self, char: str, chain: tuple[tuple[str | None, frozenset[int]], ...]) -> str | None:
        code = ord(char)
        if code < 128:
            return None
        for name, glyphs in chain:
            if code in glyphs:
                return name
        missing = _missing.get()
        if missing is not None and unicodedata.category(char)[0] not in "CZ":  # controls, spaces
            missing.add(char)
        return None


_missing: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("report_missing", default=None)


@contextlib.contextmanager
def collecting_missing() -> Iterator[set[str]]:
    """Collect, while the block runs (in this thread), the characters no font could draw."""
    found: set[str] = set()
    token = _missing.set(found)
    try:
        yield found
    finally:
        _missing.reset(token)


def _find(names: tuple[str, ...], extra_dirs: tuple[Path, ...]) -> list[Path]:
    """Files with these names in the font folders, in the order of ``names``."""
    found: list[Path] = []
    for name in names:
        for directory in (*extra_dirs, *_SEARCH_DIRS):
            if not directory.is_dir():
                continue
            direct = directory / name
            match = direct if direct.is_file() else next(directory.rglob(name), None)
            if match is not None:
                found.append(match)
                break
    return found


def _fontconfig_files() -> list[Path]:
    """Regular-style font files fontconfig lists for scripts the text face lacks."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    files: list[Path] = []
    for lang in _FONTCONFIG_LANGS:
        try:
            listed = subprocess.run(
                [fc_list, f":lang={lang}", "file"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return files
        for line in sorted(listed.splitlines()):
            path = Path(line.rstrip().rstrip(":"))
            if path.suffix.lower() in (".ttf", ".ttc") and not _STYLED.search(path.stem):
                files.append(path)
    return files


def _glyphs(font: Any) -> frozenset[int]:
    return frozenset(getattr(font.face, "charToGlyph", {}) or ())


_cache: dict[tuple[Path, ...], FontSet] = {}  # reportlab's font registry is process-wide too
_lock = threading.Lock()


def load_fonts(extra_dirs: tuple[Path, ...] = ()) -> FontSet:
    """Find and register the report fonts (once per process); falls back to Helvetica.

    A missing Unicode font is logged with the Debian package that provides it; text is
    still rendered (characters no font has show as boxes and are reported).
    """
    with _lock:
        if extra_dirs not in _cache:
            _cache[extra_dirs] = _load(extra_dirs)
        return _cache[extra_dirs]


def _register(path: Path) -> tuple[str, frozenset[int]] | None:
    """Register the TrueType font at ``path``; None (logged) if reportlab cannot read it."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    crc = f"{zlib.crc32(str(path).encode()):08x}"
    name = f"Report-{path.stem[:40]}-{crc}"  # one name per file
    try:
        font = TTFont(name, str(path))
    except Exception as error:  # e.g. PostScript (CFF) outlines: not worth failing the report
        logger.debug("report font %s could not be loaded: %s", path, error)
        return None
    registered = (pdfmetrics.getFont(n) for n in pdfmetrics.getRegisteredFontNames())
    if font.face.name in {getattr(getattr(f, "face", None), "name", None) for f in registered}:
        # reportlab shares one font per face name: two files named alike (Debian's Droid
        # Sans Fallback and Fallback Full) would draw from the first one's glyphs.
        font.face.name += f"-{crc}".encode()
    pdfmetrics.registerFont(font)
    return name, _glyphs(font)


def _load(extra_dirs: tuple[Path, ...]) -> FontSet:
    from reportlab.lib.fonts import addMapping

    faces: dict[str, tuple[str, frozenset[int]]] = {}
    for role, candidates in _FACES.items():
        for path in _find(candidates, extra_dirs):
            registered = _register(path)
            if registered is not None:
                faces[role] = registered
                break
    if "regular" not in faces:
        logger.warning(
            "no Unicode font found for PDF reports; non-Latin text will not render. "
            "Install Debian's fonts-dejavu-core (or another DejaVu Sans package)."
        )
        return _builtin_fallback()
    fallbacks = _fallbacks(extra_dirs, faces)
    if not fallbacks:
        logger.info("no CJK font found for PDF reports; install fonts-droid-fallback to render CJK text")
    regular = faces["regular"][0]
    bold = faces.get("bold", faces["regular"])[0]
    italic = faces.get("italic", faces["regular"])[0]
    bolditalic = faces.get("bolditalic", faces.get("bold", faces["regular"]))[0]
    addMapping(regular, 0, 0, regular)
    addMapping(regular, 1, 0, bold)
    addMapping(regular, 0, 1, italic)
    addMapping(regular, 1, 1, bolditalic)
    mono = faces.get("mono")
    for single in [name for name, _ in fallbacks] + ([mono[0]] if mono else []):
        for b, i in ((0, 0), (1, 0), (0, 1), (1, 1)):
            addMapping(single, b, i, single)  # no bold/italic faces: keep the one
    return FontSet(
        regular=regular,
        bold=bold,
        italic=italic,
        bolditalic=bolditalic,
        mono=mono[0] if mono else "Courier",
        primary_glyphs=faces["regular"][1],
        mono_glyphs=mono[1] if mono else frozenset(range(128)),
        fallbacks=tuple(fallbacks),
    )


def _fallbacks(
    extra_dirs: tuple[Path, ...], faces: dict[str, tuple[str, frozenset[int]]]
) -> list[tuple[str, frozenset[int]]]:
    """Fallback fonts that add glyphs the text face lacks, known CJK fonts first."""
    covered = set(faces["regular"][1])
    used = {name for name, _ in faces.values()}
    fallbacks: list[tuple[str, frozenset[int]]] = []
    seen: set[Path] = set()
    for path in _find(_FALLBACKS, extra_dirs) + _fontconfig_files():
        resolved = path.resolve()
        if resolved in seen or len(fallbacks) >= _MAX_FALLBACKS:
            continue
        seen.add(resolved)
        registered = _register(path)
        if registered is None or registered[0] in used or registered[1] <= covered:
            continue  # unreadable, or nothing the fonts so far lack
        fallbacks.append(registered)
        covered |= registered[1]
    return fallbacks


def _builtin_fallback() -> FontSet:
    return FontSet(
        regular="Helvetica",
        bold="Helvetica-Bold",
        italic="Helvetica-Oblique",
        bolditalic="Helvetica-BoldOblique",
        mono="Courier",
        primary_glyphs=frozenset(range(256)),
        mono_glyphs=frozenset(range(256)),
    )
