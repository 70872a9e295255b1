"""Markdown to reportlab flowables: headings, paragraphs, lists, tables, code blocks.

Markdown is rendered to HTML with Python-Markdown (the ``markdown`` package, with tables,
fenced code and two-space nested lists; raw HTML is not recognised, so a model's tags
are escaped as text), sanitised with ``nh3`` anyway, parsed into a small tree that is
flattened below :data:`_MAX_DEPTH` levels (``*`` x 5000 nests emphasis 2500 deep), and
mapped to flowables.  Every piece of text is escaped with :func:`xml.sax.saxutils.escape`
before it enters reportlab's Paragraph markup; link and image syntax stays text (no
target is ever followed or fetched); long paragraphs and code blocks are cut into pieces so
a megabyte of text lays out in linear time, and table cells too tall for a page are
laid out as labelled paragraphs instead.
"""

from __future__ import annotations

import html
import re
import textwrap
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from .bidi import Order, RightToLeftParagraph, is_rtl, text_markup
from .fonts import FontSet

__all__ = ["Styles", "inline_markup", "make_styles", "markdown_to_flowables", "text_markup"]

_ALLOWED_TAGS = {
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "table", "thead", "tbody", "tr",
    "th", "td", "pre", "code", "em", "strong", "b", "i", "blockquote", "hr", "br",
}  # fmt: skip
_BLOCK_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "table", "pre", "blockquote", "hr"}
_VOID = {"br", "hr"}
_PARAGRAPH_CHARS = 1000
_CODE_LINES = 60
_MIN_COLUMN = 42.0  # points: narrower columns make a table unreadable, so it is listed instead
_MAX_CELL_HEIGHT = 300.0  # points: a table row must fit on a page, so taller cells are listed
_MIN_NESTED_WIDTH = 160.0
_MAX_DEPTH = 32  # elements nested deeper are flattened into their ancestor at this depth
_FENCE_INFO = re.compile(r"^ {0,3}(?:`{3,}|~{3,})[ \t]*([^\n`]*)$", re.MULTILINE)
_LIST_NUMBER = re.compile(r"^[ \t>]*(\d{1,9})[.)](?=[ \t]|$)", re.MULTILINE)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# Python-Markdown's inline rules for raw HTML, links, images and autolinks: all off.
_NO_INLINE_RULES = (
    "html", "link", "image_link", "reference", "image_reference", "short_reference",
    "short_image_ref", "autolink", "automail",
)  # fmt: skip
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d{1,9}[.)])[ \t]+\S")
_TABLE_DELIMITER = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")


@dataclass
class Node:
    """An element of the sanitised HTML."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        """All text below this node."""
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)


class _TreeBuilder(HTMLParser):
    """The tree of sanitised HTML; elements below :data:`_MAX_DEPTH` are flattened (their
    content joins the element at that depth), so no later walk recurses without bound."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root")
        self.stack = [self.root]
        self.flattened: dict[str, int] = {}  # open elements that were not added, by tag

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if len(self.stack) > _MAX_DEPTH and tag not in _VOID:
            self.flattened[tag] = self.flattened.get(tag, 0) + 1
            return
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        if self.flattened.get(tag):
            self.flattened[tag] -= 1
            return
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_markdown(text: str) -> Node:
    """Markdown -> HTML (raw HTML escaped) -> sanitised HTML -> tree."""
    import markdown
    import nh3

    # Tables, fenced code, nested lists indented by two spaces (as models write them);
    # without the raw-HTML rules tags in the text are escaped as text, and without the
    # link rules brackets are text (reports never link or fetch a model's targets, and
    # those rules take quadratic time over unmatched brackets).
    parser = markdown.Markdown(
        extensions=["tables", "fenced_code", "mdx_truly_sane_lists"],
        extension_configs={"mdx_truly_sane_lists": {"nested_indent": 2, "truly_sane": True}},
    )
    parser.preprocessors.deregister("html_block")
    for rule in _NO_INLINE_RULES:
        parser.inlinePatterns.deregister(rule)
    rendered = parser.convert(_blocks_interrupt_paragraphs(text))
    clean = nh3.clean(
        rendered,
        tags=_ALLOWED_TAGS,
        attributes={"td": {"style"}, "th": {"style"}},
        filter_style_properties={"text-align"},
    )
    builder = _TreeBuilder()
    builder.feed(clean)
    builder.close()
    return builder.root


