"""The evidence body as a PDF (reportlab, headless; issue 14).

Summary first (population, sample, outcomes, coverage, failures first), then per
version its identity and what each layer proved (restore tests: their tables), and a
closing page with the chain head, the signature, how to verify it, and the controls
the evidence supports. The evidence body itself rides in the document's keywords
(zlib + base64), so ``sealcheck report verify`` can check a PDF offline; reportlab's
invariant mode makes the rendering a pure function of the body, so the check also
re-renders it and compares the bytes (an edited page is caught).
"""

from __future__ import annotations

import base64
import io
import json
import zlib
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from . import chain, sections

PREFIX = "sealcheck-evidence:v1:"
_STYLES = getSampleStyleSheet()
_BODY = ParagraphStyle("cell", parent=_STYLES["BodyText"], fontSize=7.5, leading=9)
_MONO = ParagraphStyle("mono", parent=_BODY, fontName="Courier", fontSize=6.5, leading=8)
_H1, _H2 = _STYLES["Heading1"], _STYLES["Heading2"]
_H3 = ParagraphStyle("version", parent=_STYLES["Heading3"], fontSize=9, spaceBefore=8)
_STATUS = {"ok": "#176f2c", "failed": "#b00020", "warning": "#8a5a00"}
_GRID = TableStyle(
    [
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#bbbbcc")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f1f3f6")),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]
)
_HEAD = TableStyle(
    [
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#bbbbcc")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f1f3f6")),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]
)
_WIDTH = A4[0] - 30 * mm
_COLOUR = {"OK": "#176f2c", "FAILED": "#b00020"}


def _p(value: Any, style: ParagraphStyle = _BODY) -> Paragraph:
    return Paragraph(escape("–" if value is None else str(value)), style)


def _x(value: Any) -> str:
    return escape("–" if value is None else str(value))


def _kv(rows: list[tuple[str, Any]], mono: bool = False) -> Table:
    data = [[_p(k), _p(v, _MONO if mono else _BODY)] for k, v in rows]
    t = Table(data, colWidths=[45 * mm, _WIDTH - 45 * mm])
    t.setStyle(_GRID)
    return t


def _grid(header: list[str], rows: list[list[Any]], widths: list[float]) -> Table:
    data = [[_p(h) for h in header], *[[_p(c) for c in r] for r in rows]]
    t = Table(data, colWidths=widths, repeatRows=1)
    t.setStyle(_HEAD)
    return t


def _verdict(r: dict[str, Any]) -> Paragraph:
    word = str(r["verdict"])
    colour = _COLOUR.get(word, "#3d4a5c")
    layer = f" at the {r['failed_layer']} layer" if r.get("failed_layer") and not r["ok"] else ""
    return Paragraph(
        f"Verdict: <font color='{colour}'><b>{escape(word)}</b></font>{escape(layer)} "
        f"(exit code {r['exit_code']})",
        _BODY,
    )


def _summary(body: dict[str, Any]) -> list[Any]:
    out: list[Any] = [Paragraph("Sealcheck evidence report", _H1)]
    sig = sections.signature_rows(body)[0][1] if "chain" in body else "NOT SIGNED"
    out.append(
        _kv(
            [
                ("Generated", body["generated_at"]),
                (
                    "By",
                    "sealcheck {version} on {host}".format(**body["generated_by"]),
                ),
                ("Records", len(body["entries"])),
                ("Signed by", sig),
            ]
        )
    )
    if "campaign" in body:
        out += [Paragraph("Audit campaign", _H2), _kv(sections.campaign_rows(body["campaign"]))]
    versions = [r for r in body["entries"] if r["kind"] not in ("audit", "rotation")]
    failed = [r for r in versions if r["verdict_code"] == "failed"]
    counts: dict[str, int] = {}
    for r in versions:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    out += [
        Paragraph("Outcomes", _H2),
        _kv([(k, v) for k, v in sorted(counts.items())] or [("Records", 0)]),
    ]
    if "coverage" in body:
        cov = sections.coverage_counts(body["coverage"])
        # An empty scope (no version listed) still gets its section: reportlab refuses a
        # table without rows.
        rows = [(k, v) for k, v in sorted(cov.items())] or [("Versions in scope", 0)]
        out += [Paragraph("Coverage", _H2), _kv(rows)]
    if failed:
        out.append(Paragraph(f"Failures ({len(failed)})", _H2))
        out.append(
            _grid(
                ["Record", "Object", "Version", "Layer", "Why"],
                [
                    [
                        f"#{r['history_id']}",
                        r["object"]["uri"],
                        r["object"]["version_id"],
                        r["failed_layer"],
                        (r["error"] or {}).get("message"),
                    ]
                    for r in failed
                ],
                [14 * mm, 55 * mm, 30 * mm, 18 * mm, _WIDTH - 117 * mm],
            )
        )
    return out


def _version(r: dict[str, Any]) -> list[Any]:
    if r["kind"] in ("audit", "rotation"):
        what, rows = (
            ("audit campaign", sections.campaign_rows)
            if r["kind"] == "audit"
            else ("key rotation", sections.rotation_rows)
        )
        return [
            Paragraph(f"#{r['history_id']} {what}", _H2),
            _verdict({**r, "failed_layer": None}),
            _kv(rows(r["result"])),
        ]
    obj = r["object"]
    key = r["opened_with"]
    ident = [
        ("Object", obj["uri"]),
        ("Version id / ETag", f"{obj['version_id']} / {obj['etag']}"),
        ("Size / last modified", f"{obj['size']} bytes / {obj['last_modified']}"),
        ("SHA-256 object", obj["object_sha256"]),
        ("SHA-256 plaintext", obj["plaintext_sha256"]),
        ("Wrapped key version", (r["wrapped_key"] or {}).get("version_id")),
        ("Opened with", f"{key['fingerprint']} ({key['held']})" if key else None),
        ("Recorded", f"{r['recorded_at']} by {r['os_user']} on {r['host']} ({r['trigger']})"),
        ("Record hash", r["chain"]["record_hash"]),
        *([("Targets", sections.target_text(r["targets"]))] if r.get("targets") else []),
    ]
    # One paragraph per block, not a table cell per value: a thousand versions render
    # in seconds (reportlab lays out each Paragraph on its own).
    lines = "<br/>".join(f"<b>{escape(k)}</b>: {_x(v)}" for k, v in ident)
    layers = "<br/>".join(
        f"<b>{escape(x['layer'])}</b> <font color='{_STATUS.get(x['status'], '#3d4a5c')}'>"
        f"{escape(x['status'])}</font>: {_x(x['proved'])}"
        for x in r["layers"]
    )
    out: list[Any] = [
        Paragraph(f"#{r['history_id']} {escape(r['kind'])}: {escape(obj['uri'])}", _H3),
        _verdict(r),
        Paragraph(lines, _BODY),
        Paragraph(layers or "no layer was reached", _BODY),
    ]
    rt = r.get("restore_test")
    if rt:
        out.append(Paragraph(f"Clean-up: {escape(rt.get('cleanup', 'not recorded'))}", _BODY))
    if rt and rt["tables"]:
        out.append(
            _grid(
                ["Table", "Rows", "Rows in dump", "Checksum"],
                [
                    [f"{t['schema']}.{t['name']}", t["rows"], t["expected_rows"], t["checksum"]]
                    for t in rt["tables"]
                ],
                [60 * mm, 25 * mm, 25 * mm, _WIDTH - 110 * mm],
            )
        )
    return out


def _closing(body: dict[str, Any]) -> list[Any]:
    return [
        PageBreak(),
        Paragraph("Chain and signature", _H1),
        _kv(sections.signature_rows(body), mono=True),
        Spacer(1, 3 * mm),
        Paragraph(escape(sections.VERIFY_HOWTO), _BODY),
        Paragraph(escape(chain.HOW), _BODY),
        Paragraph("Controls this evidence supports", _H2),
        _grid(
            ["Control", "Evidence"],
            [list(c) for c in sections.CONTROLS],
            [40 * mm, _WIDTH - 40 * mm],
        ),
    ]


def to_pdf(body: dict[str, Any]) -> bytes:
    story = _summary(body)
    versions = list(body["entries"])
    if versions:
        story.append(PageBreak())
        story.append(Paragraph("Per version: identity and what each layer proved", _H1))
    for r in versions:
        story += _version(r)
    story += _closing(body)
    buf = io.BytesIO()
    # Key order kept (not sorted): the body read back renders to the same bytes.
    plain = json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode()
    packed = base64.b64encode(zlib.compress(plain, 9)).decode()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"Sealcheck evidence report {body['generated_at']}",
        author="sealcheck",
        subject="Backup verification evidence",
        keywords=PREFIX + packed,
        invariant=1,
    )
    doc.build(story)
    return buf.getvalue()
