"""Checking an exported evidence report offline (``sealcheck report check FILE``).

The checks are the documented manual ones (``evidence`` module docstring), done exactly:

* HTML: the file ends with its 65-byte seal line, the SHA-256 of every byte before it;
  the sealed part carries the seal mark and states that byte count.
* JSON: the file is one JSON document followed by the single newline the export writes,
  with no duplicate member anywhere (parsers disagree on which copy wins, so a second
  one could show a forged value), the export's members in the export's order, the
  ``sha256`` member last, and that digest matches the ``evidence`` member.

When the seal does not hold the verdict names why (content after the seal, a digest
mismatch, a truncated file, no seal, an edit outside the sealed member). The names are
for a human; the verdict itself (intact or not) never depends on them.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SealcheckError
from .evidence import (
    FORMAT,
    FORMAT_VERSION,
    HTML_START,
    JSON_METHOD,
    SEAL_LINE_BYTES,
    SEAL_MARK,
    SEAL_OPEN,
    canonical,
)

MAX_BYTES = 1 << 30  # a report is text for a human; more is not one
_HEX = re.compile(rb"[0-9a-f]{64}\n")
_MARK = re.compile(re.escape(SEAL_MARK).replace(r"\{sealed\}", r"(\d+)").encode())
_SEAL_LINE = re.compile(re.escape(SEAL_OPEN.encode()) + rb"[0-9a-f]{64}\n")
# Reports of Sealcheck 0.1.0 sealed only the bytes before this mark, so content after
# it went unnoticed; they are refused by name rather than called truncated.
_EARLY_MARK = b"<!-- sealcheck-evidence-seal -->"
_JSON_MEMBERS = ["format", "format_version", "evidence", "sha256_method", "sha256"]


class ReportUnreadable(SealcheckError):
    """The evidence report could not be read."""


class Problem(enum.Enum):
    CONTENT_AFTER_SEAL = "content after the seal"
    DIGEST_MISMATCH = "digest mismatch"
    TRUNCATED = "truncated"
    NO_SEAL = "no seal"
    EDITED_OUTSIDE = "edited outside the sealed evidence"


@dataclass(frozen=True)
class Verdict:
    format: str  # "html" or "json"
    problem: Problem | None  # None: the seal is intact
    detail: str
    digest: str | None = None  # the sealed SHA-256, when intact

    @property
    def ok(self) -> bool:
        return self.problem is None


def read(path: Path) -> bytes:
    try:
        if not path.exists():
            raise ReportUnreadable("it does not exist", obj=str(path))
        if not path.is_file():
            raise ReportUnreadable("it is not a regular file", obj=str(path))
        if path.stat().st_size > MAX_BYTES:
            raise ReportUnreadable(f"it is larger than {MAX_BYTES} bytes", obj=str(path))
        return path.read_bytes()
    except OSError as exc:
        raise ReportUnreadable(exc.strerror or type(exc).__name__, obj=str(path)) from None


def check(data: bytes) -> Verdict:
    """The verdict on one exported report, HTML or JSON (told apart by the first byte)."""
    if data.lstrip()[:1] == b"{":
        return check_json(data)
    return check_html(data)


# --- HTML ----------------------------------------------------------------------------


def check_html(data: bytes) -> Verdict:
    size = len(data)
    body, line = data[:-SEAL_LINE_BYTES], data[-SEAL_LINE_BYTES:]
    mark = _MARK.search(data)
    if size > SEAL_LINE_BYTES and _HEX.fullmatch(line) and body.endswith(SEAL_OPEN.encode()):
        stated, actual = line[:64].decode(), hashlib.sha256(body).hexdigest()
        if stated != actual:
            return _html(
                Problem.DIGEST_MISMATCH,
                f"the {len(body)} bytes before the seal hash to {actual}, the seal says "
                f"{stated}: the report was changed after the export",
            )
        if mark is None or int(mark[1]) != len(body):
            why = "has no seal mark" if mark is None else f"states {mark[1].decode()} bytes"
            return _html(
                Problem.NO_SEAL,
                f"the last line is the SHA-256 of the {len(body)} bytes before it, but the "
                f"sealed part {why}: not a report as Sealcheck seals it",
            )
        return Verdict("html", None, f"the last line seals all {len(body)} bytes before it", actual)
    return _html_unsealed(data, mark)


def _html_unsealed(data: bytes, mark: re.Match[bytes] | None) -> Verdict:
    """Why a file that does not end with a seal line fails, in the likeliest words."""
    size = len(data)
    lines = list(_SEAL_LINE.finditer(data))
    if lines:
        last = lines[-1]
        return _html(
            Problem.CONTENT_AFTER_SEAL,
            f"the file goes on for {_bytes(size - last.end())} after the seal line, which "
            "must end it",
        )
    if mark is None and _EARLY_MARK in data:
        return _html(
            Problem.NO_SEAL,
            "sealed the earlier way (only the bytes before the seal, not what follows); "
            "export the report again for a seal this check accepts",
        )
    if mark is not None and size < int(mark[1]) + SEAL_LINE_BYTES:
        total = int(mark[1]) + SEAL_LINE_BYTES
        return _html(Problem.TRUNCATED, f"the file is {size} bytes, its seal states {total}")
    if mark is None and data.startswith(HTML_START.encode()):
        return _html(Problem.TRUNCATED, "the report is cut short before its seal")
    return _html(
        Problem.NO_SEAL,
        "the file does not end with a SHA-256 line"
        + ("" if mark is not None else ": not a Sealcheck evidence report"),
    )


def _html(problem: Problem, detail: str) -> Verdict:
    return Verdict("html", problem, detail)


# --- JSON ----------------------------------------------------------------------------


class _Rejected(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Rejected(f"the member {k!r} appears twice in one object")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise _Rejected(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def check_json(data: bytes) -> Verdict:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _json(Problem.EDITED_OUTSIDE, f"byte {exc.start} is not UTF-8 text")
    if not text.startswith("{"):
        return _json(Problem.EDITED_OUTSIDE, "content comes before the JSON document")
    try:
        doc, end = _DECODER.raw_decode(text)
    except _Rejected as exc:
        return _json(Problem.EDITED_OUTSIDE, str(exc))
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            return _json(Problem.TRUNCATED, f"the JSON document is cut short ({exc.msg})")
        return _json(Problem.EDITED_OUTSIDE, f"not valid JSON: {exc}")
    rest = text[end:]
    if rest == "":
        return _json(Problem.TRUNCATED, "the final newline is missing")
    if rest != "\n":
        extra = len(rest.encode()) - (1 if rest.startswith("\n") else 0)
        detail = f"the file goes on for {_bytes(extra)} after the JSON document"
        return _json(Problem.CONTENT_AFTER_SEAL, detail)
    return _json_members(doc)


def _json_members(doc: Any) -> Verdict:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return _json(Problem.NO_SEAL, f"not a Sealcheck evidence report (no format {FORMAT!r})")
    names = list(doc)
    if "sha256" not in doc:
        return _json(Problem.NO_SEAL, "the sha256 member is missing")
    if names[names.index("sha256") + 1 :]:
        after = ", ".join(names[names.index("sha256") + 1 :])
        return _json(Problem.CONTENT_AFTER_SEAL, f"members after the sha256 seal: {after}")
    if names != _JSON_MEMBERS:
        return _json(
            Problem.EDITED_OUTSIDE,
            f"the members are {', '.join(names)}; an export has {', '.join(_JSON_MEMBERS)}",
        )
    if doc["format_version"] != FORMAT_VERSION or doc["sha256_method"] != JSON_METHOD:
        return _json(Problem.EDITED_OUTSIDE, "format_version or sha256_method is not as exported")
    stated = doc["sha256"]
    if not isinstance(stated, str) or not re.fullmatch(r"[0-9a-f]{64}", stated):
        return _json(Problem.NO_SEAL, "the sha256 member is not a SHA-256 in hex")
    actual = hashlib.sha256(canonical(doc["evidence"])).hexdigest()
    if actual != stated:
        return _json(
            Problem.DIGEST_MISMATCH,
            f"the evidence member hashes to {actual}, sha256 says {stated}: "
            "the report was changed after the export",
        )
    return Verdict("json", None, "sha256 seals the evidence member", actual)


def _json(problem: Problem, detail: str) -> Verdict:
    return Verdict("json", problem, detail)


def _bytes(n: int) -> str:
    return f"{n} byte" if n == 1 else f"{n} bytes"
