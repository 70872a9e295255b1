"""Result fixtures for report tests (hostile and multilingual text included)."""

from __future__ import annotations

from orchestration.models import (
    AgentResult,
    AgentType,
    OrchestratorResult,
    SubTask,
    SynthesisResult,
    TaskStatus,
)
from orchestration.usage import Usage

HOSTILE = (
    "Bold start <b>never closed\n\n"
    "R&D costs & benefits; 3 < 4 and 5 > 2\n\n"
    "<img src=/etc/passwd>\n\n"
    "<script>alert('x')</script>\n\n"
    "Greek: Καλημέρα κόσμε · Chinese: 你好，世界 · Japanese: こんにちは\n\n"  # noqa: RUF001
    '<font name="Nope">fake reportlab markup</font> &amp; &lt;entity&gt;\n'
)

MARKDOWN_BODY = """## Findings

Some **bold**, *italic* and `inline code` with a [link](https://example.com/?a=1&b=2).

- first point
- second point with `code`
  1. nested one
  2. nested two

| Metric | Value |
|---|---:|
| Latency | 12 ms |
| R&D <b> | 3 |

```python
def hello(name: str) -> str:
    return f"<hello {name}>"  # & more
```

> A quotation, with <script>alert(1)</script> inside.
"""


def sample_result(*, big: str | None = None) -> OrchestratorResult:
    """A finished three-agent run with two synthesis levels."""
    subtasks = [
        SubTask(id="t1", description="Research the market & <competitors>", agent_type=AgentType.RESEARCHER),
        SubTask(
            id="t2", description="Analyse 数据 (data)", agent_type=AgentType.ANALYST, dependencies=["t1"]
        ),
        SubTask(id="t3", description="Hostile input", dependencies=["t1"]),
    ]
    usage = {
        "agent-t1": Usage(input_tokens=1200, output_tokens=800, cost_usd=0.0123, calls=2),
        "agent-t2": Usage(input_tokens=900, output_tokens=400, cost_usd=0.0061, calls=1),
        "agent-t3": Usage(input_tokens=300, output_tokens=100, cost_usd=0.0011, calls=1),
        "synthesizer": Usage(input_tokens=2000, output_tokens=600, cost_usd=0.0150, calls=1),
    }
    agents = [
        AgentResult("agent-t1", "researcher", "t1", MARKDOWN_BODY, model="gpt-4o-mini", cost=0.0123,
                    usage=usage["agent-t1"], execution_time=2.5),
        AgentResult("agent-t2", "analyst", "t2", big or "Analysis in 中文 and Ελληνικά.", model="claude-haiku",
                    cost=0.0061, usage=usage["agent-t2"], execution_time=1.25),
        AgentResult("agent-t3", "worker", "t3", HOSTILE, status=TaskStatus.FAILED, error="<b>boom & bust",
                    model="gpt-4o-mini", cost=0.0011, usage=usage["agent-t3"]),
    ]  # fmt: skip
    syntheses = [
        SynthesisResult("Level one summary: R&D <i>matters</i>.", level=1, source_ids=["t1", "t2"],
                        agent_id="synth-1", model="gpt-4o-mini", cost=0.005),
        SynthesisResult("# Final\n\nThe final answer with <script>x()</script>.", level=2,
                        agent_id="synth-2", model="gpt-4o-mini", cost=0.01),
    ]  # fmt: skip
    total = sum(usage.values(), Usage())
    return OrchestratorResult(
        task_id="run-abc123",
        title="Market research: R&D <b> 市场",
        status=TaskStatus.PARTIAL,
        agent_results=agents,
        final_synthesis="# Final\n\nThe final answer with <script>x()</script>.",
        execution_time=42.0,
        total_cost=total.cost_usd,
        synthesis_results=syntheses,
        subtasks=subtasks,
        usage=total,
        cost_by_agent=usage,
        cost_by_model={
            "gpt-4o-mini": Usage(input_tokens=3500, output_tokens=1500, cost_usd=0.0284, calls=4),
            "claude-haiku": Usage(input_tokens=900, output_tokens=400, cost_usd=0.0061, calls=1),
        },
    )
