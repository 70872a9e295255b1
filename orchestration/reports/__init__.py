"""Reports for a run: Markdown and PDF, from a live or a saved :class:`OrchestratorResult`.

``write_reports(result, ["markdown", "pdf"], "reports/")`` writes one file per format and
returns a :class:`GeneratedDocument` for each.  The core (``config.generate_documents``)
calls :func:`generate_reports`, which never raises for one report: it writes every
report it can and says why each other one could not be written (and which characters no
installed font could draw), so a run's record is never lost to its reports.  A saved
result works too::

    python -m orchestration.reports result.json --format md,pdf --out reports/

reportlab (PDF) is imported only when a PDF is written.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, OrchestrationError, describe
from ..events import StreamEvent
from ..models import GeneratedDocument, OrchestratorResult
from .markdown import render_markdown

__all__ = [
    "REPORT_FORMATS",
    "ReportDependencyError",
    "ReportFailure",
    "Reports",
    "generate_reports",
    "render_markdown",
    "render_pdf",
    "write_reports",
]

#: Accepted format names and the canonical name each maps to.
REPORT_FORMATS = {"markdown": "markdown", "md": "markdown", "pdf": "pdf"}
_SUFFIX = {"markdown": ".md", "pdf": ".pdf"}


class ReportDependencyError(OrchestrationError, ImportError):
    """A package a report format needs is not installed; the message says what to install."""


@dataclass(frozen=True)
class ReportFailure:
    """A report that could not be written: its format, the file it was meant to be, why."""

    format: str
    path: str
    error: str
    exception: BaseException = field(repr=False, compare=False)


@dataclass(frozen=True)
class Reports:
    """What :func:`generate_reports` did: the files written, the ones that failed, warnings."""

    documents: list[GeneratedDocument]
    failures: list[ReportFailure]
    warnings: list[str]

    @classmethod
    def failed(cls, formats: Sequence[str], reason: str, error: BaseException) -> Reports:
        """Nothing written: every format failed for ``reason``."""
        return cls([], [ReportFailure(name, "", reason, error) for name in formats], [])


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
        raise ReportDependencyError(_missing_message([error.name or str(error)])) from error
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
    missing (before anything is written), and the error of the first report that could
    not be written; never returns an empty list for a requested format.
    """
    reports = generate_reports(result, formats, output_directory, events=events)
    if reports.failures:
        raise reports.failures[0].exception
    return reports.documents


def generate_reports(
    result: OrchestratorResult,
    formats: Sequence[str],
    output_directory: str | os.PathLike[str],
    *,
    events: Sequence[StreamEvent] | None = None,
) -> Reports:
    """Write every report of ``formats`` that can be written; never raises for one report.

    A report that fails (an unwritable folder, a full disk, a layout reportlab cannot
    do) is a :class:`ReportFailure` with the reason, and the others are still written.
    Raises :class:`ConfigError` for an unknown format and :class:`ReportDependencyError`
    when a needed package is missing, as :func:`write_reports` does.
    """
    wanted = normalise_formats(formats)
    if "pdf" in wanted:
        _check_pdf_dependencies()
    directory = Path(output_directory)
    stem = report_basename(result)
    reports = Reports([], [], [])
    for name in wanted:
        path = directory / f"{stem}{_SUFFIX[name]}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if name == "markdown":
                _write_text(path, render_markdown(result, events=events))
            else:
                from .pdf import write_pdf

                missing = write_pdf(result, path, events=events)
                if missing:
                    reports.warnings.append(_missing_glyphs_message(missing))
            reports.documents.append(
                GeneratedDocument(format=name, path=str(path), size_bytes=path.stat().st_size)
            )
        except Exception as error:  # one report's failure never costs the others
            reports.failures.append(ReportFailure(name, str(path), describe(error), error))
    return reports


def _missing_glyphs_message(missing: set[str]) -> str:
    shown = sorted(missing)[:10]
    listed = ", ".join(f"{char} (U+{ord(char):04X} {unicodedata.name(char, 'unnamed')})" for char in shown)
    more = f" and {len(missing) - len(shown)} more" if len(missing) > len(shown) else ""
    return (
        f"the PDF report shows {len(missing)} character(s) as boxes, since no installed font has them: "
        f"{listed}{more}; install a font that covers them (e.g. Debian's fonts-noto-core or fonts-noto-cjk)"
    )


# Import names of the packages PDF reports need, and the distribution that provides each.
_PDF_PACKAGES = {
    "reportlab": "reportlab",
    "markdown": "markdown",
    "mdx_truly_sane_lists": "mdx-truly-sane-lists",
    "nh3": "nh3",
    "bidi": "python-bidi",
    "arabic_reshaper": "arabic-reshaper",
}


def _missing_message(names: list[str]) -> str:
    distributions = [_PDF_PACKAGES.get(name, name) for name in names]
    return f"PDF reports need {', '.join(distributions)}: pip install {' '.join(distributions)}"


def _check_pdf_dependencies() -> None:
    import importlib.util

    missing = [name for name in _PDF_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ReportDependencyError(_missing_message(missing))
