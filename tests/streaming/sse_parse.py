"""A strict parser of the SSE wire format (WHATWG HTML, "Server-sent events"), for tests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_LINE = re.compile(r"\r\n|\r|\n")
ALLOWED_FIELDS = {"id", "event", "data", "retry"}


@dataclass
class Frame:
    """One dispatched SSE event, as a browser would see it."""

    id: str | None = None
    event: str = "message"
    data_lines: list[str] = field(default_factory=list)

    @property
    def data(self) -> str:
        return "\n".join(self.data_lines)


def parse_stream(text: str) -> tuple[list[Frame], list[str]]:
    """Frames and comment lines of a complete stream; fails on any unknown field."""
    frames: list[Frame] = []
    comments: list[str] = []
    current = Frame()
    seen_field = False
    for line in _LINE.split(text):
        if line == "":
            if seen_field:
                frames.append(current)
            current, seen_field = Frame(), False
            continue
        if line.startswith(":"):
            comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        assert name in ALLOWED_FIELDS, f"unexpected SSE field {name!r} in line {line!r}"
        seen_field = True
        if name == "data":
            current.data_lines.append(value)
        elif name == "id":
            current.id = value
        elif name == "event":
            current.event = value
    return frames, comments
