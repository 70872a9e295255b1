"""Right-to-left text in PDF reports: Hebrew and Arabic drawn in visual order.

A PDF draws glyphs left to right in the order given, so text is put in *visual* order
first: Arabic letters are shaped into their joined presentation forms
(``arabic-reshaper``), then the Unicode bidirectional algorithm (``python-bidi``)
reorders each line.  Reordering must happen per drawn line, so a paragraph whose base
direction is right-to-left is broken into lines in logical order at the width it gets,
and each line is then reordered and right-aligned (:class:`RightToLeftParagraph`);
inline bold/italic is not kept there.  Right-to-left runs inside left-to-right text are
reordered in place.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal
from xml.sax.saxutils import escape

import arabic_reshaper
from bidi import get_base_level, get_display
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Flowable, Paragraph

if TYPE_CHECKING:
    from .fonts import FontSet

__all__ = ["RightToLeftParagraph", "has_rtl", "is_rtl", "shape", "visual"]

_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc\U00010800-\U00010fff\U0001e800-\U0001efff]")
_ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff]")


def has_rtl(text: str) -> bool:
    """True when ``text`` has a Hebrew, Arabic or other right-to-left letter."""
    return not text.isascii() and _RTL.search(text) is not None


def is_rtl(text: str) -> bool:
    """True when ``text``'s base direction is right-to-left (its first strong letter is)."""
    return has_rtl(text) and get_base_level(text) == 1


def shape(text: str) -> str:
    """Arabic letters in ``text`` as the joined forms they take in their word."""
    return str(arabic_reshaper.reshape(text)) if _ARABIC.search(text) else text


def visual(text: str, *, rtl: bool | None = None) -> str:
    """One line of ``text`` shaped and in visual order (``rtl`` forces the base direction)."""
    if not has_rtl(text):
        return text
    base = None if rtl is None else "R" if rtl else "L"
    return str(get_display(shape(text), base_dir=base))


class RightToLeftParagraph(Flowable):  # type: ignore[misc]
    """A paragraph whose base direction is right-to-left (see the module docs).

    Lines are broken at the width the layout offers, in logical order, measured in the
    fonts each run is drawn in; then each line is reordered and right-aligned.
    """

    def __init__(self, text: str, style: Any, fonts: FontSet) -> None:
        super().__init__()
        self.text = shape(" ".join(text.split()))  # measured as drawn: shaped
        self.style = ParagraphStyle(f"{style.name}-rtl", parent=style, alignment=TA_RIGHT)
        self.fonts = fonts
        self._laid: Any = None

    def _layout(self, width: float) -> Any:
        lines = self._lines(width * 0.98)  # a little slack: the paragraph must not re-wrap a line
        markup = "<br/>".join(
            text_markup(str(get_display(line, base_dir="R")), self.fonts, order="visual") for line in lines
        )
        self._laid = Paragraph(markup, self.style)
        return self._laid

    def _width(self, text: str) -> float:
        size = float(self.style.fontSize)
        return sum(
            float(stringWidth(chunk, font or self.style.fontName, size))
            for font, chunk in self.fonts.runs(text)
        )

    def _lines(self, width: float) -> list[str]:
        lines: list[str] = []
        current = ""
        for word in self.text.split(" "):
            candidate = f"{current} {word}" if current else word
            if not current or self._width(candidate) <= width:
                current = candidate
                continue
            lines.append(current)
            current = word
        if current:
            lines.append(current)
        return [piece for line in lines for piece in self._cut(line, width)]

    def _cut(self, line: str, width: float) -> list[str]:
        """A line wider than the column (one long word), cut into pieces that fit."""
        if self._width(line) <= width:
            return [line]
        pieces: list[str] = []
        start, used = 0, 0.0
        for index, char in enumerate(line):
            advance = self._width(char)
            if used + advance > width and index > start:
                pieces.append(line[start:index])
                start, used = index, 0.0
            used += advance
        return [*pieces, line[start:]]

    def wrap(self, width: float, height: float) -> tuple[float, float]:
        return self._layout(width).wrap(width, height)  # type: ignore[no-any-return]

    def split(self, width: float, height: float) -> list[Any]:
        return self._layout(width).split(width, height)  # type: ignore[no-any-return]

    def getSpaceBefore(self) -> float:
        return float(self.style.spaceBefore)

    def getSpaceAfter(self) -> float:
        return float(self.style.spaceAfter)

    def draw(self) -> None:
        self._laid.drawOn(self.canv, 0, 0)

    def getPlainText(self) -> str:
        return self.text


#: How text is put in visual order: each line by its own base direction ("auto"), as part
#: of a left-to-right paragraph ("ltr"), or not at all, being in visual order already.
Order = Literal["auto", "ltr", "visual"]


def text_markup(text: str, fonts: FontSet, *, mono: bool = False, order: Order = "auto") -> str:
    """Plain untrusted text as safe Paragraph markup: in visual order, escaped, and each
    run of characters in the first font that has them."""
    if order != "visual":
        text = "\n".join(visual(line, rtl=None if order == "auto" else False) for line in text.split("\n"))
    parts = []
    for font, chunk in fonts.runs(text, mono=mono):
        escaped = escape(chunk)
        parts.append(escaped if font is None else f'<font name="{font}">{escaped}</font>')
    return "".join(parts)