def _blocks_interrupt_paragraphs(text: str) -> str:
    """A blank line before a list or table that follows a paragraph line, as in CommonMark
    (Python-Markdown would read the list or table as part of the paragraph)."""
    lines = text.split("\n")
    out: list[str] = []
    fence: str | None = None
    in_list = False
    previous = ""
    for index, line in enumerate(lines):
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = None
        elif opening:
            fence = opening.group(1)
        else:
            follows_text = bool(previous.strip()) and not previous[:1].isspace()
            if _LIST_ITEM.match(line):
                if follows_text and not in_list:
                    out.append("")
                in_list = True
            elif (
                "|" in line
                and follows_text
                and "|" not in previous
                and index + 1 < len(lines)
                and "|" in lines[index + 1]
                and _TABLE_DELIMITER.match(lines[index + 1])
            ):
                out.append("")
            elif line.strip() and not line[:1].isspace() and not previous.strip():
                in_list = False  # a paragraph after a blank line ends the list
        out.append(line)
        previous = line
    return "\n".join(out)


@dataclass(frozen=True)
class Styles:
    """Paragraph styles of a report, by role."""

    fonts: FontSet
    by_name: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.by_name[name]


def make_styles(fonts: FontSet) -> Styles:
    """The report's paragraph styles, in the given fonts."""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER, TA_RIGHT
    from reportlab.lib.styles import ParagraphStyle

    body = ParagraphStyle("body", fontName=fonts.regular, fontSize=10, leading=14, spaceAfter=6)
    sizes = {"h1": 20, "h2": 15, "h3": 12.5, "h4": 11, "h5": 10.5, "h6": 10}
    by_name: dict[str, Any] = {"body": body}
    for tag, size in sizes.items():
        by_name[tag] = ParagraphStyle(
            tag, parent=body, fontName=fonts.bold, fontSize=size, leading=size * 1.3,
            spaceBefore=size * 0.8, spaceAfter=size * 0.4, keepWithNext=1,
            textColor=colors.HexColor("#1f3a5f") if tag in ("h1", "h2") else colors.black,
        )  # fmt: skip
    by_name["code"] = ParagraphStyle(
        "code", parent=body, fontName=fonts.mono, fontSize=8, leading=10, spaceAfter=0,
        backColor=colors.HexColor("#f4f4f4"), borderPadding=(2, 4, 2, 4), leftIndent=4, rightIndent=4,
    )  # fmt: skip
    by_name["cell"] = ParagraphStyle("cell", parent=body, fontSize=8.5, leading=11, spaceAfter=0)
    by_name["cell_right"] = ParagraphStyle("cell_right", parent=by_name["cell"], alignment=TA_RIGHT)
    by_name["cell_center"] = ParagraphStyle("cell_center", parent=by_name["cell"], alignment=TA_CENTER)
    by_name["quote"] = ParagraphStyle(
        "quote", parent=body, leftIndent=14, textColor=colors.HexColor("#444444")
    )
    by_name["toc0"] = ParagraphStyle(
        "toc0", fontName=fonts.regular, fontSize=10, leading=14, leftIndent=10, firstLineIndent=-10
    )
    by_name["toc1"] = ParagraphStyle(
        "toc1", fontName=fonts.regular, fontSize=9, leading=12, leftIndent=28, firstLineIndent=-10
    )
    by_name["meta"] = ParagraphStyle("meta", parent=body, fontSize=9, textColor=colors.HexColor("#555555"))
    return Styles(fonts, by_name)


def inline_markup(node: Node | str, fonts: FontSet, order: Order = "auto") -> str:
    """Paragraph markup for inline content (bold, italic, code, line breaks)."""
    if isinstance(node, str):
        return text_markup(node, fonts, order=order)
    if node.tag == "code":
        return _wrap(node, text_markup(node.text(), fonts, mono=True, order=order), fonts)
    if node.tag == "br":
        return "<br/>"
    return _wrap(node, "".join(inline_markup(child, fonts, order) for child in node.children), fonts)


def _wrap(node: Node, inner: str, fonts: FontSet) -> str:
    tag = node.tag
    if tag in ("strong", "b"):
        return f"<b>{inner}</b>"
    if tag in ("em", "i"):
        return f"<i>{inner}</i>"
    if tag == "code":
        return f'<font name="{fonts.mono}" backColor="#f0f0f0">{inner}</font>'
    return inner


