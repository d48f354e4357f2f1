"""The formats a signed evidence report is written in, by name: the one list that
``sealcheck report export --format``, ``audit --report``'s file name and the app's
export dialogs all offer, and that report_formats renders.

Only names here, no renderer: the CLI's parser and the app's start-up read this list,
and the renderers load reportlab (PDF), which neither needs until a PDF is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ReportFormat:
    name: str  # the value of --format and the file name's suffix
    title: str
    use: str  # what it is for, in a few words (the app's choice says it)


FORMATS: tuple[ReportFormat, ...] = (
    ReportFormat("html", "HTML", "for people; the seal checks with standard tools"),
    ReportFormat("json", "JSON", "for programs"),
    # A view, not evidence: report_formats says why (a spreadsheet rewrites it on save).
    ReportFormat("csv", "CSV", "for spreadsheets; a view of the signed report, not evidence"),
    ReportFormat("pdf", "PDF", "for filing and printing; signed, checked offline"),
)

NAMES: tuple[str, ...] = tuple(f.name for f in FORMATS)

# What a report's file name may end in, as the sentence an error says it in.
SUFFIXES = ", ".join("." + n for n in NAMES[:-1]) + " or ." + NAMES[-1]

_ALIASES = {"htm": "html"}  # a name a browser's "save as" gives HTML


def of_path(path: Path) -> str | None:
    """The format a report file's name ends in, or None when it ends in none of them."""
    s = path.suffix.lower().lstrip(".")
    s = _ALIASES.get(s, s)
    return s if s in NAMES else None
