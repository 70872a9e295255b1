"""Robust parsing of decomposition plans and judge scores."""

from __future__ import annotations

import pytest

from patterns._parsing import extract_json, parse_plan, parse_score


def descriptions(text: str) -> list[str]:
    return [item.description for item in parse_plan(text)]


@pytest.mark.parametrize(
    "text",
    [
        '{"subtasks": [{"description": "a"}, {"description": "b"}]}',
        'Sure! Here is the plan:\n```json\n{"subtasks": [{"description": "a"}, {"description": "b"}]}\n```\nGood luck.',
        "{'subtasks': [{'description': 'a'}, {'description': 'b'}]}",
        '{"subtasks": [{"description": "a"}, {"description": "b"},],}',
        'Plan: ["a", "b"] -- that is all',
        '{"tasks": [{"task": "a"}, {"title": "b"}]}',
        '[{"query": "a"}, {"query": "b"}, {"query": "a"}]',
        "1. a\n2. b\n",
        "Steps:\n- a\n- b",
        '```\n{"plan": ["a", "b"]}\n```',
    ],
)
def test_plan_formats(text: str) -> None:
    assert descriptions(text) == ["a", "b"]


def test_plan_keeps_extra_fields() -> None:
    items = parse_plan('{"subtasks": [{"description": "find papers", "Domain": "arxiv"}]}')
    assert items[0].fields["domain"] == "arxiv"


@pytest.mark.parametrize(
    "text", ["", "I cannot help with that.", '{"error": "no"}', "[1, 2]", "{broken", "[]"]
)
def test_plan_nothing_usable(text: str) -> None:
    assert parse_plan(text) == []


def test_extract_json_prefers_fenced_block_and_handles_nested_brackets() -> None:
    text = 'ignore [this]\n```json\n{"a": {"b": [1, "]"]}}\n```'
    assert extract_json(text) == {"a": {"b": [1, "]"]}}
    assert extract_json("no json here") is None


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ('{"score": 0.8, "feedback": "more detail"}', 0.8),
        ('```json\n{"score": 8, "feedback": "x"}\n```', 0.8),
        ("{'rating': '7/10', 'comments': 'x'}", 0.7),
        ('{"score": "85%"}', 0.85),
        ("Score: 9/10. Mostly good.", 0.9),
        ("I would give it 6 out of 10.", 0.6),
        ("Quality is about 75%.", 0.75),
        ("score = 0.35", 0.35),
    ],
)
def test_scores(text: str, score: float) -> None:
    parsed = parse_score(text)
    assert parsed is not None
    assert parsed[0] == pytest.approx(score)


def test_score_feedback() -> None:
    assert parse_score('{"score": 1, "feedback": "done"}') == (1.0, "done")


@pytest.mark.parametrize(
    "text", ["", "looks fine to me", '{"score": -1}', '{"score": 1000}', '{"score": true}']
)
def test_no_score(text: str) -> None:
    assert parse_score(text) is None
