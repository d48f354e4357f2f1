"""Signed, hash-chained evidence (issue 14): reports exported by the real CLI from real
verifications (openssl-made backups, one cut short), signed with the Ed25519 key kept in
a real keyring, then altered the ways a forger would; ``sealcheck report verify`` must
name each alteration."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_cli_history import cut_copy

from fixtures.common import run_cli
from fixtures.dumps import mysql_like
from fixtures.keyring_session import KeyringSession
from fixtures.pipelines import RsaKey, securecircle
from sealcheck.core.records import chain, evidence
from sealcheck.core.records.history import FILENAME, History


@dataclass(frozen=True)
class Exported:
    root: Path
    env: dict[str, str]
    public_pem: Path
    files: dict[str, Path]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, timeout=120)


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory, rsa_key: RsaKey, keyring_session: KeyringSession
) -> Exported:
    root = tmp_path_factory.mktemp("chain")
    env = {**os.environ, **keyring_session.env, "SEALCHECK_DATA_DIR": str(root / "data")}
    dump = mysql_like(root / "dump.sql", rows=500)
    good = securecircle(dump, root / "backups", rsa_key)
    bad = cut_copy(good, root / "backups" / "cut.sql.gz")
    for b, code in ((good, 0), (bad, 1), (good, 0)):
        r = _cli(env, "verify", str(b.data), "--key", str(rsa_key.private), "--no-progress")
        assert r.returncode == code, r.stderr
    pem = root / "signing.pem"
    r = _cli(env, "key", "export-public", "--signing")
    assert r.returncode == 0, r.stderr
    pem.write_text(r.stdout)
    files = {}
    for fmt in ("json", "html", "pdf", "csv"):
        out = root / f"report.{fmt}"
        r = _cli(env, "report", "export", "1", "2", "3", "--format", fmt, "-o", str(out))
        assert r.returncode == 0, r.stderr
        assert "signed by SHA256:" in r.stdout
        files[fmt] = out
    return Exported(root, env, pem, files)


def report_verify(ex: Exported, path: Path, pem: Path | None = None) -> tuple[int, str]:
    args = ["report", "verify", str(path)]
    if pem is not None:
        args += ["--public-key", str(pem)]
    r = _cli(ex.env, *args)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("fmt", ["json", "html", "pdf"])
def test_exported_reports_verify(exported: Exported, fmt: str) -> None:
    code, out = report_verify(exported, exported.files[fmt], exported.public_pem)
    assert code == 0, out
    assert "report intact" in out and "3 records" in out
    fp = chain.spki_fingerprint_of_pem(exported.public_pem.read_bytes())
    assert f"signed by Ed25519 key {fp}" in out
    # Without the public key it still checks, and says what to compare.
    code, out = report_verify(exported, exported.files[fmt])
    assert code == 0 and "no --public-key given" in out and fp in out


def _doc(ex: Exported) -> dict[str, Any]:
    return json.loads(ex.files["json"].read_text())


def _write(ex: Exported, name: str, doc: dict[str, Any]) -> Path:
    out = ex.root / name
    out.write_bytes(evidence.to_json(doc["evidence"]))  # resealed: the digest is no defence
    return out


def test_edited_field_is_named(exported: Exported) -> None:
    doc = _doc(exported)
    doc["evidence"]["entries"][1]["result"]["ok"] = True  # the cut backup "passed"
    code, out = report_verify(exported, _write(exported, "edited.json", doc), exported.public_pem)
    assert code == 1, out
    assert "REPORT ALTERED" in out and "record #2 was edited" in out
    doc = _doc(exported)
    doc["evidence"]["entries"][0]["verdict"] = "OK (forged)"  # a derived field only
    code, out = report_verify(exported, _write(exported, "derived.json", doc), exported.public_pem)
    assert code == 1 and "record #1 was edited: verdict differ" in out, out


def test_deleted_record_is_named(exported: Exported) -> None:
    doc = _doc(exported)
    del doc["evidence"]["entries"][1]
    code, out = report_verify(exported, _write(exported, "deleted.json", doc), exported.public_pem)
    assert code == 1 and "record #2 was removed" in out, out


def test_swapped_order_is_named(exported: Exported) -> None:
    doc = _doc(exported)
    e = doc["evidence"]["entries"]
    e[0], e[2] = e[2], e[0]
    code, out = report_verify(exported, _write(exported, "swapped.json", doc), exported.public_pem)
    assert code == 1 and "records were reordered: #3 stands where the signature has #1" in out, out


def _resign(body: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """What a forger with their own key does: recompute every digest, the spine, the
    head and the body hash, and sign that."""
    unsigned = evidence.unsigned_part(body)
    stmt = copy.deepcopy(body["chain"]["statement"])
    digests = {}
    for r in unsigned["entries"]:
        e = evidence.entry_of(r)
        digests[e.id] = chain.digest_of(e.content())
    spine = [chain.SpineLink(i, digests.get(i, d)) for i, d in stmt["spine"]]
    h = stmt["anchor"]
    for r, s in zip(unsigned["entries"], spine, strict=False):
        r["chain"]["prev_hash"], r["chain"]["digest"] = h, s.digest
        r["chain"]["record_hash"] = h = chain.link(h, s.digest)
    new = chain.statement(
        anchor=stmt["anchor"],
        spine=spine,
        included=stmt["included"],
        body_sha256=hashlib.sha256(evidence.canonical(unsigned)).hexdigest(),
        signed_at=stmt["signed_at"],
    )
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sig = {
        "algorithm": "Ed25519",
        "public_key": pem.decode(),
        "fingerprint": chain.spki_fingerprint_of_pem(pem),
        "value": base64.b64encode(key.sign(chain.canonical(new))).decode(),
    }
    return {**unsigned, "chain": {**body["chain"], "statement": new, "signature": sig}}


def test_resigned_with_another_key_is_named(exported: Exported) -> None:
    doc = _doc(exported)
    body = doc["evidence"]
    body["entries"][1]["result"]["ok"] = True
    body["entries"][1]["ok"] = True
    forged = _resign(body, Ed25519PrivateKey.generate())
    doc["evidence"] = forged
    path = _write(exported, "resigned.json", doc)
    code, out = report_verify(exported, path, exported.public_pem)
    assert code == 1 and "signed by another key" in out, out
    # Without the real public key, the forger's own key is the one named for comparison.
    _, out = report_verify(exported, path)
    assert forged["chain"]["signature"]["fingerprint"] in out


def test_edited_html_text_is_named(exported: Exported) -> None:
    data = exported.files["html"].read_bytes()
    edited = data.replace(b"FAILED", b"OK", 1)
    assert edited != data
    path = exported.root / "edited.html"
    path.write_bytes(edited)
    code, out = report_verify(exported, path, exported.public_pem)
    assert code == 1 and "visible HTML report differs" in out, out


def test_pdf_text_and_pages(exported: Exported) -> None:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(str(exported.files["pdf"]))
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert "Sealcheck evidence report" in text
    assert "Chain and signature" in text and "SOC 2 A1.3" in text and "CP-9(2)" in text
    assert "FAILED" in text and "cut.sql.gz" in text
    fp = chain.spki_fingerprint_of_pem(exported.public_pem.read_bytes())
    assert fp[:30] in text.replace("\n", "")
    if shutil.which("pdftoppm"):
        subprocess.run(
            [
                "pdftoppm",
                "-png",
                "-r",
                "60",
                "-f",
                "1",
                "-l",
                "1",
                str(exported.files["pdf"]),
                str(exported.root / "page"),
            ],
            check=True,
        )
        assert (exported.root / "page-1.png").stat().st_size > 5000
    data = exported.files["pdf"].read_bytes()
    path = exported.root / "edited.pdf"
    edited = data.replace(
        b"/Title (Sealcheck evidence report", b"/Title (Sealcheck evidence REPORT"
    )
    assert edited != data  # the page streams are compressed; the title is not
    path.write_bytes(edited)
    code, out = report_verify(exported, path, exported.public_pem)
    assert code == 1 and "visible PDF report differs" in out, out


def test_csv_one_row_per_version(exported: Exported) -> None:
    rows = exported.files["csv"].read_text().splitlines()
    # First a row that says it is a view, not evidence, and names the signed head.
    assert rows[0].startswith('"# Sealcheck CSV: a spreadsheet view, NOT evidence')
    assert "verify that one" in rows[0] and "signed by Ed25519 key SHA256:" in rows[0]
    rows = rows[1:]
    assert rows[0].startswith("history_id,recorded_at,kind,verdict")
    assert len(rows) == 4
    assert ",FAILED," in rows[2] and "SHA256:" in rows[1]
    head = rows[1].split(",")[-2]
    assert f"chain head {head}" in exported.files["csv"].read_text().splitlines()[0]
    # report verify says what the file is and where the evidence is (exit 2).
    code, out = report_verify(exported, exported.files["csv"], exported.public_pem)
    assert code == 2 and "a CSV is a spreadsheet view of a report, not evidence" in out, out


def test_history_chain_catches_an_edit_behind_its_back(exported: Exported, tmp_path: Path) -> None:
    copy_ = tmp_path / FILENAME
    shutil.copy(exported.root / "data" / FILENAME, copy_)
    hist = History(copy_)
    assert hist.check_chain() == []
    db = sqlite3.connect(copy_)
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("UPDATE entries SET ok = 1 WHERE id = 2")
    db.commit()
    db.close()
    assert any("record #2 was edited" in p for p in hist.check_chain())


V1_SCHEMA = """
CREATE TABLE entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, recorded_at TEXT NOT NULL, kind TEXT NOT NULL,
    uri TEXT NOT NULL, bucket TEXT, object_key TEXT NOT NULL, version_id TEXT, etag TEXT,
    size INTEGER, sha256 TEXT, ok INTEGER NOT NULL, exit_code INTEGER NOT NULL,
    failed_layer TEXT, result TEXT NOT NULL, sealcheck_version TEXT NOT NULL,
    host TEXT NOT NULL);
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the history is append-only'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'the history is append-only'); END;
PRAGMA user_version = 1;
"""


def test_a_history_kept_before_the_chain_is_chained_on_first_open(
    exported: Exported, tmp_path: Path
) -> None:
    """A schema-1 history (Sealcheck before issue 14) keeps its rows as they were,
    gets them chained in id order, stays append-only, and new records follow on."""
    src = sqlite3.connect(exported.root / "data" / FILENAME)
    cols = (
        "recorded_at, kind, uri, bucket, object_key, version_id, etag, size, sha256, ok, "
        "exit_code, failed_layer, result, sealcheck_version, host"
    )
    rows = src.execute(f"SELECT {cols} FROM entries ORDER BY id").fetchall()
    src.close()
    path = tmp_path / FILENAME
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.executemany(f"INSERT INTO entries ({cols}) VALUES ({', '.join('?' * 15)})", rows)
    db.commit()
    db.close()
    hist = History(path)
    old = hist.entries()
    assert len(old) == len(rows) and all(e.record_hash and e.os_user is None for e in old)
    assert hist.check_chain() == []
    again = History(path).entries()[0].result()
    hist.record(again)
    assert hist.check_chain() == [] and len(hist.entries()) == len(rows) + 1
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        sqlite3.connect(path).execute("UPDATE entries SET ok = 0")
