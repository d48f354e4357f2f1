"""RFC 3161 timestamp of a report's chain head (issue 14, ``--tsa URL``).

The time stamping authority is the real one openssl ships (``openssl ts -reply``), with
a CA and a TSA certificate (extendedKeyUsage timeStamping, critical) made here by
openssl, behind a tiny local HTTP server this test starts. The token a report keeps is
checked by ``sealcheck report verify --tsa-cert`` and by ``openssl ts -verify`` too."""

from __future__ import annotations

import base64
import http.server
import json
import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import test_audit

from fixtures.common import run_cli
from fixtures.dumps import mysql_like
from fixtures.keyring_session import KeyringSession
from fixtures.pipelines import RsaKey, securecircle
from sealcheck.core.records import evidence

_TSA_CNF = """
[tsa]
default_tsa = tsa1
[tsa1]
serial = {root}/serial
signer_cert = {root}/tsa.pem
certs = {root}/ca.pem
signer_key = {root}/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _ssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _tsa_cert(root: Path, name: str) -> None:
    """A TSA key and certificate issued by the CA in ``root``."""
    ext = root / f"{name}.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=critical,timeStamping\n"
    )
    _ssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
        f"{name}.csr", "-subj", f"/CN=Sealcheck test {name}", cwd=root,
    )  # fmt: skip
    _ssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", ext.name,
        cwd=root,
    )  # fmt: skip


@dataclass(frozen=True)
class Tsa:
    root: Path
    url: str


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tsa]:
    root = tmp_path_factory.mktemp("tsa")
    _ssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
        "ca.pem", "-days", "2", "-subj", "/CN=Sealcheck test TSA CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=root,
    )  # fmt: skip
    _tsa_cert(root, "tsa")
    _tsa_cert(root, "other")  # a second TSA of the same CA
    (root / "serial").write_text("01\n")
    cnf = root / "tsa.cnf"
    cnf.write_text(_TSA_CNF.format(root=root))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = self.rfile.read(int(self.headers["Content-Length"]))
            with tempfile.TemporaryDirectory(dir=root) as d:
                (Path(d) / "q.tsq").write_bytes(query)
                subprocess.run(
                    ["openssl", "ts", "-reply", "-config", str(cnf), "-queryfile", "q.tsq",
                     "-out", "r.tsr"],
                    cwd=d, check=True, capture_output=True, timeout=60,
                )  # fmt: skip
                reply = (Path(d) / "r.tsr").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Tsa(root, f"http://127.0.0.1:{server.server_address[1]}/tsa")
    finally:
        server.shutdown()
        server.server_close()


estate = test_audit.estate  # the audit tests' estate on moto_server


@dataclass(frozen=True)
class Made:
    root: Path
    env: dict[str, str]
    report: Path


@pytest.fixture(scope="module")
def made(
    tmp_path_factory: pytest.TempPathFactory,
    rsa_key: RsaKey,
    keyring_session: KeyringSession,
    tsa: Tsa,
) -> Made:
    root = tmp_path_factory.mktemp("stamped")
    env = {**os.environ, **keyring_session.env, "SEALCHECK_DATA_DIR": str(root / "data")}
    good = securecircle(mysql_like(root / "dump.sql", rows=50), root / "backups", rsa_key)
    r = run_cli("verify", str(good.data), "--key", str(rsa_key.private), "--no-progress", env=env)
    assert r.returncode == 0, r.stderr
    out = root / "report.json"
    r = run_cli(
        "report", "export", "1", "--format", "json", "-o", str(out), "--tsa", tsa.url, env=env
    )
    assert r.returncode == 0, r.stderr
    assert "timestamped by" in r.stderr
    return Made(root, env, out)


def _verify(m: Made, path: Path, *extra: str) -> tuple[int, str]:
    r = run_cli("report", "verify", str(path), *extra, env=m.env, timeout=120)
    return r.returncode, r.stdout + r.stderr


def _stamp(doc: dict[str, Any]) -> dict[str, Any]:
    ts: dict[str, Any] = doc["evidence"]["chain"]["timestamp"]
    return ts


def test_token_verifies_with_sealcheck_and_openssl(made: Made, tsa: Tsa) -> None:
    code, out = _verify(made, made.report, "--tsa-cert", str(tsa.root / "tsa.pem"))
    assert code == 0, out
    assert "report intact" in out and "chain head timestamped (RFC 3161) at" in out
    doc = json.loads(made.report.read_text())
    ts, head = _stamp(doc), doc["evidence"]["chain"]["statement"]["head"]["hash"]
    assert ts["imprint"] == head
    token = made.root / "token.der"
    token.write_bytes(base64.b64decode(ts["token"]))
    ossl = [
        "openssl", "ts", "-verify", "-in", str(token), "-token_in",
        "-CAfile", str(tsa.root / "ca.pem"), "-untrusted", str(tsa.root / "tsa.pem"),
    ]  # fmt: skip
    r = subprocess.run([*ossl, "-digest", head], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Verification: OK" in r.stdout, r.stdout + r.stderr
    other = ("0" if head[0] != "0" else "1") + head[1:]
    r = subprocess.run([*ossl, "-digest", other], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Verification: OK" not in r.stdout
    # Without --tsa-cert the imprint is still checked, and it says what was not.
    code, out = _verify(made, made.report)
    assert code == 0 and "no --tsa-cert given" in out, out


def _altered(m: Made, name: str, edit: Any) -> Path:
    doc = json.loads(m.report.read_text())
    edit(doc)
    out = m.root / name
    out.write_bytes(evidence.to_json(doc["evidence"]))  # resealed: the digest is no defence
    return out


def test_tampered_chain_head_fails(made: Made, tsa: Tsa) -> None:
    def edit(doc: dict[str, Any]) -> None:
        head = doc["evidence"]["chain"]["statement"]["head"]
        head["hash"] = "ab" * 32

    path = _altered(made, "head.json", edit)
    code, out = _verify(made, path, "--tsa-cert", str(tsa.root / "tsa.pem"))
    assert code == 1, out
    assert "REPORT ALTERED" in out
    assert "not the chain head" in out and "the chain head or the token was changed" in out


def test_tampered_token_fails(made: Made, tsa: Tsa) -> None:
    def edit(doc: dict[str, Any]) -> None:
        der = bytearray(base64.b64decode(_stamp(doc)["token"]))
        der[-1] ^= 0x01  # the last byte of the TSA's signature
        _stamp(doc)["token"] = base64.b64encode(bytes(der)).decode()

    path = _altered(made, "token.json", edit)
    code, out = _verify(made, path, "--tsa-cert", str(tsa.root / "tsa.pem"))
    assert code == 1, out
    assert "the timestamp token's signature does not verify against the TSA certificate" in out


def test_another_tsa_certificate_fails(made: Made, tsa: Tsa) -> None:
    code, out = _verify(made, made.report, "--tsa-cert", str(tsa.root / "other.pem"))
    assert code == 1, out
    assert "signed by another TSA certificate than CN=Sealcheck test other" in out
    code, out = _verify(made, made.report, "--tsa-cert", str(tsa.root / "ca.pem"))
    assert code == 1 and "is not for time stamping" in out, out


def test_unreachable_tsa_still_writes_the_report(made: Made, tsa: Tsa) -> None:
    with socket.socket() as s:  # a port nothing listens on (bound, then freed)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = made.root / "unstamped.json"
    r = run_cli(
        "report", "export", "1", "--format", "json", "-o", str(out),
        "--tsa", f"http://127.0.0.1:{port}/tsa", env=made.env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "the report is NOT timestamped" in r.stderr and "refused" in r.stderr.lower()
    ts = _stamp(json.loads(out.read_text()))
    assert ts["status"] == "not timestamped" and f"127.0.0.1:{port}" in ts["reason"]
    code, text = _verify(made, out)
    assert code == 0 and "note: not timestamped" in text, text
    code, text = _verify(made, out, "--tsa-cert", str(tsa.root / "tsa.pem"))
    assert code == 1 and "--tsa-cert given but the report is not timestamped" in text, text


def test_html_and_pdf_show_the_timestamp(made: Made, tsa: Tsa) -> None:
    for fmt in ("html", "pdf"):
        out = made.root / f"report.{fmt}"
        r = run_cli(
            "report", "export", "1", "--format", fmt, "-o", str(out), "--tsa", tsa.url,
            env=made.env,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        code, text = _verify(made, out, "--tsa-cert", str(tsa.root / "tsa.pem"))
        assert code == 0 and "timestamped (RFC 3161)" in text, text
    assert "RFC 3161 timestamp" in (made.root / "report.html").read_text()


def test_audit_report_is_timestamped(
    estate: test_audit.Estate, tmp_path: Path, keyring_session: KeyringSession, tsa: Tsa
) -> None:
    env = {**os.environ, **keyring_session.env}
    report = tmp_path / "audit.json"
    args = ("--sample", "2", "--seed", "7", "--report", str(report), "--tsa", tsa.url)
    r, doc = test_audit.audit(estate, tmp_path / "data", *args, env=env)
    assert r.returncode in (0, 1), r.stderr
    assert doc["campaign"]["report"] == str(report)
    v = run_cli(
        "report", "verify", str(report), "--tsa-cert", str(tsa.root / "tsa.pem"),
        env={**env, "SEALCHECK_DATA_DIR": str(tmp_path / "data")},
    )  # fmt: skip
    assert v.returncode == 0 and "chain head timestamped (RFC 3161)" in v.stdout, v.stdout


def test_tsa_usage_errors(made: Made) -> None:
    r = run_cli("audit", "s3://b/p/", "--tsa", "http://127.0.0.1:1/", env=made.env)
    assert r.returncode == 2 and "give --report FILE too" in r.stderr, r.stderr
    r = run_cli(
        "report", "export", "1", "--format", "json", "-o", str(made.root / "x.json"),
        "--tsa", "file:///etc/passwd", env=made.env,
    )  # fmt: skip
    assert r.returncode == 2 and "http:// or https:// URL" in r.stderr, r.stderr
    assert not (made.root / "x.json").exists()
