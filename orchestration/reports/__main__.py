"""``python -m orchestration.reports RESULT.json --format md,pdf --out DIR``: reports for a saved result."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import OrchestrationError
from ..events import StreamEvent
from ..models import OrchestratorResult
from . import generate_reports


def main(argv: Sequence[str] | None = None) -> int:
    """Write reports for a result saved as JSON (``OrchestratorResult.to_dict()``)."""
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.reports",
        description="Write Markdown/PDF reports for a saved run result.",
    )
    parser.add_argument("result", type=Path, help="a JSON file holding OrchestratorResult.to_dict()")
    parser.add_argument("--format", default="markdown", help="comma-separated: md, markdown, pdf")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="output directory")
    parser.add_argument("--events", type=Path, help="optional JSON-lines file of the run's events")
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.result.read_text(encoding="utf-8"))
        result = OrchestratorResult.from_dict(data.get("result", data) if isinstance(data, dict) else data)
        events = None
        if args.events is not None:
            lines = args.events.read_text(encoding="utf-8").splitlines()
            events = [StreamEvent.from_dict(json.loads(line)) for line in lines if line.strip()]
        reports = generate_reports(result, args.format.split(","), args.out, events=events)
    except (OSError, ValueError, KeyError, TypeError, OrchestrationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for document in reports.documents:
        print(f"{document.format}\t{document.size_bytes}\t{document.path}")
    for warning in reports.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for failure in reports.failures:
        print(f"error: the {failure.format} report was not written: {failure.error}", file=sys.stderr)
    return 1 if reports.failures else 0


if __name__ == "__main__":
    sys.exit(main())
