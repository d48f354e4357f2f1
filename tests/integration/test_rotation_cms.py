"""Rotating CMS envelopes (issues 13 and 18): backups made by ``openssl smime|cms
-encrypt -outform DER`` for an old RSA key, rotated on a versioned moto bucket by adding
a KeyTransRecipientInfo for the new key; ``openssl cms -decrypt -inkey NEW`` (and still
``-inkey OLD``) gives the plaintext byte for byte. The PEM and S/MIME forms are
rotated when small (read and written whole, in the same layout)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.pipelines import RsaKey, sh
from fixtures.rotation import PREFIX, fetch, links, producer_objects, rotate_keys
from fixtures.s3scenarios import sealcheck
from fixtures.s3servers import Bucket, ChaosS3, Fault, S3Store
from sealcheck.core.rotation.journal import CRASH_ENV
from sealcheck.core.storage.rewrap import parse_link

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


def decrypt_form(key: Path, data: bytes, inform: str) -> bytes:
    r = subprocess.run(
        ["openssl", "cms", "-decrypt", "-binary", "-inform", inform, "-inkey", str(key)],
        input=data, capture_output=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def test_pem_and_smime_forms_rotate_when_small(
    moto_s3: Bucket, tmp_path: Path, rsa_key: RsaKey, other_rsa_key: RsaKey, small_dump: Path
) -> None:
    """``-outform PEM`` and openssl smime's default S/MIME text: read whole, rotated and
    written back in the same layout; a large one would pass whole through this machine
    and is reported as not rotated."""
    payload, big = tmp_path / "payload.gz", tmp_path / "big.gz"
    sh(f"gzip -c {small_dump} > {payload}\nhead -c {6 * MIB} /dev/urandom | gzip -1 > {big}",
       tmp_path)  # fmt: skip
    pem = cms_backup(payload, tmp_path / "a", rsa_key, CMS.replace("DER", "PEM"))
    smime = cms_backup(payload, tmp_path / "b", rsa_key, SMIME.replace(" -outform DER", ""))
    large = cms_backup(big, tmp_path / "c", rsa_key, CMS.replace("DER", "PEM"))
    for name, data in (("a", pem), ("b", smime), ("c", large)):
        moto_s3.put(f"{PREFIX}{name}.sql.gz.p7m", data)
    r = rotate_keys("run", moto_s3, rsa_key, other_rsa_key, "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    results = {v["data_object"]: v for v in r.json()["versions"]}
    assert results[f"{PREFIX}a.sql.gz.p7m"]["result"] == "done"
    assert results[f"{PREFIX}b.sql.gz.p7m"]["result"] == "done"
    assert results[f"{PREFIX}b.sql.gz.p7m"]["wire_format"] == "cms (smime)"
    assert "would pass whole through this machine" in results[f"{PREFIX}c.sql.gz.p7m"]["reason"]
    rotated = {k.split(".rewrap/")[0]: fetch(moto_s3, k, v) for k, v in links(moto_s3)}
    assert set(rotated) == {f"{PREFIX}a.sql.gz.p7m", f"{PREFIX}b.sql.gz.p7m"}
    new_pem, new_smime = rotated[f"{PREFIX}a.sql.gz.p7m"], rotated[f"{PREFIX}b.sql.gz.p7m"]
    assert new_pem.startswith(b"-----BEGIN CMS-----\n") and new_pem.endswith(b"-----END CMS-----\n")
    assert new_smime.split(b"\n\n")[0] == smime.split(b"\n\n")[0]  # the same MIME headers
    for key in (other_rsa_key, rsa_key):
        assert decrypt_form(key.private, new_pem, "PEM") == payload.read_bytes()
        assert decrypt_form(key.private, new_smime, "SMIME") == payload.read_bytes()


KILL_POINTS = ["fetched", "wrapped", "parts", "put", "written", "before-commit"]


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_and_resumed_cms_rotation_converges(
    moto_store: S3Store,
    tmp_path: Path,
    rsa_key: RsaKey,
    other_rsa_key: RsaKey,
    small_dump: Path,
    point: str,
) -> None:
    """SIGKILL at a journal step, mid multipart upload (``parts``: every part in, not
    completed) or before a commit's fsync; ``--resume`` converges: one rotated object
    per data version, each opening with the new key, the originals untouched."""
    bucket = moto_store.bucket()
    small, large = tmp_path / "small.gz", tmp_path / "large.gz"
    sh(f"gzip -c {small_dump} > {small}\nhead -c {6 * MIB} /dev/urandom | gzip -1 > {large}",
       tmp_path)  # fmt: skip
    payloads = {}
    for name, payload in (("a.sql.gz.p7m", small), ("b.sql.gz.p7m", large)):
        data = cms_backup(payload, tmp_path / name, rsa_key, CMS)
        bucket.put(f"{PREFIX}{name}", data)
        payloads[f"{PREFIX}{name}"] = payload.read_bytes()
    before = producer_objects(bucket)
    nth = 1 if point in ("parts", "fetched") else 2 if point != "before-commit" else 5
    r = run_cli(
        "rotate", "run", bucket.uri(PREFIX), "--endpoint-url", bucket.endpoint,
        "--to", str(other_rsa_key.private), "--from", str(rsa_key.private), "--workers", "1",
        env={**os.environ, CRASH_ENV: f"{point}:{nth}"},
    )  # fmt: skip
    assert r.returncode == -signal.SIGKILL, (point, r.returncode, r.stdout, r.stderr)
    resumed = rotate_keys("run", bucket, rsa_key, other_rsa_key, "--resume", "--json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert {v["result"] for v in resumed.json()["versions"]} <= {"done", "already rotated"}
    assert producer_objects(bucket) == before
    written = links(bucket)
    assert len(written) == 2 and len({k for k, _ in written}) == 2
    for key, vid in written:
        data_key = key.split(".rewrap/")[0]
        assert cms_decrypt(other_rsa_key.private, fetch(bucket, key, vid)) == payloads[data_key]


def test_a_store_ignoring_create_only_completion_gets_a_fresh_name(
    moto_s3: Bucket,
    chaos: ChaosS3,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    rsa_key: RsaKey,
    other_rsa_key: RsaKey,
) -> None:
    """CompleteMultipartUpload's If-None-Match dropped on the way (a store that ignores
    it; PutObject's is honoured): the probe finds out, and the large rotated object is
    written under its link name plus a random suffix, a name that cannot exist yet."""
    take = chaos.take

    def drop_condition(method, target, query, rng):
        if method == "POST" and "uploadId" in query:
            return Fault("unconditional", on="put")
        return take(method, target, query, rng)

    monkeypatch.setattr(chaos, "take", drop_condition)
    payload = tmp_path / "big.gz"
    sh(f"head -c {6 * MIB} /dev/urandom | gzip -1 > {payload}", tmp_path)
    moto_s3.put(f"{PREFIX}{NAME}", cms_backup(payload, tmp_path / NAME, rsa_key, CMS))
    r = rotate_keys("run", moto_s3, rsa_key, other_rsa_key, "--json", endpoint=chaos.endpoint)
    assert r.returncode == 0, r.stdout + r.stderr
    ((link, vid),) = links(moto_s3)
    assert parse_link(link) is not None and link[-17] == "." and link[-16:].isalnum()
    assert cms_decrypt(other_rsa_key.private, fetch(moto_s3, link, vid)) == payload.read_bytes()
