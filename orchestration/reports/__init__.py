"""Reports for a run: Markdown and PDF, from a live or a saved :class:`OrchestratorResult`.

``write_reports(result, ["markdown", "pdf"], "reports/")`` writes one file per format and
returns a :class:`GeneratedDocument` for each (the core calls it when
``config.generate_documents`` is True).  A saved result works too::

    python -m orchestration.reports result.json --format md,pdf --out reports/

reportlab (PDF) is imported only when a PDF is written.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, OrchestrationError
from ..events import StreamEvent
from ..models import GeneratedDocument, OrchestratorResult
from .markdown import render_markdown

__all__ = ["REPORT_FORMATS", "ReportDependencyError", "render_markdown", "render_pdf", "write_reports"]

#: Accepted format names and the canonical name each maps to.
REPORT_FORMATS = {"markdown": "markdown", "md": "markdown", "pdf": "pdf"}
_SUFFIX = {"markdown": ".md", "pdf": ".pdf"}


class ReportDependencyError(OrchestrationError, ImportError):
    """A package a report format needs is not installed; the message says what to install."""


def render_pdf(
    result: OrchestratorResult,
    path: str | os.PathLike[str],
    *,
    events: Sequence[StreamEvent] | None = None,
) -> Path:
    """Write the PDF report for ``result`` to ``path``; see :mod:`orchestration.reports.pdf`."""
    try:
        from .pdf import render_pdf as _render_pdf
    except ImportError as error:
        raise ReportDependencyError(
            f"PDF reports need reportlab, markdown-it-py and nh3 ({error.name or error}): "
            "pip install reportlab markdown-it-py nh3"
        ) from error
    return _render_pdf(result, path, events=events)


def normalise_formats(formats: Sequence[str]) -> list[str]:
    """Canonical format names, in order, without repeats; ConfigError for an unknown one."""
    if isinstance(formats, str):
        formats = [part for part in formats.split(",") if part.strip()]
    canonical: list[str] = []
    for name in formats:
        key = str(name).strip().lower()
        if key not in REPORT_FORMATS:
            raise ConfigError(f"unknown report format {name!r}; choose from {sorted(set(REPORT_FORMATS))}")
        if REPORT_FORMATS[key] not in canonical:
            canonical.append(REPORT_FORMATS[key])
    if not canonical:
        raise ConfigError("no report format given; choose from ['markdown', 'pdf']")
    return canonical


def report_basename(result: OrchestratorResult) -> str:
    """A safe file name stem: a slug of the title plus the run id."""
    slug = re.sub(r"[^a-z0-9]+", "-", (result.title or "").lower()).strip("-")[:48].strip("-")
    run = re.sub(r"[^A-Za-z0-9_-]+", "-", result.run_id).strip("-")[:64] or "run"
    return f"{slug}-{run}" if slug else f"run-{run}"


def _write_text(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=".report-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_reports(
    result: OrchestratorResult,
    formats: Sequence[str],
    output_directory: str | os.PathLike[str],
    *,
    events: Sequence[StreamEvent] | None = None,
) -> list[GeneratedDocument]:
    """Write one report per format into ``output_directory`` and describe each file.

    ``formats`` holds ``"markdown"`` (or ``"md"``) and/or ``"pdf"``.  ``events`` (the
    run's event log, optional) adds a run-log section.  Raises :class:`ConfigError` for
    an unknown format and :class:`ReportDependencyError` when a needed package is
    missing; never returns an empty list for a requested format.
    """
    wanted = normalise_formats(formats)
    if "pdf" in wanted:
        _check_pdf_dependencies()
    directory = Path(output_directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = report_basename(result)
    documents: list[GeneratedDocument] = []
    for name in wanted:
        path = directory / f"{stem}{_SUFFIX[name]}"
        if name == "markdown":
            _write_text(path, render_markdown(result, events=events))
        else:
            render_pdf(result, path, events=events)
        documents.append(GeneratedDocument(format=name, path=str(path), size_bytes=path.stat().st_size))
    return documents


def _check_pdf_dependencies() -> None:
    import importlib.util

    missing = [name for name in ("reportlab", "markdown_it", "nh3") if importlib.util.find_spec(name) is None]
    if missing:
        raise ReportDependencyError(f"PDF reports need {', '.join(missing)}: pip install {' '.join(missing)}")
