"""``sealcheck report verify FILE [--public-key PEM]``: the signature and the hash chain
of an exported report, checked offline (issue 14).

The report carries its evidence body (JSON: the ``evidence`` member; HTML: the
machine-readable block; PDF: the document's keywords) with, per record, the stored
content its digest covers, and the signed statement: the chain's spine from the first
record to the head. The check recomputes everything from the file alone and names what
was altered:

* a record edited (its content no longer gives the digest the signed spine holds; the
  field, when a derived field was edited and the content was not);
* a record removed, added, or the records reordered (against the signed list);
* the signature: missing, not matching (the statement or the body changed after
  signing), or made by another key than ``--public-key``;
* the visible report (HTML, PDF) differing from the evidence it carries.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import chain, evidence, evidence_check, timestamp
from .sections import CSV_VIEW_MARK

_PDF_EVIDENCE = re.compile(rb"sealcheck-evidence:v1:([A-Za-z0-9+/=]+)")
PDF_PREFIX = "sealcheck-evidence:v1:"


@dataclass
class Outcome:
    format: str
    signer: str | None = None  # the signing key's fingerprint, when the signature holds
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    head: dict[str, Any] | None = None
    records: int = 0
    timestamped: str | None = None  # the TSA's time, when the token holds

    @property
    def ok(self) -> bool:
        return not self.problems


class NotAReport(ValueError):
    """The file carries no Sealcheck evidence this check can read."""


def body_of(data: bytes) -> tuple[str, dict[str, Any]]:
    """The format and the evidence body a report file carries."""
    if data.startswith(b"%PDF"):
        m = _PDF_EVIDENCE.search(data)
        if m is None:
            raise NotAReport("a PDF without Sealcheck evidence in it")
        import base64
        import zlib

        try:
            return "pdf", json.loads(zlib.decompress(base64.b64decode(m[1])))
        except (ValueError, zlib.error) as exc:
            raise NotAReport(f"the PDF's evidence is damaged ({exc})") from None
    if data.lstrip()[:1] == b"{":
        try:
            doc = json.loads(data)
            return "json", doc["evidence"]
        except (ValueError, KeyError, TypeError) as exc:
            raise NotAReport(f"not a JSON evidence report ({exc})") from None
    text = data.decode("utf-8", "replace")
    if text.lstrip('\ufeff"').startswith(CSV_VIEW_MARK):
        raise NotAReport(
            "a CSV is a spreadsheet view of a report, not evidence (it carries no "
            "signature): verify the signed JSON, HTML or PDF report exported with it"
        )
    start = text.find(evidence.EMBED_OPEN)
    end = text.find("</pre>", start)
    if start < 0 or end < 0:
        raise NotAReport("an HTML file without Sealcheck's machine-readable evidence")
    try:
        return "html", json.loads(html.unescape(text[start + len(evidence.EMBED_OPEN) : end]))
    except ValueError as exc:
        raise NotAReport(f"the HTML's evidence block is damaged ({exc})") from None


def verify(
    data: bytes,
    public_pem: bytes | None = None,
    renderers: dict[str, Callable[[dict[str, Any]], bytes]] | None = None,
    tsa_cert: bytes | None = None,
) -> Outcome:
    """``renderers``: format -> the function that renders a body, to compare the
    visible report with the evidence it carries (HTML and PDF are deterministic).
    ``tsa_cert``: the TSA certificate (PEM) the RFC 3161 token must verify against."""
    fmt, body = body_of(data)
    out = Outcome(fmt)
    if not isinstance(body, dict) or not isinstance(body.get("chain"), dict):
        out.problems.append("the report has no signed chain (exported before chaining?)")
        return out
    ch = body["chain"]
    stmt = ch.get("statement") or {}
    out.head = stmt.get("head")
    try:
        out.signer = chain.check_signature(ch, public_pem)
    except chain.SignatureProblem as exc:
        out.problems.append(str(exc))
    if public_pem is None and out.signer is not None:
        out.notes.append(
            f"no --public-key given: the signature holds for the key in the report, "
            f"{out.signer}; compare it with the one Sealcheck published"
        )
    _check_body(body, stmt, out)
    _check_records(body, stmt, out)
    _check_timestamp(ch, stmt, tsa_cert, out)
    render = (renderers or {}).get(fmt)
    if render is not None and fmt != "json":
        try:
            same = render(body) == data
        except Exception as exc:  # noqa: BLE001 - a damaged body cannot be rendered
            same, _ = False, exc
        if not same:
            out.problems.append(
                f"the visible {fmt.upper()} report differs from the evidence it carries: "
                "its text was edited after export"
            )
    if fmt == "json":
        _check_seal(data, out)
    return out


def _check_timestamp(
    ch: dict[str, Any], stmt: dict[str, Any], cert: bytes | None, out: Outcome
) -> None:
    ts = ch.get("timestamp")
    if not isinstance(ts, dict) or ts.get("status") != "timestamped":
        if cert is not None:
            why = f" ({ts.get('reason')})" if isinstance(ts, dict) else ""
            out.problems.append(f"--tsa-cert given but the report is not timestamped{why}")
        elif isinstance(ts, dict):
            out.notes.append(f"not timestamped: {ts.get('reason')}")
        return
    try:
        out.timestamped = timestamp.check(ts, str((stmt.get("head") or {}).get("hash")), cert)
    except timestamp.TimestampProblem as exc:
        out.problems.append(str(exc))
        return
    if cert is None:
        out.notes.append(
            "no --tsa-cert given: the timestamp token stamps the chain head, but its "
            "signature was not checked"
        )


def _check_body(body: dict[str, Any], stmt: dict[str, Any], out: Outcome) -> None:
    actual = hashlib.sha256(evidence.canonical(evidence.unsigned_part(body))).hexdigest()
    if actual != stmt.get("body_sha256"):
        out.problems.append(
            "the report's content differs from what was signed (body SHA-256 "
            f"{actual}, signed {stmt.get('body_sha256')})"
        )


def _check_records(body: dict[str, Any], stmt: dict[str, Any], out: Outcome) -> None:
    records = body.get("entries") or []
    out.records = len(records)
    spine = [chain.SpineLink(int(i), str(d)) for i, d in stmt.get("spine") or []]
    anchor = str(stmt.get("anchor"))
    head = stmt.get("head") or {}
    if chain.head_of(anchor, spine) != head.get("hash"):
        out.problems.append("the signed spine does not lead to the signed chain head")
    # The hash before each record, recomputed from the anchor along the spine.
    before: dict[int, str] = {}
    digest_at: dict[int, str] = {}
    h = anchor
    for s in spine:
        before[s.id], digest_at[s.id] = h, s.digest
        h = chain.link(h, s.digest)
    included = [int(i) for i in stmt.get("included") or []]
    ids: list[int] = []
    for pos, r in enumerate(records):
        rid = _record_id(r, pos, out)
        if rid is None:
            continue
        ids.append(rid)
        _check_record(r, rid, before, digest_at, out)
    _check_membership(included, ids, out)


def _record_id(r: Any, pos: int, out: Outcome) -> int | None:
    try:
        return int(r["chain"]["content"]["id"])
    except (KeyError, TypeError, ValueError):
        out.problems.append(f"record {pos + 1} in the file has no chain content: it was edited")
        return None


def _check_record(
    r: dict[str, Any], rid: int, before: dict[int, str], digest_at: dict[int, str], out: Outcome
) -> None:
    if rid not in digest_at:
        out.problems.append(f"record #{rid} was added: it is not in the signed chain")
        return
    try:
        e = evidence.entry_of(r)
        digest = chain.digest_of(e.content())
    except (KeyError, TypeError, ValueError) as exc:
        out.problems.append(f"record #{rid} was edited: its content is damaged ({exc})")
        return
    if digest != digest_at[rid]:
        out.problems.append(
            f"record #{rid} was edited: its content no longer matches the digest in the "
            "signed chain"
        )
        return
    if r["chain"].get("prev_hash") != before[rid] or r["chain"].get("record_hash") != chain.link(
        before[rid], digest
    ):
        out.problems.append(f"record #{rid}: its previous or own hash was edited")
    try:
        derived = evidence.record_of(e)
    except (KeyError, TypeError, ValueError) as exc:
        out.problems.append(f"record #{rid} was edited: its result cannot be read ({exc})")
        return
    edited = [k for k in sorted(set(derived) | set(r)) if derived.get(k) != r.get(k)]
    if edited:
        out.problems.append(
            f"record #{rid} was edited: {', '.join(edited)} differ from its signed content"
        )


def _check_membership(included: list[int], ids: list[int], out: Outcome) -> None:
    for rid in included:
        if rid not in ids:
            out.problems.append(f"record #{rid} was removed: the signature lists it")
    present = [i for i in ids if i in included]
    expected = [i for i in included if i in ids]
    if present != expected:
        first = next(k for k, (a, b) in enumerate(zip(present, expected, strict=True)) if a != b)
        out.problems.append(
            f"records were reordered: #{present[first]} stands where the signature has "
            f"#{expected[first]}"
        )
    dupes = {i for i in ids if ids.count(i) > 1}
    for rid in sorted(dupes):
        out.problems.append(f"record #{rid} appears more than once")


def _check_seal(data: bytes, out: Outcome) -> None:
    seal = evidence_check.check(data)
    if not seal.ok:
        assert seal.problem is not None
        out.notes.append(f"the SHA-256 seal does not hold: {seal.problem.value}: {seal.detail}")
