"""Rotating CMS envelopes (issues 13 and 18): backups made by ``openssl smime|cms
-encrypt -outform DER`` for an old RSA key, rotated on a versioned moto bucket by adding
a KeyTransRecipientInfo for the new key; ``openssl cms -decrypt -inkey NEW`` (and still
``-inkey OLD``) gives the plaintext byte for byte. The PEM and S/MIME forms are reported
as not rotated, with the reason."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fixtures.pipelines import RsaKey, sh
from fixtures.rotation import PREFIX, fetch, links, producer_objects, rotate_keys
from fixtures.s3scenarios import sealcheck
from fixtures.s3servers import Bucket, ChaosS3

MIB = 1024 * 1024
NAME = "db.sql.gz.p7m"


def cms_backup(payload: Path, out: Path, old: RsaKey, command: str) -> bytes:
    cert = out.parent / "old.crt"
    if not cert.exists():
        sh(f"openssl req -x509 -new -key {old.private} -subj /CN=old -days 30 -out {cert}",
           out.parent)  # fmt: skip
    sh(command.format(cert=cert, out=out, payload=payload), out.parent)
    return out.read_bytes()


def cms_decrypt(key: Path, data: bytes) -> bytes:
    r = subprocess.run(
        ["openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-inkey", str(key)],
        input=data, capture_output=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


SMIME = "openssl smime -encrypt -binary -aes256 -outform DER -in {payload} -out {out} {cert}"
CMS = (
    "openssl cms -encrypt -binary -aes-256-cbc -outform DER -in {payload} -out {out} -recip {cert}"
)
CMS_STREAM = CMS.replace("-encrypt", "-encrypt -stream")
CMS_GCM = CMS.replace("-aes-256-cbc", "-aes-256-gcm")
CMS_OAEP = CMS + " -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256"


@pytest.mark.parametrize(
    ("command", "size"),
    [
        (SMIME, 0),
        (CMS, 0),
        (CMS_STREAM, 0),  # indefinite lengths
        (CMS_GCM, 0),  # AuthEnvelopedData
        (CMS_OAEP, 0),  # RSAES-OAEP key transport: the new recipient uses it too
        (CMS, 6 * MIB),  # large: the content is copied in the store
    ],
    ids=["smime", "cms", "cms-stream", "cms-gcm", "cms-oaep", "cms-large"],
)
def test_cms_backups_rotate_and_open_with_the_new_key(
    moto_s3: Bucket,
    chaos: ChaosS3,
    tmp_path: Path,
    rsa_key: RsaKey,
    other_rsa_key: RsaKey,
    small_dump: Path,
    command: str,
    size: int,
) -> None:
    payload = tmp_path / "payload.gz"
    if size:
        # A dump that does not compress: the content key is proved by the gzip start.
        sh(f"head -c {size} /dev/urandom | gzip -1 > {payload}", tmp_path)
    else:
        sh(f"gzip -c {small_dump} > {payload}", tmp_path)
    original = cms_backup(payload, tmp_path / NAME, rsa_key, command)
    vid = moto_s3.put(f"{PREFIX}{NAME}", original)
    before = producer_objects(moto_s3)

    r = rotate_keys("run", moto_s3, rsa_key, other_rsa_key, "--json", endpoint=chaos.endpoint)
    assert r.returncode == 0, r.stderr + r.stdout
    (v,) = r.json()["versions"]
    assert v["result"] == "done" and v["envelope"] == "cms"
    assert producer_objects(moto_s3) == before
    ((link, link_vid),) = links(moto_s3)
    assert link.startswith(f"{PREFIX}{NAME}.rewrap/{vid}/")
    stored = fetch(moto_s3, link, link_vid)
    assert cms_decrypt(other_rsa_key.private, stored) == payload.read_bytes()
    assert cms_decrypt(rsa_key.private, stored) == payload.read_bytes()  # the old still opens
    if size:
        copies = [x for x in chaos.log if x.method == "PUT" and x.copy_source]
        assert len(copies) == 1 and f"versionId={vid}" in copies[0].copy_source
        assert v["body_bytes_copied_in_store"] > 0

    # verify with the new key alone opens the rotated object.
    r = sealcheck("verify", moto_s3.uri(f"{PREFIX}{NAME}"), "--key", str(other_rsa_key.private),
                  "--endpoint-url", moto_s3.endpoint, "--json", "--no-progress", "--no-history")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert link in r.stdout


def test_pem_and_smime_forms_are_not_rotated(
    moto_s3: Bucket, tmp_path: Path, rsa_key: RsaKey, other_rsa_key: RsaKey, small_dump: Path
) -> None:
    payload = tmp_path / "payload.gz"
    sh(f"gzip -c {small_dump} > {payload}", tmp_path)
    pem = cms_backup(payload, tmp_path / "a", rsa_key, CMS.replace("DER", "PEM"))
    smime = cms_backup(payload, tmp_path / "b", rsa_key, SMIME.replace(" -outform DER", ""))
    moto_s3.put(f"{PREFIX}a.sql.gz.p7m", pem)
    moto_s3.put(f"{PREFIX}b.sql.gz.p7m", smime)
    r = rotate_keys("plan", moto_s3, rsa_key, other_rsa_key, "--json")
    assert r.returncode == 1
    reasons = {v["data_object"]: v["reason"] for v in r.json()["versions"]}
    assert "cms-pem form" in reasons[f"{PREFIX}a.sql.gz.p7m"]
    assert "smime form" in reasons[f"{PREFIX}b.sql.gz.p7m"]
