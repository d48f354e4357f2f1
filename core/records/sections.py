"""What every rendering of an evidence body (HTML, PDF, CSV, the terminal) says about
the campaign, coverage, the signed chain and the controls: plain rows, rendered by each
format its own way, so the formats cannot drift apart."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

VERIFY_HOWTO = (
    "Check this report offline with Sealcheck: sealcheck report verify FILE "
    "--public-key evidence-signing.pem (the public key from sealcheck key export-public "
    "--signing, filed apart from this report). It recomputes every record's digest and the "
    "hash chain to the signed head, checks the Ed25519 signature, and names any record "
    "edited, removed, reordered or added, and a signature by another key."
)

# The first row of every CSV report (report verify reads it to say what the file is).
CSV_VIEW_MARK = "# Sealcheck CSV: a spreadsheet view, NOT evidence"

# Which evidence each control asks for, and where this report holds it.
CONTROLS = (
    (
        "SOC 2 A1.2",
        "Backups are made and kept: the population of backup versions listed, with their "
        "storage class and age",
    ),
    (
        "SOC 2 A1.3",
        "Recovery is tested: integrity and completeness of every sampled version, restore "
        "tests with the measured recovery time",
    ),
    (
        "ISO/IEC 27001:2022 A.8.13",
        "Backups regularly tested: last verified and last restore-tested per version, "
        "outdated after the configured number of days",
    ),
    (
        "NIST SP 800-53 CP-9(1)",
        "Reliability and integrity testing: a random sample (recorded seed) decrypted and "
        "each layer proved (ciphertext and plaintext SHA-256)",
    ),
    (
        "NIST SP 800-53 CP-9(2)",
        "Test restoration using sampling: the restore-tested versions, tables and rows",
    ),
    ("PCI DSS 4.0 12.10.2", "Tested at least every 12 months: the dates and results above"),
)


def signature_rows(body: dict[str, Any]) -> list[tuple[str, Any]]:
    ch = body.get("chain") or {}
    stmt = ch.get("statement") or {}
    sig = ch.get("signature")
    head = stmt.get("head") or {}
    return [
        (
            "Signed by",
            f"Ed25519 key {sig['fingerprint']}"
            if sig
            else "NOT SIGNED (no evidence signing key was usable)",
        ),
        ("Chain head", f"record #{head.get('id')}: {head.get('hash')}"),
        ("Chain anchor", stmt.get("anchor")),
        ("Records in the chain span", len(stmt.get("spine") or ())),
        ("Records in this report", len(stmt.get("included") or ())),
        ("Report content SHA-256", stmt.get("body_sha256")),
        ("Signature (base64)", sig["value"] if sig else None),
        ("Signed at", stmt.get("signed_at")),
        *_timestamp_rows(ch.get("timestamp")),
    ]


def _timestamp_rows(ts: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The RFC 3161 timestamp of the chain head, when --tsa asked for one."""
    if not ts:
        return []
    if ts.get("status") != "timestamped":
        return [("RFC 3161 timestamp", f"NOT TIMESTAMPED: {ts.get('reason')}")]
    return [
        ("RFC 3161 timestamp", f"{ts.get('gen_time')} by {ts.get('tsa')} (serial {ts['serial']})"),
        # The token itself (a few KB) stays in the machine-readable evidence.
        ("Timestamp token", f"{_token_summary(str(ts.get('token')))}"),
    ]


def _token_summary(b64: str) -> str:
    try:
        der = base64.b64decode(b64, validate=True)
    except ValueError:
        return "damaged"
    return (
        f"{len(der)} bytes DER, SHA-256 {hashlib.sha256(der).hexdigest()}, kept in the "
        "machine-readable evidence (chain.timestamp.token)"
    )