def _paragraphs(children: list[Node | str], style: Any, fonts: FontSet) -> list[Any]:
    """One or more Paragraphs for inline content, cut at whitespace every few thousand chars.

    Content whose base direction is right-to-left becomes :class:`RightToLeftParagraph`
    pieces (plain text, in visual order line by line)."""
    from reportlab.platypus import Paragraph

    plain = "".join(c if isinstance(c, str) else c.text() for c in children)
    if is_rtl(plain):
        return [RightToLeftParagraph(piece, style, fonts) for piece in _pieces(plain, _PARAGRAPH_CHARS)]
    out: list[Any] = []
    buffer: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal size
        markup = "".join(buffer).strip()
        if markup:
            out.append(Paragraph(markup, style))
        buffer.clear()
        size = 0

    for child in children:
        text = child if isinstance(child, str) else child.text()
        if len(text) > _PARAGRAPH_CHARS:  # huge text or a huge bold/code span: cut it, keep its style
            mono = isinstance(child, Node) and child.tag == "code"
            for piece in _pieces(text, _PARAGRAPH_CHARS):
                markup = text_markup(piece, fonts, mono=mono, order="ltr")
                buffer.append(markup if isinstance(child, str) else _wrap(child, markup, fonts))
                size += len(piece)
                if size >= _PARAGRAPH_CHARS:
                    flush()
            continue
        markup = inline_markup(child, fonts, "ltr")
        buffer.append(markup)
        size += len(markup)
        if size >= _PARAGRAPH_CHARS:
            flush()
    flush()
    return out


def _pieces(text: str, limit: int) -> list[str]:
    pieces = []
    while len(text) > limit:
        cut = text.rfind(" ", limit // 2, limit)
        cut = cut + 1 if cut > 0 else limit
        pieces.append(text[:cut])
        text = text[cut:]
    pieces.append(text)
    return pieces


def _code_block(text: str, styles: Styles, width_chars: int) -> list[Any]:
    from reportlab.platypus import XPreformatted

    lines: list[str] = []
    for line in text.rstrip("\n").split("\n"):
        line = line.expandtabs(4)
        wrapped = textwrap.wrap(line, width_chars, drop_whitespace=False) if line else []
        lines.extend(wrapped or [""])
    blocks = []
    for start in range(0, len(lines), _CODE_LINES):
        chunk = "\n".join(lines[start : start + _CODE_LINES])
        blocks.append(XPreformatted(text_markup(chunk, styles.fonts, mono=True), styles["code"]))
    return blocks


def _list(node: Node, styles: Styles, width: float) -> Any:
    from reportlab.platypus import ListFlowable, ListItem

    indent = 14 if width > _MIN_NESTED_WIDTH else 0  # very deep nesting stops indenting
    items = []
    for child in node.children:
        if isinstance(child, Node) and child.tag == "li":
            items.append(ListItem(_blocks(child.children, styles, width - indent - 4) or [_empty(styles)]))
    ordered = node.tag == "ol"
    return ListFlowable(
        items, bulletType="1" if ordered else "bullet", start=None if ordered else "\u2022",
        bulletFormat="%s." if ordered else None,
        leftIndent=indent, bulletFontName=styles.fonts.regular, bulletFontSize=9,
    )  # fmt: skip


def _empty(styles: Styles) -> Any:
    from reportlab.platypus import Spacer

    return Spacer(1, 2)


def _cell_style(cell: Node) -> str:
    align = cell.attrs.get("style", "").replace(" ", "")
    return (
        "cell_right"
        if "text-align:right" in align
        else "cell_center"
        if "text-align:center" in align
        else "cell"
    )


def _table(node: Node, styles: Styles, width: float) -> list[Any]:
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    rows: list[list[Node]] = []
    header_rows = 0

    def walk(current: Node) -> None:
        nonlocal header_rows
        for child in current.children:
            if not isinstance(child, Node):
                continue
            if child.tag == "tr":
                cells = [c for c in child.children if isinstance(c, Node) and c.tag in ("th", "td")]
                if cells and all(c.tag == "th" for c in cells) and len(rows) == header_rows:
                    header_rows += 1
                rows.append(cells)
            else:
                walk(child)

    walk(node)
    if not rows:
        return []
    columns = max(len(r) for r in rows)
    column = width / columns
    if column < _MIN_COLUMN or any(_too_tall(c.text(), column, styles) for row in rows for c in row):
        return _table_as_records(rows, header_rows, styles)
    data: list[list[Any]] = [
        [_paragraphs(c.children, styles[_cell_style(c)], styles.fonts) for c in row] for row in rows
    ]
    for row in data:
        row.extend([""] * (columns - len(row)))
    table = Table(data, colWidths=[width / columns] * columns, repeatRows=header_rows, splitInRow=1)
    grid = [("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#bbbbbb")), ("VALIGN", (0, 0), (-1, -1), "TOP")]
    if header_rows:
        grid.append(("BACKGROUND", (0, 0), (-1, header_rows - 1), colors.HexColor("#e8eef5")))
    table.setStyle(TableStyle(grid))
    return [table]


