"""The rotation report as HTML, in the evidence report's style (records/evidence.py):
the same page head and tables, every version with what was proved and written, and
the plain statement that re-wrapping is not revocation. Never a secret (the report
dict holds none)."""

from __future__ import annotations

from typing import Any

from ..records.evidence import _CSS, HTML_START, _e, _table

_COLUMNS = (
    ("data_object", "Data object"),
    ("data_version_id", "Data version"),
    ("result", "Result"),
    ("reason", "Why"),
    ("old_key_object", "Old key object"),
    ("old_key_version_id", "Old key version"),
    ("new_key_object", "New key object"),
    ("new_key_version_id", "New key version"),
    ("opened_with", "Opened with"),
    ("padding", "Padding"),
    ("wire_format", "Wire format"),
    ("wrapped_sha256_before", "SHA-256 before"),
    ("wrapped_sha256_after", "SHA-256 after"),
    ("seconds", "Seconds"),
)


def to_html(report: dict[str, Any]) -> bytes:
    new = report["new_key"]
    counts = ", ".join(f"{n} {k}" for k, n in sorted(report["counts"].items())) or "none"
    head = [
        ("Source", report["source"]),
        ("Scope", f"{report['scope']} versions"),
        ("Operation", report["operation"]),
        ("Started", report["started_at"]),
        ("Finished", report["finished_at"]),
        ("By", f"sealcheck {report['sealcheck_version']}"),
        ("Versioning", report["versioning"]),
        ("Journal", report["journal"]),
        ("New key", f"{new['label']} (RSA-{new['bits']}, SPKI SHA-256 {new['spki_sha256']})"),
        ("Private half", new["private_half"]),
        ("Proof of possession", new["proof_of_possession"]),
        ("Old keys", "; ".join(f"{k['label']} ({k['spki_sha256']})" for k in report["old_keys"])),
        ("Padding", report["padding"]),
        ("Versions", f"{len(report['versions'])}: {counts}"),
    ]
    header = "".join(f"<th>{_e(t)}</th>" for _, t in _COLUMNS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(v.get(k))}</td>" for k, _ in _COLUMNS) + "</tr>\n"
        for v in report["versions"]
    )
    warnings = "".join(f"<p class='warning'>⚠ {_e(w)}</p>\n" for w in report["warnings"])
    return (
        f"{HTML_START}<head><meta charset='utf-8'>\n"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">\n"
        f"<title>Sealcheck key rotation {_e(report['finished_at'])}</title>\n"
        f"<style>{_CSS}</style></head><body>\n"
        "<h1>Sealcheck key rotation</h1>\n"
        f"<p class='failed'>{_e(report['not_revocation'])}</p>\n"
        f"{warnings}{_table(head)}"
        f"<h2>Versions</h2>\n<table>\n<tr>{header}</tr>\n{rows}</table>\n"
        "</body></html>\n"
    ).encode()
