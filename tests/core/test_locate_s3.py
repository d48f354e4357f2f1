"""The CLI opens the versions it is handed: given the data version and its wrapped-key
version, it reads exactly those and lists nothing; only a key it was not given is found
by pairing. Real backups (openssl, gzip) on a real S3 server (moto) behind a logging
proxy, versioned bucket, two versions."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from fixtures.pipelines import RsaKey
from fixtures.s3scenarios import sealcheck
from fixtures.s3servers import NIGHTLY, Bucket, ChaosS3

KEY = NIGHTLY


def _verify(chaos: ChaosS3, bucket: Bucket, rsa_key: RsaKey, *args: str) -> tuple[int, dict]:
    chaos.reset()
    r = sealcheck(
        "verify",
        f"s3://{bucket.name}/{KEY}",
        *args,
        "--key",
        str(rsa_key.private),
        "--endpoint-url",
        chaos.endpoint,
        "--json",
        "--no-progress",
    )
    return r.returncode, json.loads(r.stdout)


def _listed(chaos: ChaosS3) -> bool:
    return any("versions" in r.query for r in chaos.log)


def _paired(chaos: ChaosS3) -> bool:
    """Whether a listing went looking for the wrapped key. The one listing a verify of
    given versions makes is the sidecar lookup under the data's own name (X.sha256 and
    X.info are found with X; issue 18), which re-pairs nothing it was handed."""
    sidecars = f"prefix={quote(KEY, safe='')}&"
    return any(
        ("versions" in r.query or "list-type" in r.query) and sidecars not in r.query
        for r in chaos.log
    )


def test_given_both_versions_the_cli_opens_exactly_those(
    moto_s3: Bucket, chaos: ChaosS3, rsa_key: RsaKey, two_nights
) -> None:
    (d1, k1), (_d2, k2) = two_nights
    rc, rep = _verify(chaos, moto_s3, rsa_key, "--version-id", d1, "--wrapped-key-version-id", k1)
    assert rc == 0, rep["error"]
    assert rep["source"]["version_id"] == d1 and rep["wrapped_key"]["version_id"] == k1
    assert not _paired(chaos)
    # A key version that does not go with the data is opened as given (never re-paired),
    # and the unlock step says it does not fit.
    rc, rep = _verify(chaos, moto_s3, rsa_key, "--version-id", d1, "--wrapped-key-version-id", k2)
    assert rc == 1 and rep["wrapped_key"]["version_id"] == k2
    assert not _paired(chaos)
    # Its name given too: the same.
    rc, rep = _verify(
        chaos,
        moto_s3,
        rsa_key,
        "--version-id",
        d1,
        "--wrapped-key",
        f"s3://{moto_s3.name}/{KEY}.key",
        "--wrapped-key-version-id",
        k1,
    )
    assert rc == 0 and rep["wrapped_key"]["version_id"] == k1
    assert not _paired(chaos)


def test_a_key_not_given_is_the_version_written_with_the_data(
    moto_s3: Bucket, chaos: ChaosS3, rsa_key: RsaKey, two_nights
) -> None:
    (d1, k1), _ = two_nights
    rc, rep = _verify(chaos, moto_s3, rsa_key, "--version-id", d1)
    assert rc == 0 and rep["wrapped_key"]["version_id"] == k1
    assert _listed(chaos)  # found by pairing, as `sealcheck list` pairs


def test_a_key_version_no_name_beside_has_is_an_error(
    moto_s3: Bucket, chaos: ChaosS3, rsa_key: RsaKey, two_nights
) -> None:
    (d1, _k1), _ = two_nights
    r = sealcheck(
        "verify",
        f"s3://{moto_s3.name}/{KEY}",
        "--version-id",
        d1,
        "--wrapped-key-version-id",
        d1,  # the data's own version: no wrapped key beside it has it
        "--key",
        str(rsa_key.private),
        "--endpoint-url",
        chaos.endpoint,
    )
    assert r.returncode == 2
    assert f"no wrapped key beside it has version {d1}" in r.stderr


def test_a_key_version_for_a_local_file_is_a_usage_error(tmp_path: Path) -> None:
    f = tmp_path / "x.sql.gz.enc"
    f.write_bytes(b"Salted__" + bytes(56))
    r = sealcheck("verify", str(f), "--wrapped-key-version-id", "abc", "--passphrase-file", str(f))
    assert r.returncode == 2
    assert "--wrapped-key-version-id applies to s3:// sources only" in r.stderr
