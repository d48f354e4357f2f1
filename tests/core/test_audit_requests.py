"""What an audit campaign asks S3 for each version it verifies (issue 14, speed): the
listing already said each version's size and ETag, so a version is opened without a
HEAD, and its GETs are pinned (versionId, If-Match) and checked against what was
listed. A version replaced between the listing and its GET is still caught. Real
backups (openssl, gzip) on moto_server behind the logging proxy."""

from __future__ import annotations

from pathlib import Path

from fixtures.pipelines import RsaKey, securecircle
from fixtures.rotation import rotate_keys
from fixtures.s3servers import NIGHTLY, Bucket, ChaosS3, S3Store, call_before
from sealcheck.core.audit.campaign import Campaign, CampaignOptions, Outcome
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.records.history import History
from sealcheck.core.records.report import Report
from sealcheck.core.storage.s3.client import S3Settings


def _campaign(bucket: Bucket, chaos: ChaosS3, rsa_key: RsaKey, data: Path) -> list[Report]:
    """A campaign over ``db/`` through the proxy, holding ``rsa_key`` alone."""
    secrets = Secrets(keys=[PemKey.from_file(rsa_key.private)])
    opts = CampaignOptions(bucket.uri("db/"), S3Settings(endpoint_url=chaos.endpoint), parallel=1)
    out: Outcome = Campaign(opts, secrets, History(data / "history.sqlite3")).run()
    reports = [e.result() for e in out.entries if e.kind.value != "audit"]
    assert all(isinstance(r, Report) for r in reports)
    return [r for r in reports if isinstance(r, Report)]


def test_a_listed_version_is_opened_without_head_and_read_pinned(
    moto_s3: Bucket, chaos: ChaosS3, rsa_key: RsaKey, two_nights, tmp_path: Path
) -> None:
    chaos.reset()
    reports = _campaign(moto_s3, chaos, rsa_key, tmp_path)
    assert len(reports) == 2 and all(r.error is None for r in reports), [r.error for r in reports]
    assert not [r for r in chaos.log if r.method == "HEAD"]
    for data_id, key_id in two_nights:
        for target, vid in ((NIGHTLY, data_id), (NIGHTLY + ".key", key_id)):
            gets = [
                r
                for r in chaos.requests(f"{moto_s3.name}/{target}")
                if f"versionId={vid}" in r.query
            ]
            assert gets and all(r.if_match for r in gets), target
    # The listing saw no sidecar files with this backup: none are looked for again.
    assert not [r for r in chaos.log if "versions&prefix=db%2Fnightly" in r.query]
    # The budget per audited version (its data and key objects, not the listings):
    # at most 3 GETs of the data (two probes and the stream) and one of the key.
    objects = [r for r in chaos.log if r.target != moto_s3.name]
    per_version = len(objects) / len(reports)
    assert per_version <= 4, [(r.method, r.target, r.range) for r in objects]


def test_a_version_replaced_after_the_listing_is_caught(
    moto_store: S3Store, chaos: ChaosS3, rsa_key: RsaKey, small_dump: Path, tmp_path: Path
) -> None:
    """A version written before versioning was enabled ("null") is replaced in place by
    an upload while versioning is suspended. Listed before that, it is refused at its
    GET as changed, never verified as the new bytes."""
    bucket = moto_store.bucket(versioned=False)
    bucket.put_backup("db/", securecircle(small_dump, tmp_path / "one", rsa_key, name="nightly"))
    versioning = moto_store.client.put_bucket_versioning
    versioning(Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"})
    bucket.put_backup("db/", securecircle(small_dump, tmp_path / "two", rsa_key, name="nightly"))
    other = securecircle(small_dump, tmp_path / "other", rsa_key, name="nightly").data

    def replace_null() -> None:
        versioning(Bucket=bucket.name, VersioningConfiguration={"Status": "Suspended"})
        bucket.put(NIGHTLY, other)

    chaos.reset()
    chaos.plan(f"{bucket.name}/{NIGHTLY}", call_before(replace_null, on="get"))
    reports = _campaign(bucket, chaos, rsa_key, tmp_path)
    assert not chaos.pending()
    assert not [r for r in chaos.log if r.method == "HEAD"]
    by_version = {r.source.version_id: r for r in reports if r.source is not None}
    assert len(by_version) == len(reports) == 2
    bad = by_version["null"].error
    assert bad is not None and bad.kind == "TransferCorrupted", bad
    assert "changed" in bad.message
    # moto's suspended upload also drops the newer version (S3 keeps it): either way,
    # no report stands for the bytes uploaded after the listing.
    new_etag = moto_store.client.head_object(Bucket=bucket.name, Key=NIGHTLY)["ETag"]
    assert all(r.source is not None and r.source.etag != new_etag for r in reports)


def test_a_sidecar_the_listing_found_is_still_compared(
    moto_s3: Bucket, chaos: ChaosS3, rsa_key: RsaKey, two_nights, tmp_path: Path
) -> None:
    """Only a set listed without sidecars skips their lookup: a wrong X.sha256 written
    with the newer night fails that version in the audit, naming the sidecar."""
    data_id = two_nights[1][0]
    moto_s3.put(NIGHTLY + ".sha256", f"{'0' * 64}  nightly.sql.gz\n".encode())
    chaos.reset()
    reports = _campaign(moto_s3, chaos, rsa_key, tmp_path)
    by_version = {r.source.version_id: r for r in reports if r.source is not None}
    bad = by_version[data_id].error
    assert bad is not None and "sidecar nightly.sql.gz.sha256" in bad.message, bad


def test_rotation_links_come_from_the_campaigns_listing(
    moto_s3: Bucket,
    chaos: ChaosS3,
    rsa_key: RsaKey,
    other_rsa_key: RsaKey,
    two_nights,
    small_dump: Path,
    tmp_path: Path,
) -> None:
    """Both nights rotated to a new key by ``sealcheck rotate run``, a third night written
    after it (unrotated). A campaign holding the new key alone opens each rotated version
    through the link named for its version id, found in the campaign's own listing: no
    LIST per version for rotation links (issue 14)."""
    r = rotate_keys("run", moto_s3, rsa_key, other_rsa_key, "--versions", "all")
    assert r.returncode == 0, r.stderr
    third = securecircle(small_dump, tmp_path / "three", rsa_key, name="nightly")
    third_id = moto_s3.put_backup("db/", third)[NIGHTLY]
    chaos.reset()
    reports = _campaign(moto_s3, chaos, other_rsa_key, tmp_path)
    by_version = {r.source.version_id: r for r in reports if r.source is not None}
    assert len(by_version) == len(reports) == 3
    for data_id, _ in two_nights:
        assert by_version[data_id].error is None, by_version[data_id].error
        link = f"{moto_s3.name}/{NIGHTLY}.key.rewrap/{data_id}/"
        assert [x for x in chaos.log if x.method == "GET" and x.target.startswith(link)]
    # The unrotated night has no link: only the old key opens it, and nothing else is
    # tried for it.
    assert by_version[third_id].error is not None
    assert not [x for x in chaos.log if x.method == "GET" and third_id in x.target]
    # One listing of the prefix (ListObjectVersions) and no ListObjectsV2 at all: the
    # links were not looked up per version.
    assert not [x for x in chaos.log if "list-type=2" in x.query], [
        (x.target, x.query) for x in chaos.log if x.target == moto_s3.name
    ]
