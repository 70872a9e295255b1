"""The Markdown report: front matter, contents, one section per agent and synthesis level, costs.

The report is built as a list of :class:`Section` objects so the PDF renderer lays out
exactly the same content.  LLM output is Markdown and is kept as Markdown, with three
guards at the boundary: its headings are demoted below the section that holds it (so an
agent cannot forge a top-level section), anything shaped like an HTML tag outside code
is escaped (so a Markdown viewer shows ``<script>`` instead of running it), and no link
or image can form: ``](`` and ``]:`` outside code get an entity for their second
character, so ``![x](https://host/?secret)`` and ``[x](javascript:...)`` show as the text
they are and a viewer neither fetches nor links their target (an image a viewer loads is
a channel out of the reader's machine).  The rest of the syntax is kept.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..events import EventType, StreamEvent
from ..models import AgentResult, OrchestratorResult, SubTask, SynthesisResult
from ..usage import Usage
from ..utils import format_usd

__all__ = ["Section", "build_sections", "escape_untrusted_markdown", "render_markdown", "report_models"]


@dataclass(frozen=True, slots=True)
class Section:
    """One titled part of a report; ``body`` is Markdown, ``level`` 2 or 3 (``##``/``###``)."""

    title: str
    anchor: str
    body: str
    level: int = 2
    kind: str = "text"


# A fence (a backtick fence's info string has no backtick, else it is not a fence).
_FENCE = re.compile(r"^( {0,3})(`{3,}(?=[^`]*$)|~{3,})")
_HEADING = re.compile(r"^( {0,3})(#{1,6})(?=\s|$)")
_TAG_LIKE = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY = re.compile(r"&(?=#[0-9]+;|#[xX][0-9A-Fa-f]+;|[A-Za-z][A-Za-z0-9]*;)")
# A code span; a backquote after a backslash opens none (escaped: a viewer shows it as is).
_CODE_SPAN = re.compile(r"(?<![\\`])(`+)(?:.|\n)*?(?<!`)\1(?!`)")
_LINK_TARGET = re.compile(r"\]([(:])")  # an inline link or image, or a reference definition
_ENTITY_FOR = {"(": "&#40;", ":": "&#58;"}


def escape_untrusted_markdown(text: str, *, min_heading: int = 4) -> str:
    """Make LLM-written Markdown safe to embed in the report.

    Headings are pushed down to at least ``min_heading`` (``####``); outside fenced code
    and code spans, ``<`` that starts something tag-like becomes ``&lt;`` and links and
    images are shown as text (see the module docs).  Code is left untouched, since it is
    shown literally anyway.  Code is never assumed where a viewer may not see it: an
    indented fence (in a list item, say) ends, for this purpose, at the first line indented
    less than it, where the item and so the viewer's code block end.
    """
    out: list[str] = []
    fence: str | None = None
    fence_indent = 0
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is not None:
            if line.strip() and len(line) - len(line.lstrip(" ")) < fence_indent:
                fence = None  # the list item holding the fence ended here: so did the code
            else:
                out.append(line)
                if match and match.group(2)[0] == fence[0] and len(match.group(2)) >= len(fence):
                    fence = None
                continue
        if match:
            fence, fence_indent = match.group(2), len(match.group(1))
            out.append(line)
            continue
        heading = _HEADING.match(line)
        if heading:
            depth = min(6, len(heading.group(2)) + min_heading - 1)
            line = heading.group(1) + "#" * depth + line[heading.end() :]
        out.append(_escape_outside_code_spans(line))
    return "\n".join(out)


def _escape_markup(text: str) -> str:
    """``&lt;`` for tag-like ``<``, ``&amp;`` for ``&`` that starts an entity, and an entity
    for the character after ``]`` that would make a link or image; the rest is kept."""
    text = _TAG_LIKE.sub("&lt;", _ENTITY.sub("&amp;", text))
    return _LINK_TARGET.sub(lambda m: "]" + _ENTITY_FOR[m.group(1)], text)


def _escape_outside_code_spans(line: str) -> str:
    if "<" not in line and "&" not in line and "]" not in line:
        return line
    parts: list[str] = []
    last = 0
    for span in _CODE_SPAN.finditer(line):
        parts.append(_escape_markup(line[last : span.start()]))
        parts.append(span.group(0))
        last = span.end()
    parts.append(_escape_markup(line[last:]))
    return "".join(parts)


def _inline(text: str) -> str:
    """Untrusted text for one line of Markdown (a heading, list item or table cell)."""
    flat = " ".join(str(text).split())
    flat = _escape_markup(flat)
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", flat)


def _anchor(title: str, used: set[str]) -> str:
    base = re.sub(r"[^\w\- ]", "", title.lower()).strip().replace(" ", "-") or "section"
    anchor, n = base, 1
    while anchor in used:
        n += 1
        anchor = f"{base}-{n}"
    used.add(anchor)
    return anchor


def report_models(result: OrchestratorResult) -> list[str]:
    """Every model the run used, in first-seen order."""
    seen: dict[str, None] = {}
    for name in result.cost_by_model:
        seen.setdefault(name, None)
    for model in [a.model for a in result.agent_results] + [s.model for s in result.synthesis_results]:
        if model:
            seen.setdefault(model, None)
    return list(seen)


def _money(value: float) -> str:
    return format_usd(value)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def _date(result: OrchestratorResult) -> str:
    stamp = result.metadata.get("started_at") or result.metadata.get("created_at")
    when = _dt.datetime.fromtimestamp(stamp, _dt.UTC) if isinstance(stamp, (int, float)) else None
    return (when or _dt.datetime.now(_dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")


def front_matter(result: OrchestratorResult) -> dict[str, object]:
    """The report's metadata (title, date, run id, models, totals) as plain values."""
    return {
        "title": result.title,
        "date": _date(result),
        "run_id": result.run_id,
        "status": str(result.status),
        "models": report_models(result),
        "agents": len(result.agent_results),
        "total_cost_usd": round(result.total_cost, 6),
        "input_tokens": result.usage.input_tokens,
        "output_tokens": result.usage.output_tokens,
        "execution_time_s": round(result.execution_time, 3),
    }


def _summary(result: OrchestratorResult) -> str:
    failed = len(result.failed_agents)
    lines = [
        f"- **Status:** {_inline(str(result.status))}",
        f"- **Agents:** {len(result.agent_results)} ({failed} did not complete)",
        f"- **Duration:** {_duration(result.execution_time)}",
        f"- **Cost:** {_money(result.total_cost)}",
        f"- **Tokens:** {result.usage.input_tokens:,} in, {result.usage.output_tokens:,} out",
    ]
    models = report_models(result)
    if models:
        lines.append("- **Models:** " + ", ".join(_inline(m) for m in models))
    if result.error:
        lines.append(f"- **Error:** {_inline(result.error)}")
    return "\n".join(lines)


def _agent_body(agent: AgentResult, subtask: SubTask | None) -> str:
    meta = [
        f"**Status:** {_inline(str(agent.status))}",
        f"**Type:** {_inline(str(agent.agent_type))}",
        f"**Model:** {_inline(agent.model or 'n/a')}",
        f"**Tokens:** {agent.usage.input_tokens:,} in / {agent.usage.output_tokens:,} out",
        f"**Cost:** {_money(agent.cost or agent.usage.cost_usd)}",
        f"**Time:** {_duration(agent.execution_time)}",
    ]
    parts = []
    if subtask is not None:
        parts.append(f"*Subtask:* {_inline(subtask.description)}")
        if subtask.dependencies:
            parts.append("*Depends on:* " + ", ".join(_inline(d) for d in subtask.dependencies))
    parts.append(" · ".join(meta))
    if agent.error:
        parts.append(f"> **Error:** {_inline(agent.error)}")
    parts.append(escape_untrusted_markdown(agent.content) if agent.content.strip() else "*(no output)*")
    return "\n\n".join(parts)


def _synthesis_body(synthesis: SynthesisResult) -> str:
    meta = f"*Model:* {_inline(synthesis.model or 'n/a')} · *Cost:* {_money(synthesis.cost)}"
    if synthesis.source_ids:
        meta += " · *Sources:* " + ", ".join(_inline(s) for s in synthesis.source_ids)
    return meta + "\n\n" + escape_untrusted_markdown(synthesis.content)


def _cost_rows(costs: Iterable[tuple[str, Usage]]) -> list[str]:
    return [
        f"| {_inline(name)} | {u.calls} | {u.input_tokens:,} | {u.output_tokens:,} | {_money(u.cost_usd)} |"
        for name, u in costs
    ]


def agent_costs(result: OrchestratorResult) -> list[tuple[str, float]]:
    """(agent id, USD) for the cost chart and table, from the ledger or the agent results."""
    if result.cost_by_agent:
        return [(name, usage.cost_usd) for name, usage in result.cost_by_agent.items()]
    return [(a.agent_id, a.cost or a.usage.cost_usd) for a in result.agent_results]


def _costs_body(result: OrchestratorResult) -> str:
    header = ["| {} | Calls | Input tokens | Output tokens | Cost |", "|---|---:|---:|---:|---:|"]
    by_agent = dict(result.cost_by_agent) or {
        a.agent_id: a.usage if a.usage.cost_usd else Usage(cost_usd=a.cost) for a in result.agent_results
    }
    total = result.usage if result.usage.calls or result.usage.cost_usd else Usage(cost_usd=result.total_cost)
    lines = ["### By agent", "", header[0].format("Agent"), header[1], *_cost_rows(by_agent.items())]
    lines.append(
        f"| **Total** | {total.calls} | {total.input_tokens:,} | {total.output_tokens:,} "
        f"| **{_money(result.total_cost)}** |"
    )
    if result.cost_by_model:
        lines += ["", "### By model", "", header[0].format("Model"), header[1]]
        lines += _cost_rows(result.cost_by_model.items())
    return "\n".join(lines)


_NOTABLE = {
    EventType.AGENT_ERROR,
    EventType.AGENT_RETRY,
    EventType.MODEL_RETRY,
    EventType.MODEL_FALLBACK,
    EventType.BUDGET_EXCEEDED,
    EventType.WARNING,
    EventType.CALLBACK_ERROR,
}


def _events_body(events: Sequence[StreamEvent]) -> str:
    counts: dict[str, int] = {}
    for event in events:
        counts[str(event.event_type)] = counts.get(str(event.event_type), 0) + 1
    lines = [f"{len(events)} events.", "", "| Event | Count |", "|---|---:|"]
    lines += [f"| {_inline(kind)} | {n} |" for kind, n in counts.items()]
    notable = [e for e in events if e.event_type in _NOTABLE]
    if notable:
        lines += ["", "Notable events:", ""]
        for event in notable[:200]:
            detail = event.data.get("message") or event.data.get("error") or event.data.get("reason") or ""
            who = f" ({_inline(event.agent_id)})" if event.agent_id else ""
            lines.append(
                f"- #{event.seq} {_inline(str(event.event_type))}{who}: {_inline(str(detail))[:300]}"
            )
    return "\n".join(lines)


def build_sections(result: OrchestratorResult, events: Sequence[StreamEvent] | None = None) -> list[Section]:
    """The report's sections in order (the contents list is derived from them)."""
    used: set[str] = {"contents"}
    sections = [Section("Summary", _anchor("Summary", used), _summary(result))]
    if result.final_synthesis:
        sections.append(
            Section(
                "Final synthesis",
                _anchor("Final synthesis", used),
                escape_untrusted_markdown(result.final_synthesis, min_heading=3),
            )
        )
    if result.synthesis_results:
        sections.append(Section("Synthesis levels", _anchor("Synthesis levels", used), ""))
        for synthesis in sorted(result.synthesis_results, key=lambda s: s.level):
            title = f"Level {synthesis.level}: {synthesis.agent_id}"
            sections.append(Section(title, _anchor(title, used), _synthesis_body(synthesis), level=3))
    if result.agent_results:
        sections.append(Section("Agent results", _anchor("Agent results", used), ""))
        subtasks = {s.id: s for s in result.subtasks}
        for agent in result.agent_results:
            title = f"{agent.agent_id} ({agent.subtask_id})"
            body = _agent_body(agent, subtasks.get(agent.subtask_id))
            sections.append(Section(title, _anchor(title, used), body, level=3))
    sections.append(Section("Costs", _anchor("Costs", used), _costs_body(result), kind="costs"))
    if events:
        sections.append(Section("Run log", _anchor("Run log", used), _events_body(events)))
    return sections


def _yaml(data: dict[str, object]) -> str:
    """Front matter as YAML whose values are JSON (valid YAML); ``<``, ``>``, ``&`` and
    Unicode line breaks become ``\\u`` escapes, so a viewer that shows front matter as text
    finds no markup in it and YAML sees one line per key."""
    lines = []
    for key, value in data.items():
        encoded = json.dumps(value, ensure_ascii=False)
        for char in "<>&\u2028\u2029\x85":
            encoded = encoded.replace(char, f"\\u{ord(char):04x}")
        lines.append(f"{key}: {encoded}")
    return "\n".join(lines)


def render_markdown(result: OrchestratorResult, *, events: Sequence[StreamEvent] | None = None) -> str:
    """The whole Markdown report for ``result`` (``events`` add a run-log section)."""
    sections = build_sections(result, events)
    out = ["---", _yaml(front_matter(result)), "---", "", f"# {_inline(result.title or result.run_id)}", ""]
    out += ["## Contents", ""]
    for section in sections:
        indent = "  " * (section.level - 2)
        out.append(f"{indent}- [{_inline(section.title)}](#{section.anchor})")
    for section in sections:
        out += ["", f'<a id="{section.anchor}"></a>', "", f"{'#' * section.level} {_inline(section.title)}"]
        if section.body:
            out += ["", section.body]
    return "\n".join(out) + "\n"
