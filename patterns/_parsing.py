"""Robust parsing of what models answer: decomposition plans and scores.

Models wrap JSON in code fences, add prose before or after it, use single quotes or
trailing commas, or answer with a numbered list instead.  These functions accept all of
that and return ``[]`` / ``None`` (never raise) when nothing usable is there, so the
caller can fall back and say so.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PlanItem", "extract_json", "parse_plan", "parse_score"]

_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_-]*[ \t]*\n(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_LIST_LINE = re.compile(
    r"^\s*(?:\(?\d{1,3}[.):]|[-*\u2022]|step\s+\d{1,3}\s*[:.)-])\s+(.+?)\s*$", re.IGNORECASE
)
_LIST_KEYS = ("subtasks", "tasks", "steps", "items", "plan", "queries", "searches")
_TEXT_KEYS = ("description", "task", "subtask", "query", "prompt", "step", "title", "name", "text")
_SCORE_KEYS = ("score", "rating", "grade", "quality")
_FEEDBACK_KEYS = ("feedback", "comments", "comment", "critique", "reason", "reasoning", "explanation")
_SCORE_TEXT = re.compile(
    r"(?:score|rating|grade)\s*(?:of|is|=|:)?\s*\**\s*(\d+(?:\.\d+)?)\s*(?:(?:/|out\s+of)\s*(\d+(?:\.\d+)?))?",
    re.IGNORECASE,
)
_FRACTION = re.compile(r"(\d+(?:\.\d+)?)\s*(?:/|out\s+of)\s*(10|100|5)\b", re.IGNORECASE)
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One subtask a model proposed: its text and any fields it named (e.g. ``domain``)."""

    description: str
    fields: Mapping[str, Any]


def extract_json(text: str) -> Any | None:
    """The first JSON (or Python-literal) object or array in ``text``, or None.

    Tries code-fenced blocks first, then the whole text, then every ``{``/``[`` in order;
    each candidate is read as JSON, then as JSON without trailing commas, then as a
    Python literal (single quotes, ``True``/``None``).
    """
    if not isinstance(text, str) or not text.strip():
        return None
    candidates = [*_FENCE.findall(text), text]
    for candidate in candidates:
        value = _loads(candidate.strip())
        if value is not None:
            return value
        for match in re.finditer(r"[\[{]", candidate):
            chunk = _balanced(candidate, match.start())
            if chunk is None:
                continue
            value = _loads(chunk)
            if value is not None:
                return value
    return None


def _loads(chunk: str) -> Any | None:
    if not chunk or chunk[0] not in "[{":
        return None
    relaxed = _TRAILING_COMMA.sub(r"\1", chunk)
    for attempt in (chunk, relaxed):
        try:
            value = json.loads(attempt)
        except ValueError:
            continue
        if isinstance(value, (dict, list)):
            return value
    try:
        value = ast.literal_eval(relaxed)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, (dict, list)) else None


def _balanced(text: str, start: int) -> str | None:
    """The bracketed span starting at ``start`` (quotes respected), or None if unclosed."""
    closing = {"{": "}", "[": "]"}
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char in "\"'":
            quote = char
        elif char in closing:
            stack.append(closing[char])
        elif char in "}]":
            if not stack or stack.pop() != char:
                return None
            if not stack:
                return text[start : index + 1]
    return None


def parse_plan(text: str) -> list[PlanItem]:
    """The subtasks a model proposed, in order, or ``[]`` when there is nothing usable.

    Accepts ``{"subtasks": [...]}`` (or ``tasks``/``steps``/...), a bare list, items that
    are strings or objects with a ``description`` (or ``task``/``query``/``title``...),
    and, when no JSON is found, a numbered or bulleted list.  Blank and repeated
    descriptions are dropped.
    """
    value = extract_json(text)
    items = _plan_list(value) if value is not None else None
    plan: list[PlanItem] = []
    if items is not None:
        for item in items:
            parsed = _plan_item(item)
            if parsed is not None:
                plan.append(parsed)
    if not plan and isinstance(text, str):
        for line in text.splitlines():
            match = _LIST_LINE.match(line)
            if match:
                plan.append(PlanItem(match.group(1).strip().strip("*").strip(), {}))
    return _unique(plan)


def _plan_list(value: Any) -> Sequence[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in _LIST_KEYS:
            for actual in value:
                if isinstance(actual, str) and actual.lower() == key and isinstance(value[actual], list):
                    return list(value[actual])
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return None


def _plan_item(item: Any) -> PlanItem | None:
    if isinstance(item, str):
        return PlanItem(item.strip(), {}) if item.strip() else None
    if not isinstance(item, dict):
        return None
    fields = {str(k).lower(): v for k, v in item.items()}
    for key in _TEXT_KEYS:
        value = fields.get(key)
        if isinstance(value, str) and value.strip():
            return PlanItem(value.strip(), fields)
    return None


def _unique(plan: list[PlanItem]) -> list[PlanItem]:
    seen: set[str] = set()
    unique: list[PlanItem] = []
    for item in plan:
        key = " ".join(item.description.lower().split())
        if key and key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def parse_score(text: str) -> tuple[float, str] | None:
    """A 0-1 score and feedback from a judge's answer, or None if there is no score.

    Reads ``{"score": 0.8, "feedback": "..."}`` (also ``rating``/``grade``, scores given
    as strings or fractions), else ``score: 8/10``, ``7 out of 10``, ``85%`` in prose.
    Scores on a 0-10 or 0-100 scale are normalised; anything outside 0-100 is rejected.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    value = extract_json(text)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict):
        fields = {str(k).lower(): v for k, v in value.items()}
        feedback = next((str(fields[k]) for k in _FEEDBACK_KEYS if fields.get(k)), "")
        for key in _SCORE_KEYS:
            if key in fields:
                score = _score_of(fields[key])
                if score is not None:
                    return score, feedback
    for pattern in (_SCORE_TEXT, _FRACTION):
        match = pattern.search(text)
        if match:
            score = _normalise(float(match.group(1)), float(match.group(2)) if match.group(2) else None)
            if score is not None:
                return score, text.strip()
    match = _PERCENT.search(text)
    if match:
        score = _normalise(float(match.group(1)), 100.0)
        if score is not None:
            return score, text.strip()
    return None


def _score_of(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return _normalise(float(value), None)
    if isinstance(value, str):
        match = _FRACTION.search(value) or re.search(r"(\d+(?:\.\d+)?)()", value)
        if match:
            scale = float(match.group(2)) if match.group(2) else None
            if value.strip().endswith("%"):
                scale = 100.0
            return _normalise(float(match.group(1)), scale)
    return None


def _normalise(value: float, scale: float | None) -> float | None:
    if value != value or value < 0:  # NaN or negative
        return None
    if scale:
        return min(1.0, value / scale) if value <= scale else None
    if value <= 1:
        return value
    if value <= 10:
        return value / 10
    if value <= 100:
        return value / 100
    return None
