"""One evidence body, four renderings: HTML and JSON (sealed, as before), CSV (one row
per version, for spreadsheets) and PDF. Each carries the signed chain; HTML, JSON and
PDF carry the whole body, so ``report verify`` checks them offline.

CSV is a view, not evidence: a spreadsheet rewrites it on save (dates, numbers, quoting),
so a signature over it would break for reasons that are no tampering, and one that held
would prove only the spreadsheet's copy. Its first row says so and names the signed
chain head, so each row (its record hash) can be traced to the signed JSON, HTML or PDF
report of the same records, which is what an auditor files and verifies."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any

from . import evidence, report_pdf, sections
from .evidence_stream import Gathered, Writable, entries_of, materialised

CSV_COLUMNS = (
    "history_id",
    "recorded_at",
    "kind",
    "verdict",
    "failed_layer",
    "exit_code",
    "bucket",
    "key",
    "version_id",
    "etag",
    "size",
    "last_modified",
    "object_sha256",
    "plaintext_sha256",
    "wrapped_key_version_id",
    "key_fingerprint",
    "key_held",
    "duration_s",
    "restore_total_s",
    "age_at_check_s",
    "host",
    "os_user",
    "trigger",
    "campaign",
    "record_hash",
    "chain_head",
    "signed_by",
)


def csv_notice(head: str | None, signed_by: str | None) -> str:
    signed = f"signed by Ed25519 key {signed_by}" if signed_by else "NOT signed"
    return (
        f"{sections.CSV_VIEW_MARK} (no signature; sealcheck report verify does not check it). "
        f"The evidence is the signed JSON, HTML or PDF report of the same records "
        f"(chain head {head or '-'}, {signed}): verify that one with sealcheck report "
        "verify; each row's record_hash is in it."
    )


def to_csv(body: dict[str, Any]) -> bytes:
    return b"".join(csv_pieces(body))


def csv_pieces(body: dict[str, Any]) -> Iterator[bytes]:
    """The CSV a row at a time (its records as they are read)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")

    def taken() -> bytes:
        text = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return text.encode()

    ch = body.get("chain") or {}
    head = ((ch.get("statement") or {}).get("head") or {}).get("hash")
    signed_by = (ch.get("signature") or {}).get("fingerprint")
    w.writerow([csv_notice(head, signed_by)])
    w.writerow(CSV_COLUMNS)
    for r in entries_of(body):
        if r["kind"] in ("audit", "rotation"):
            continue  # a campaign's or a rotation's record is about a prefix, not a version
        obj, key, t = r["object"], r["opened_with"] or {}, r["timings"]
        row = [
            r["history_id"],
            r["recorded_at"],
            r["kind"],
            r["verdict"],
            r["failed_layer"],
            r["exit_code"],
            obj["bucket"],
            obj["key"],
            obj["version_id"],
            obj["etag"],
            obj["size"],
            obj["last_modified"],
            obj["object_sha256"],
            obj["plaintext_sha256"],
            (r["wrapped_key"] or {}).get("version_id"),
            key.get("fingerprint"),
            key.get("held"),
            t.get("duration_s"),
            t.get("total_s"),
            r["age_at_check_s"],
            r["host"],
            r["os_user"],
            r["trigger"],
            r["campaign"],
            r["chain"]["record_hash"],
            head,
            signed_by,
        ]
        # A cell starting with = + - @ is a formula to a spreadsheet: quote it as text.
        w.writerow(["'" + c if isinstance(c, str) and c[:1] in "=+-@" else c for c in row])
        yield taken()
    yield taken()


def _pdf(body: dict[str, Any]) -> bytes:
    # Not streamed: reportlab lays out and holds every page until it writes the file,
    # and the PDF carries the whole body (its keywords), so its records are held.
    return report_pdf.to_pdf(materialised(body))


RENDERERS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "html": evidence.to_html,
    "json": evidence.to_json,
    "csv": to_csv,
    "pdf": _pdf,
}

PIECES: dict[str, Callable[[dict[str, Any]], Iterator[bytes]]] = {
    "html": evidence.html_pieces,
    "json": evidence.json_pieces,
    "csv": csv_pieces,
    "pdf": lambda body: iter([_pdf(body)]),
}


def render(body: dict[str, Any], fmt: str) -> bytes:
    return RENDERERS[fmt](body)


def write(body: dict[str, Any], fmt: str, out: Writable) -> None:
    """Render ``body`` as ``fmt`` into ``out`` as it is made: the same bytes as
    ``render``, without holding them (nor, when the body streams, its records; PDF
    excepted)."""
    w = Gathered(out)
    for piece in PIECES[fmt](body):
        w.write(piece)
    w.flush()
