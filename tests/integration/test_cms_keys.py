"""CMS (S/MIME) envelopes opened with held keys: a PKCS#11 token (SoftHSM2) and the keyring.

The recipient certificate is made by openssl for the key's public half (for the
token key, one generated on the token: its private half never existed outside
it); the backups are made by ``openssl smime``/``openssl cms``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.pipelines import sh
from fixtures.softhsm import SoftHsm
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.keys.discovery import held_keys
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.keys.pkcs11.key import open_pkcs11_key
from sealcheck.core.keys.spec import KeyContext
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.storage.source import LocalFile


def cert_for(public: Path, folder: Path, name: str) -> Path:
    """A certificate (signed by a throwaway CA) for a public key whose private half we lack."""
    ca_key, ca, csr, crt = (folder / f"{name}-{x}" for x in ("ca.key", "ca.crt", "req.csr", "crt"))
    sh(
        f"openssl req -x509 -newkey rsa:2048 -nodes -keyout {ca_key} -out {ca} -subj /CN=ca "
        "-days 30 2>/dev/null\n"
        f"openssl req -new -key {ca_key} -subj /CN={name} -out {csr} 2>/dev/null\n"
        f"openssl x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial "
        f"-force_pubkey {public} -days 30 -out {crt} 2>/dev/null",
        folder,
    )
    return crt


def envelope(dump: Path, out: Path, cert: Path, options: str, keyopts: str = "") -> Path:
    # -keyopt applies to the -recip before it.
    sh(
        f"gzip -c {dump} | openssl cms -encrypt {options} -out {out} -recip {cert} {keyopts}",
        out.parent,
    )
    return out


@pytest.mark.parametrize(
    ("keyopts", "padding"),
    [
        ("", "PKCS#1 v1.5"),
        ("-keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256", "OAEP-SHA256"),
    ],
)
def test_token_key_opens_cms(
    tmp_path: Path, small_dump: Path, softhsm: SoftHsm, keyopts: str, padding: str
) -> None:
    spec = softhsm.keys["genkey"]  # generated on the token
    cert = cert_for(spec.public, tmp_path, "token")
    data = envelope(small_dump, tmp_path / "db.enc", cert, "-binary -aes256 -outform DER", keyopts)
    pins: list[int] = []

    def pin() -> bytes:
        pins.append(1)
        return softhsm.pin.encode()

    key = open_pkcs11_key(spec.uri(), module=softhsm.module, pin_provider=pin)
    try:
        rep = run(Job(data=LocalFile(data), secrets=Secrets(keys=[key])))
    finally:
        key.close()
    assert rep.ok, rep.to_json()
    layer = rep.layer("key")
    assert layer is not None
    assert layer.details["padding"] == padding
    assert layer.details["key"] == "PKCS#11 token 'backup' key 'genkey'"
    assert rep.formats == ("cms", "gzip", "mysql-sql")
    assert len(pins) == 1


def test_held_token_key_found_without_naming_it(
    tmp_path: Path, small_dump: Path, softhsm: SoftHsm
) -> None:
    """No --key: the token's keys are candidates; only the one that fits is unwrapped with."""
    spec = softhsm.keys["rsa3072"]
    cert = cert_for(spec.public, tmp_path, "held")
    data = envelope(small_dump, tmp_path / "db.enc", cert, "-binary -aes128 -outform PEM")
    from sealcheck.core.keys.custody import KeyStore

    keys = held_keys(
        KeyContext(pin=lambda: softhsm.pin.encode(), pkcs11_module=softhsm.module),
        store=KeyStore(tmp_path / "no-keyring-keys"),
    )
    rep = run(Job(data=LocalFile(data), secrets=Secrets(keys=keys)))
    assert rep.ok, rep.to_json()
    layer = rep.layer("key")
    assert layer is not None and "rsa3072" in layer.details["key"]


def test_keyring_key_opens_smime_without_key_option(
    keyring_session, tmp_path: Path, small_dump: Path, rsa_key
) -> None:
    name = f"cms{os.getpid()}{tmp_path.name[-6:]}".replace("_", "")
    r = run_cli("key", "import", str(rsa_key.private), "--name", name)
    assert r.returncode == 0, r.stderr
    try:
        cert = tmp_path / "backup.crt"
        sh(
            f"openssl req -x509 -new -key {rsa_key.private} -subj /CN=keyring -days 30 "
            f"-out {cert} 2>/dev/null",
            tmp_path,
        )
        data = tmp_path / "db.sql.gz.enc"
        sh(
            f"gzip -c {small_dump} | openssl smime -encrypt -binary -text -aes256 -out {data} "
            f"-outform DER {cert}",
            tmp_path,
        )
        r = run_cli("verify", str(data), "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        key = next(x for x in json.loads(r.stdout)["layers"] if x["layer"] == "key")
        assert key["details"]["fingerprint"] == PemKey.from_file(rsa_key.private).fingerprint
    finally:
        run_cli("key", "remove", name, "--yes")