def _too_tall(text: str, width: float, styles: Styles) -> bool:
    """Whether a cell of ``text`` laid out ``width`` points wide would be too tall for a
    table row (a long unbroken token wraps one character column at a time)."""
    style = styles["cell"]
    per_line = max(1.0, (width - 12) / (float(style.fontSize) * 0.62))  # 12: the cell's padding
    lines = sum(1 + int(len(line) / per_line) for line in text.split("\n"))
    return lines * float(style.leading) > _MAX_CELL_HEIGHT


def _table_as_records(rows: list[list[Node]], header_rows: int, styles: Styles) -> list[Any]:
    """A table too wide for the page, or with huge cells: each row as labelled paragraphs."""
    from reportlab.platypus import HRFlowable

    header = [c.text().strip() for c in rows[0]] if header_rows else []
    out: list[Any] = []
    for row in rows[header_rows:]:
        for index, cell in enumerate(row):
            label = header[index] if index < len(header) and header[index] else f"Column {index + 1}"
            out.extend(
                _paragraphs(
                    [Node("b", children=[f"{label}: "]), *cell.children], styles["cell"], styles.fonts
                )
            )
        out.append(HRFlowable(width="100%", thickness=0.3, color="#bbbbbb", spaceBefore=2, spaceAfter=4))
    return out


def _blocks(children: list[Node | str], styles: Styles, width: float, body: str = "body") -> list[Any]:
    from reportlab.platypus import HRFlowable, Spacer

    out: list[Any] = []
    inline: list[Node | str] = []

    def flush_inline() -> None:
        if any(c.strip() if isinstance(c, str) else True for c in inline):
            out.extend(_paragraphs(inline, styles[body], styles.fonts))
        inline.clear()

    for child in children:
        if isinstance(child, str) or child.tag not in _BLOCK_TAGS:
            inline.append(child)
            continue
        flush_inline()
        tag = child.tag
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            out.extend(_paragraphs(child.children, styles[tag], styles.fonts))
        elif tag == "p":
            out.extend(_paragraphs(child.children, styles[body], styles.fonts))
        elif tag in ("ul", "ol"):
            out += [_list(child, styles, width), Spacer(1, 4)]
        elif tag == "pre":
            out.extend(_code_block(child.text(), styles, max(20, int(width / 4.9))))
            out.append(Spacer(1, 8))
        elif tag == "table":
            out += [*_table(child, styles, width), Spacer(1, 8)]
        elif tag == "blockquote":
            inner = width - 14 if width > _MIN_NESTED_WIDTH else width
            out.extend(_blocks(child.children, styles, inner, "quote"))
        elif tag == "hr":
            out.append(HRFlowable(width="100%", thickness=0.5, color="#999999", spaceBefore=4, spaceAfter=4))
    flush_inline()
    return out


def markdown_to_flowables(text: str, styles: Styles, width: float) -> list[Any]:
    """Flowables for a Markdown fragment laid out ``width`` points wide.

    The parser drops what is nested deeper than it allows; if the parsed text lost
    content, the fragment is shown literally instead, so nothing a model wrote goes missing.
    """
    tree = parse_markdown(text)
    markup = " ".join(_FENCE_INFO.findall(text) + _LIST_NUMBER.findall(text))  # letters that are syntax
    expected = _letters(html.unescape(text)) - _letters(markup)
    if expected > _letters(tree.text()):
        return _code_block(text, styles, max(20, int(width / 4.9)))
    return _blocks(tree.children, styles, width)


def _letters(text: str) -> int:
    return sum(1 for char in text if char.isalnum())
