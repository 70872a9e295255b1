"""Text from outside the process, made valid UTF-8 where it enters.

A JSON ``"\\ud800"`` escape (from a vendor's answer, an error body, an HTTP request)
decodes to a lone surrogate: a Python ``str`` that cannot be encoded as UTF-8.  Written
anywhere (a report, ``--json`` output, an SSE frame, a database) it raises
``UnicodeEncodeError`` far from where it came in.  :func:`valid_text` replaces each lone
surrogate with U+FFFD (a well-formed surrogate pair becomes the character it spells), so
the model's answers, the vendors' errors and the server's request bodies are repaired
once, at the boundary, and every writer downstream can rely on them.
"""

from __future__ import annotations

import re

__all__ = ["valid_text"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """``text`` as valid UTF-8: lone surrogates replaced with U+FFFD (``text`` itself when
    it is already valid, which costs one scan)."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