def campaign_rows(c: dict[str, Any]) -> list[tuple[str, Any]]:
    totals = c.get("totals") or {}
    skipped = c.get("skipped") or []
    return [
        ("Campaign", c.get("id")),
        ("Where", c.get("where")),
        ("Started / finished", f"{c.get('started_at')} / {c.get('finished_at')}"),
        ("Population (versions)", c.get("population")),
        ("Sample", f"{c.get('sample_size')} by {c.get('method')}"),
        ("Seed", c.get("seed")),
        ("Restore tests", c.get("restore_test") or "none"),
        (
            "Outcomes",
            ", ".join(f"{k}: {v}" for k, v in sorted(totals.items())) or "none",
        ),
        ("Skipped", f"{len(skipped)} ({_reasons(skipped)})" if skipped else "none"),
        ("Stopped early", c.get("stopped") or "no"),
        ("Recovery time (RTO)", _target(c, "rto", "rto_s", "s")),
        ("Newest backup age (RPO)", _target(c, "rpo", "rpo_h", "h")),
        ("Exit code", c.get("exit_code")),
    ]


def rotation_summary(r: dict[str, Any]) -> str:
    """One line: how many versions ended how, and whether every one is rotated."""
    counts = r.get("counts") or {}
    told = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no versions"
    return f"{'complete' if r.get('complete') else 'NOT complete'} ({told})"


def rotation_rows(r: dict[str, Any]) -> list[tuple[str, Any]]:
    """A key rotation's report (rotation/report.py) in a few rows; its versions stay in
    the record's result."""
    new = r.get("new_key") or {}
    counts = r.get("counts") or {}
    return [
        ("Where", r.get("source")),
        ("Scope", f"{r.get('scope')} versions"),
        ("Started / finished", f"{r.get('started_at')} / {r.get('finished_at')}"),
        ("New key", f"{new.get('label')} {new.get('spki_sha256')} RSA-{new.get('bits')}"),
        ("Proof of possession", new.get("proof_of_possession")),
        ("Old keys", ", ".join(str(k.get("spki_sha256")) for k in r.get("old_keys") or [])),
        ("Padding", r.get("padding")),
        ("Versions", ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"),
        ("Complete", "yes" if r.get("complete") else "no"),
        ("Not revocation", r.get("not_revocation")),
    ]


def _target(c: dict[str, Any], kind: str, key: str, unit: str) -> str:
    t = c.get("targets") or {}
    rows = t.get(kind) or []
    if not rows:
        return "not measured"
    target = t.get(key)
    missed = [r for r in rows if r.get("met") is False]
    per_source = sorted(
        {
            f"{r[f'target_{unit}']:g} {unit} ({r.get('from')})"
            for r in rows
            if r.get(f"target_{unit}")
        }
    )
    if target is not None:
        head = f"target {target:g} {unit}: "
    elif per_source:
        head = f"targets per source {', '.join(per_source)}: "
    else:
        head = "no target set: "
    worst = max((r.get("recovery_s") or r.get("newest_age_h") or 0) for r in rows)
    return head + f"{len(rows)} measured, {len(missed)} missed, worst {worst:g} {unit}"


def target_text(t: dict[str, Any]) -> str:
    """One record's targets and whether it met them (evidence.py's ``targets``)."""

    def met(v: Any) -> str:
        return {True: "met", False: "MISSED"}.get(v, "not measured")

    parts = []
    if t.get("rto_s") is not None:
        parts.append(f"RTO {t['rto_s']:g} s ({t.get('rto_from')}): {met(t.get('rto_met'))}")
    if t.get("rpo_h") is not None:
        parts.append(f"RPO {t['rpo_h']:g} h ({t.get('rpo_from')}): {met(t.get('rpo_met'))}")
    return "; ".join(parts)


def _reasons(skipped: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for s in skipped:
        counts[str(s.get("why"))] = counts.get(str(s.get("why")), 0) + 1
    return "; ".join(f"{n} {why}" for why, n in sorted(counts.items()))


COVERAGE_COLUMNS = (
    "state",
    "backup",
    "version_id",
    "last_verified",
    "verify_result",
    "last_restore_tested",
    "restore_test_result",
    "age_days",
)


def coverage_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["state"]] = out.get(r["state"], 0) + 1
    return out
